"""Periphery (DAC, ADC, noise and bound management, output noise, IR drop) and tiles."""

import math

import numpy as np
import pytest
import torch

from bayesim.crossbar.kernels import as_rows, quantize_clip
from bayesim.crossbar.periphery import PeripheryConfig, periphery_preset, quantizer_step
from bayesim.crossbar.tile import Tile, TiledMatrix, TilingConfig, split_sizes
from bayesim.errors import ConfigError, MappingError
from bayesim.rng import Stream, stream_key
from tests.statcheck import Z, assert_ks, assert_moments

# every non-ideality off: the tile must be a plain matmul
CLEAN = {"inp_res": 0.0, "out_res": 0.0, "out_noise": 0.0, "noise_management": "none",
         "bound_management": "none", "out_bound": math.inf}
N = 100_000


def _quantize(v: np.ndarray, res: float, bound: float, sto: bool = False, sample: int = 0,
              block: int = 0) -> tuple[np.ndarray, np.ndarray]:
    v = np.array(v, dtype=np.float32, ndmin=2)
    clipped = np.empty(v.shape[0], dtype=np.bool_)
    quantize_clip(v, quantizer_step(res, bound), bound, sto, stream_key(0, Stream.ROUNDING),
                  np.int64(sample), as_rows(0, v.shape[0]), np.int64(block), clipped)
    return v, clipped


@pytest.mark.parametrize("bits", [4, 7, 8, 9])
def test_dac_adc_grid_is_exact(bits: int) -> None:
    """aihwkit's step 1/(2^b − 2)·2·bound: a dense sweep lands on exactly 2^b − 1 levels, all
    integer multiples of the step within ±bound, and equals aihwkit's UniformQuantize + clamp
    bit for bit."""
    from aihwkit.simulator.tiles.utils import UniformQuantize

    bound = 1.0 if bits < 9 else 12.0
    res = 1.0 / (2 ** bits - 2)
    step = quantizer_step(res, bound)
    assert step == pytest.approx(2.0 * bound / (2 ** bits - 2), rel=1e-15)
    sweep = np.linspace(-1.5 * bound, 1.5 * bound, 200_001, dtype=np.float32)
    q, clipped = _quantize(sweep, res, bound)
    levels = np.unique(q)
    assert levels.size == 2 ** bits - 1
    k = levels.astype(np.float64) / np.float32(step)
    np.testing.assert_allclose(k, np.round(k), atol=1e-4)
    assert levels.min() == -np.float32(bound) and levels.max() == np.float32(bound)
    assert clipped[0]
    ref = torch.clamp(UniformQuantize.apply(torch.from_numpy(sweep), res, bound, False),
                      -bound, bound).numpy()
    np.testing.assert_array_equal(q[0], ref)
    # a step count res > 1 means 1/res
    assert quantizer_step(254.0, 1.0) == pytest.approx(2.0 / 254.0)
    assert quantizer_step(0.0, 1.0) == 0.0


def test_stochastic_rounding_is_unbiased() -> None:
    """v between two levels rounds up with probability frac(v/step): mean preserved, and the
    draws are keyed by (element, row, sample), so a second sample is a fresh draw."""
    res, bound = 1.0 / 126, 1.0
    step = quantizer_step(res, bound)
    frac = 0.3
    v = np.full((N // 100, 100), (10 + frac) * step, dtype=np.float32)
    q, _ = _quantize(v, res, bound, sto=True)
    up = np.isclose(q / step, 11.0).mean()
    assert abs(up - frac) < Z * math.sqrt(frac * (1 - frac) / v.size)
    assert set(np.round(np.unique(q) / step).astype(int)) == {10, 11}
    q2, _ = _quantize(v, res, bound, sto=True, sample=1)
    assert not np.array_equal(q, q2)
    q3, _ = _quantize(v, res, bound, sto=True)
    np.testing.assert_array_equal(q, q3)


def _tile(w: np.ndarray, var: np.ndarray | None = None, seed: int = 0, **periphery) -> Tile:
    return Tile(w, var, PeripheryConfig(**periphery), seed=seed)


def test_ideal_tile_equals_float32_matmul() -> None:
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (200, 300)).astype(np.float32)
    x = rng.uniform(-1, 1, (64, 300)).astype(np.float32)
    ref = (torch.from_numpy(x) @ torch.from_numpy(w).T).numpy()  # the BLAS the tiles use
    np.testing.assert_allclose(ref, x @ w.T, rtol=1e-5, atol=1e-5)  # numpy's, other rounding
    np.testing.assert_array_equal(_tile(w, is_perfect=True).mvm(x), ref)
    np.testing.assert_array_equal(_tile(w, **CLEAN).mvm(x, sample=7), ref)
    np.testing.assert_array_equal(Tile(w, None, periphery_preset("ideal"), seed=3).mvm(x), ref)


@pytest.mark.parametrize("nm", ["abs_max", "max", "constant", "none"])
def test_noise_management_scales_in_and_back(nm: str) -> None:
    """Without quantisation and noise, management only rescales: the result equals the matmul
    (to float32 rounding) whatever α is; α follows aihwkit's definitions."""
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (20, 30)).astype(np.float32)
    x = (rng.uniform(-1, 1, (50, 30)) * rng.uniform(0.1, 5, (50, 1))).astype(np.float32)
    x[3] = 0.0
    x[4] = -np.abs(x[4])  # max x < 0 → α = 1
    cfg = {**CLEAN, "noise_management": nm, "nm_thres": 2.0, "inp_bound": 100.0}
    tile = _tile(w, **cfg)
    alpha = tile.periphery.input_scales(x)
    expected = {"abs_max": np.minimum(np.abs(x).max(1), 2.0),
                "max": np.minimum(x.max(1), 2.0),
                "constant": np.full(50, 2.0), "none": np.ones(50)}[nm]
    np.testing.assert_allclose(alpha, np.where(expected > 0, expected, 1.0), rtol=1e-6)
    y = tile.mvm(x)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-5)
    assert np.all(y[3] == 0.0)


def test_abs_max_noise_management_uses_the_full_dac_range() -> None:
    """With abs-max management a row's largest |input| maps to the DAC bound, so inputs far
    above the DAC range are not clipped; without management they are."""
    w = np.eye(4, dtype=np.float32)
    x = np.array([[8.0, -4.0, 2.0, 1.0]], dtype=np.float32)
    managed = _tile(w, **{**CLEAN, "noise_management": "abs_max"}).mvm(x)
    np.testing.assert_allclose(managed, x, rtol=1e-6)
    unmanaged = _tile(w, **{**CLEAN, "noise_management": "none"}).mvm(x)
    np.testing.assert_allclose(unmanaged, np.clip(x, -1, 1))


def test_iterative_bound_management_is_per_row() -> None:
    """A row whose output exceeds out_bound is recomputed with its input halved until it fits;
    the result is the unclipped value, and rows that did not clip are unaffected (bit for bit
    the same as when computed alone)."""
    n_in = 64
    w = np.full((3, n_in), 0.5, dtype=np.float32)
    x = np.full((2, n_in), 1.0, dtype=np.float32)
    x[1] *= 0.1  # row 1 gives 3.2, row 0 gives 32 > out_bound 12 → reductions 2, 4
    cfg = {**CLEAN, "out_bound": 12.0, "noise_management": "abs_max", "inp_bound": 1.0,
           "bound_management": "iterative"}
    y = _tile(w, **cfg).mvm(x)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-6)
    alone = _tile(w, **cfg).mvm(x[1:], row0=1)
    np.testing.assert_array_equal(y[1:], alone)
    # no bound management: the ADC clips at ±out_bound
    clipped = _tile(w, **{**cfg, "bound_management": "none"}).mvm(x)
    np.testing.assert_allclose(clipped[0], 12.0)
    # the reduction stops at max_bm_factor: still clipped (at 2·12 after one halving)
    capped = _tile(w, **{**cfg, "max_bm_factor": 1.5}).mvm(x)
    np.testing.assert_allclose(capped[0], 24.0)
    # aihwkit's own stop rule: reduction > max_bm_res / input step (default 0.25/(2/126) ≈ 15.75)
    big = np.full((1, n_in), 1.0, dtype=np.float32)
    heavy = np.full((1, n_in), 4.0, dtype=np.float32)  # 128 needs reduction 16 > 15.75
    default_rule = _tile(heavy, **{**cfg, "inp_res": 1 / 126}).mvm(big)
    np.testing.assert_allclose(default_rule, 12.0 * 16, rtol=1e-6)


def test_output_noise_per_column_uses_out_noise_std() -> None:
    """Unlike aihwkit 1.1.0's TorchSimulatorTile (tiles/torch_tile.py), the per-column std is
    |out_noise·(1 + out_noise_std·ξ)|, drawn once per tile; the torch tile's 100 % spread
    regardless of the value would fail the spread check. Read-to-read, each column's noise has that
    std."""
    n_out, rows = 500, 400
    w = np.zeros((n_out, 4), dtype=np.float32)
    tile = _tile(w, **{**CLEAN, "out_noise": 0.1, "out_noise_std": 0.2})
    std_j = tile.periphery.out_noise_std
    assert_moments((std_j / 0.1 - 1.0) / 0.2, 0.0, 1.0, label="column spread")
    x = np.ones((rows, 4), dtype=np.float32)
    y = tile.mvm(x, sample=0)
    z = y / std_j  # every column standardised by its own frozen std
    assert_moments(z, 0.0, 1.0, label="per-read output noise")
    assert_ks(z, "norm", label="output noise")
    # frozen: the same tile seed gives the same column stds; the next read differs
    np.testing.assert_array_equal(_tile(w, **{**CLEAN, "out_noise": 0.1,
                                              "out_noise_std": 0.2}).periphery.out_noise_std,
                                  std_j)
    assert not np.array_equal(tile.mvm(x, sample=1), y)


@pytest.mark.parametrize("noise_shape", ["gaussian", "laplace"])
def test_read_noise_plus_output_noise_variance(noise_shape: str) -> None:
    """Output variance = Σ_i x_i² σ_ij² (device reads) + out_noise² (one draw covers both on
    the Gaussian path; the explicit path draws them separately)."""
    rng = np.random.default_rng(2)
    w = rng.uniform(-1, 1, (8, 16)).astype(np.float32)
    var = rng.uniform(0.0, 0.02, (8, 16)).astype(np.float32)
    x1 = rng.uniform(-1, 1, 16).astype(np.float32)
    x = np.tile(x1, (20_000, 1))
    tile = Tile(w, var, PeripheryConfig(**{**CLEAN, "out_noise": 0.05}), seed=4,
                noise_shape=noise_shape)
    y = tile.mvm(x, sample=2)
    mean = x1 @ w.T
    std = np.sqrt(np.square(x1) @ var.T + 0.05 ** 2)
    for j in range(8):
        assert_moments(y[:, j], mean[j], std[j], label=f"{noise_shape} column {j}")


def test_pcm_read_weight_noise() -> None:
    """aihwkit C++ PCM_READ: y_i += w_noise·sqrt(Σ_j |w_ij| x_j²)·ξ."""
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (6, 10)).astype(np.float32)
    x1 = rng.uniform(-1, 1, 10).astype(np.float32)
    tile = _tile(w, **{**CLEAN, "w_noise": 0.0175, "w_noise_type": "pcm_read"})
    y = tile.mvm(np.tile(x1, (30_000, 1)))
    std = 0.0175 * np.sqrt(np.abs(w) @ np.square(x1))
    for j in range(6):
        assert_moments(y[:, j], float(x1 @ w[j]), std[j], label=f"column {j}")
    with pytest.raises(ValueError, match="w_noise_type"):
        PeripheryConfig(w_noise=0.1)


def _ir_drop_oracle(y: np.ndarray, x: np.ndarray, w: np.ndarray, scale: float,
                    g_ratio: float) -> np.ndarray:
    """aihwkit's C++ applyIrDrop transcribed loop by loop (rpu_forward_backward_pass.cpp)."""
    out = y.astype(np.float64).copy()
    n = x.shape[1]
    for b in range(x.shape[0]):
        for i in range(w.shape[0]):
            a = n / g_ratio * sum(abs(w[i, j]) * abs(x[b, j]) for j in range(n))
            c = a * (a * (0.05 * a - 0.2) + 0.5)
            s = sum(w[i, j] * x[b, j] * (1 - (1 - j / n) ** 2) for j in range(n))
            out[b, i] -= scale * c * s
    return out


def test_ir_drop_matches_the_formula() -> None:
    rng = np.random.default_rng(5)
    w = rng.uniform(0, 1, (5, 40)).astype(np.float32)
    x = rng.uniform(0, 1, (3, 40)).astype(np.float32)
    g_ratio = 2_000.0  # a resistive wire, so that the drop is large enough to see
    tile = _tile(w, **{**CLEAN, "ir_drop": 1.0, "ir_drop_g_ratio": g_ratio})
    y = tile.mvm(x)
    expected = _ir_drop_oracle(x @ w.T, x, w, 1.0, g_ratio)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    assert np.all(y < x @ w.T)  # positive weights and inputs: the drop lowers every output


def test_matches_aihwkit_torch_tile_without_noise() -> None:
    """Same DAC, ADC, noise management and bound management as aihwkit's AnalogMVM (noise
    off): equal to float32 rounding for the vast majority of outputs, and never more than an
    ADC step apart (where the two matmuls' rounding straddles a level)."""
    from aihwkit.simulator.parameters.io import IOParameters
    from aihwkit.simulator.tiles.analog_mvm import AnalogMVM

    rng = np.random.default_rng(6)
    w = rng.uniform(-1, 1, (64, 128)).astype(np.float32)
    x = rng.uniform(-1, 1, (1, 128)).astype(np.float32)
    ours, theirs = [], []
    io = IOParameters(out_noise=0.0)
    tile = _tile(w, out_noise=0.0)
    for b in range(200):  # one row at a time: aihwkit's bound management is batch-wide
        xb = x * (b + 1) / 20.0
        ours.append(tile.mvm(xb, row0=b))
        theirs.append(AnalogMVM.matmul(torch.from_numpy(w), torch.from_numpy(xb), io,
                                       is_test=True).numpy())
    ours, theirs = np.concatenate(ours), np.concatenate(theirs)
    alpha = np.abs(x).max() * np.arange(1, 201)[:, None] / 20.0
    step = quantizer_step(io.out_res, io.out_bound)
    assert np.all(np.abs(ours - theirs) <= 1.01 * step * alpha * 16)
    # the rest differs by float32 rounding of the scaling (x/α, y·α) only
    assert np.mean(np.isclose(ours, theirs, rtol=1e-5, atol=0)) > 0.99


def test_presets_by_name() -> None:
    hwa = periphery_preset("standard_hwa")
    assert hwa.inp_step == pytest.approx(2 / 254) and hwa.out_step == pytest.approx(20 / 254)
    assert (hwa.noise_management.value, hwa.nm_thres, hwa.bound_management.value) == \
        ("constant", 1.0, "none")
    assert (hwa.w_noise, hwa.w_noise_type.value, hwa.ir_drop, hwa.out_noise, hwa.out_bound) == \
        (0.0175, "pcm_read", 1.0, 0.04, 10.0)
    default = periphery_preset("aihwkit_default")
    assert default.inp_step == pytest.approx(2 / 126)
    assert default.out_step == pytest.approx(24 / 510)
    assert (default.out_noise, default.out_bound) == (0.06, 12.0)
    assert periphery_preset("aihwkit_standard_io").out_bound == 10.0
    assert periphery_preset("aihwkit_default", out_noise=0.0).out_noise == 0.0
    with pytest.raises(ConfigError, match="unknown periphery preset 'hwa'.*standard_hwa"):
        periphery_preset("hwa")
    with pytest.raises(ConfigError, match="out_noise"):
        periphery_preset("standard_hwa", out_noise=-1.0)


@pytest.mark.parametrize(("n", "max_size"), [(1, 512), (512, 512), (513, 512), (1025, 512),
                                             (784, 256), (10, 3), (700, 0)])
def test_split_sizes_match_aihwkit(n: int, max_size: int) -> None:
    from aihwkit.simulator.tiles.array import TileModuleArray

    sizes = split_sizes(n, max_size)
    assert sizes == TileModuleArray.get_split_sizes(None, n, max_size)
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
    assert max_size == 0 or max(sizes) <= max_size


def test_tiled_matrix_accumulates_partial_sums_digitally() -> None:
    rng = np.random.default_rng(7)
    w = rng.uniform(-1, 1, (130, 300)).astype(np.float32)
    x = rng.uniform(-1, 1, (40, 300)).astype(np.float32)
    tiling = TilingConfig(max_in=128, max_out=64)
    ideal = TiledMatrix(w, None, PeripheryConfig(**CLEAN), seed=0, tiling=tiling)
    assert (ideal.in_sizes, ideal.out_sizes, ideal.n_tiles) == ([100, 100, 100], [44, 43, 43], 9)
    parts = sum(x[:, c:c + 100].astype(np.float64) @ w[:, c:c + 100].T.astype(np.float64)
                for c in (0, 100, 200))
    np.testing.assert_allclose(ideal.mvm(x), parts, rtol=1e-5, atol=1e-5)
    # each tile's periphery adds its own output noise: three input tiles → variance 3·out_noise²
    noisy = TiledMatrix(np.zeros((130, 300), np.float32), None,
                        PeripheryConfig(**{**CLEAN, "out_noise": 0.1}), seed=0, tiling=tiling)
    y = noisy.mvm(np.ones((2_000, 300), np.float32))
    assert_moments(y, 0.0, 0.1 * math.sqrt(3), label="tiled output noise")
    with pytest.raises(MappingError, match="at most 512 × 512"):
        Tile(np.zeros((600, 10), np.float32), None, PeripheryConfig(), seed=0)
    with pytest.raises(MappingError, match="input must have shape"):
        ideal.mvm(x[:, :10])


def test_tiled_read_is_chunk_invariant() -> None:
    """Splitting a batch (with the right row offsets) draws the same noise: outputs agree to
    float32 rounding of the BLAS product (never by a different noise draw)."""
    rng = np.random.default_rng(8)
    w = rng.uniform(-1, 1, (50, 700)).astype(np.float32)
    var = np.full(w.shape, 1e-3, np.float32)
    x = rng.uniform(-1, 1, (30, 700)).astype(np.float32)
    tm = TiledMatrix(w, var, periphery_preset("aihwkit_default"), seed=2)
    whole = tm.mvm(x, sample=4)
    split = np.concatenate([tm.mvm(x[:11], sample=4), tm.mvm(x[11:], sample=4, row0=11)])
    step = quantizer_step(1 / 510, 12.0) * np.abs(x).max()
    assert np.max(np.abs(whole - split)) <= 2.01 * step
    assert np.mean(whole == split) > 0.95
    other = tm.mvm(x, sample=5)
    assert np.mean(whole == other) < 0.2
