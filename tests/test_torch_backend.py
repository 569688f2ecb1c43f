"""The torch backend of the read path (hardware.backend = 'torch') against the numba one, on CPU.

What must hold, and the tolerance each check allows:

- the generator: Philox4x32-10 words equal Random123's known answers and numba's words exactly;
  uniforms equal ``rng.uniform_at`` exactly; normals equal ``rng.normal_at`` to 1e-12 (the tail's
  logarithm may differ in its last bits between libm and torch);
- DAC/ADC: the quantised grids, stochastic rounding included, equal the numba kernel bit for bit;
- a tile's read under every periphery (noise and bound management, stochastic rounding, DAC
  noise, per-column output noise, IR drop) and a tiled matrix's digital partial sums equal the
  numba read to float32 rounding of the BLAS product (5e-6 relative): both draw the same normal
  at the same counter;
- the read noise by itself: moments and a KS test of the standardised outputs, tolerances from
  the sample size (tests/statcheck.py);
- the machine's probabilities on an MLP (M1, M2, M3, M4) and on LeNet-5 and a residual net equal
  the numba machine's to 1e-6, and LeNet-5's accuracy and NLL agree within the Monte-Carlo
  standard error of S samples;
- chunking and batch splits draw the same numbers; what the backend cannot read is refused before
  any work, with a one-line error from the command line.
"""

import json
import math

import numpy as np
import pytest
import torch

from bayesim.bnn.models import ModelConfig, build_model
from bayesim.crossbar import torch_kernels as tk
from bayesim.crossbar.kernels import as_rows, quantize_clip
from bayesim.crossbar.periphery import PeripheryConfig, periphery_preset, quantizer_step
from bayesim.crossbar.tile import Tile, TiledMatrix, TilingConfig
from bayesim.crossbar.torch_tile import TorchTiledMatrix
from bayesim.errors import ConfigError, MappingError
from bayesim.machine import BayesianMachine, HardwareConfig
from bayesim.machine.config import read_backend
from bayesim.machine.report import read_backend_name
from bayesim.rng import Stream, normal_at, philox_block, stream_key, uniform_at
from tests.statcheck import Z, assert_ks, assert_moments
from tests.test_cli import assert_bad_input, run, trained  # noqa: F401 (a fixture)
from tests.test_machine import _model
from tests.test_rng import KAT

CPU = torch.device("cpu")
RTOL = 5e-6
"""float32 rounding of a BLAS product of a few hundred terms, relative to the output's range."""


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_philox_on_int64_tensors_gives_the_known_answers(counter, key, expected) -> None:
    c = [torch.tensor([v], dtype=torch.int64) for v in counter]
    out = tk.philox4x32(c[0], c[1], c[2], c[3], *key)
    assert tuple(int(v[0]) for v in out) == expected


def test_words_equal_numba_philox_for_random_counters() -> None:
    rng = np.random.default_rng(0)
    counters = rng.integers(0, 2 ** 32, size=(500, 4), dtype=np.uint64)
    key = rng.integers(0, 2 ** 32, size=2, dtype=np.uint64)
    t = [torch.from_numpy(counters[:, i].astype(np.int64)) for i in range(4)]
    got = torch.stack(tk.philox4x32(t[0], t[1], t[2], t[3], int(key[0]), int(key[1])), 1)
    want = np.stack([philox_block(c.astype(np.uint32), key.astype(np.uint32)) for c in counters])
    np.testing.assert_array_equal(got.numpy(), want.astype(np.int64))


def test_uniforms_and_normals_equal_the_numba_generator() -> None:
    """Element j of row b at counter (j, rows[b], sample, block): the same numbers as
    rng.uniform_at / rng.normal_at, over enough counters (200 × 257) to cover both tails of the
    inverse CDF (p < 0.02425 on either side), in chunks that split rows."""
    key = stream_key(3, Stream.READ, 2, 1)
    rows = torch.arange(1_000, 1_200, dtype=torch.int64)
    n, sample, block = 257, 7, 2
    u = tk.uniforms(key, n, rows, sample, block).numpy()
    z = tk.normals(key, n, rows, sample, block).numpy()
    u_ref = np.array([[uniform_at(key[0], key[1], j, int(r), sample, block) for j in range(n)]
                      for r in rows])
    z_ref = np.array([[normal_at(key[0], key[1], j, int(r), sample, block) for j in range(n)]
                      for r in rows])
    np.testing.assert_array_equal(u, u_ref)
    assert np.mean(np.minimum(u, 1 - u) < 0.02425) > 0.04  # the tails were exercised
    np.testing.assert_allclose(z, z_ref, rtol=0, atol=1e-12)
    # the chunking (2¹⁵ Philox calls per chunk) never changes a draw
    wide = tk.normals(key, 40_000, rows[:4], sample, block)
    np.testing.assert_array_equal(tk.normals(key, 40_000, rows[2:4], sample, block), wide[2:])


@pytest.mark.parametrize(("bits", "sto"), [(4, False), (8, False), (9, False), (7, True)])
def test_dac_adc_grids_equal_the_numba_kernel(bits: int, sto: bool) -> None:
    bound = 1.0 if bits < 9 else 12.0
    step = quantizer_step(1.0 / (2 ** bits - 2), bound)
    sweep = np.linspace(-1.5 * bound, 1.5 * bound, 40_000, dtype=np.float32).reshape(40, -1)
    key = stream_key(0, Stream.ROUNDING)
    ref = sweep.copy()
    clipped = np.empty(ref.shape[0], dtype=np.bool_)
    quantize_clip(ref, step, bound, sto, key, np.int64(3), as_rows(5, ref.shape[0]),
                  np.int64(1), clipped)
    q, flags = tk.scale_quantize_clip(torch.from_numpy(sweep), torch.ones(40, dtype=torch.float64),
                                      step, bound, sto, key, 3, torch.arange(5, 45), 1, None)
    np.testing.assert_array_equal(q.numpy(), ref)
    np.testing.assert_array_equal(flags.numpy(), clipped)
    assert np.unique(ref).size == 2 ** bits - 1


PERIPHERIES = {
    "aihwkit_default": periphery_preset("aihwkit_default"),
    "standard_hwa": periphery_preset("standard_hwa"),
    "ideal": periphery_preset("ideal"),
    "everything": PeripheryConfig(inp_sto_round=True, out_sto_round=True, inp_noise=0.02,
                                  out_noise_std=0.3, ir_drop=1.0, out_bound=3.0,
                                  noise_management="max", nm_thres=0.8, max_bm_factor=8.0),
    "constant_nm_no_quantisation": PeripheryConfig(inp_res=0.0, out_res=0.0,
                                                   noise_management="constant", nm_thres=2.0,
                                                   bound_management="none", out_bound=math.inf),
}


@pytest.mark.parametrize("name", sorted(PERIPHERIES))
def test_a_tile_reads_what_the_numba_tile_reads(name: str) -> None:
    """Bound management re-reads some rows with fresh draws (out_bound 3 with inputs that need
    halvings): the rows re-read and the draws of each round are the numba tile's."""
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (37, 90)).astype(np.float32)
    var = rng.uniform(0, 4e-3, w.shape).astype(np.float32)
    x = rng.uniform(-1, 1, (300, 90)).astype(np.float32) * rng.uniform(0.05, 2, (300, 1)).astype(
        np.float32)
    tile = Tile(w, var, PERIPHERIES[name], seed=5, layer=2, index=1, read_seed=11)
    matrix = TiledMatrix(w, var, PERIPHERIES[name], seed=5, layer=2, read_seed=11)
    torch_matrix = TorchTiledMatrix(matrix, CPU)
    for sample in (0, 3):
        ref = matrix.mvm(x, sample=sample, row0=20)
        got = torch_matrix.mvm(torch.from_numpy(x), sample=sample, row0=20).numpy()
        np.testing.assert_allclose(got, ref, rtol=0, atol=RTOL * np.abs(ref).max())
        assert np.mean(got == ref) > 0.9  # equal draws, not just similar ones
    assert not np.array_equal(tile.mvm(x, sample=0), tile.mvm(x, sample=1))


def test_a_memo_of_repeated_reads_changes_no_draw() -> None:
    rng = np.random.default_rng(2)
    w = rng.uniform(-1, 1, (20, 50)).astype(np.float32)
    x = torch.from_numpy(rng.uniform(-1, 1, (64, 50)).astype(np.float32))
    matrix = TorchTiledMatrix(TiledMatrix(w, np.full(w.shape, 1e-3, np.float32),
                                          periphery_preset("aihwkit_default"), seed=1), CPU)
    memo: dict = {}
    for sample in range(3):
        np.testing.assert_array_equal(matrix.mvm(x, sample, 0, memo).numpy(),
                                      matrix.mvm(x, sample, 0).numpy())


def test_tiled_partial_sums_units_and_bias_equal_numba() -> None:
    """A 130 × 300 matrix on 3 × 3 tiles, per-output units (the machine's column scales) and
    per-tile ω scaling, with a digital bias."""
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (130, 300)).astype(np.float32)
    var = rng.uniform(0, 1e-3, w.shape).astype(np.float32)
    x = rng.uniform(-1, 1, (50, 300)).astype(np.float32)
    bias = rng.normal(0, 3, 130).astype(np.float32)
    tiling = TilingConfig(max_in=128, max_out=64)
    for scaling in ({"unit": rng.uniform(0.5, 2, 130)}, {"weight_scaling_omega": 1.0}):
        matrix = TiledMatrix(w, var, periphery_preset("aihwkit_default"), seed=0, tiling=tiling,
                             **scaling)
        assert matrix.n_tiles == 9
        ref = matrix.mvm(x, sample=2, row0=7, bias=bias)
        got = TorchTiledMatrix(matrix, CPU).mvm(torch.from_numpy(x), 2, 7,
                                                bias=torch.from_numpy(bias)).numpy()
        np.testing.assert_allclose(got, ref, rtol=0, atol=RTOL * np.abs(ref).max())
    with pytest.raises(MappingError, match="input must have shape"):
        TorchTiledMatrix(matrix, CPU).mvm(torch.zeros(3, 10))


def test_torch_read_noise_moments_and_ks() -> None:
    """Output-referred read with exact periphery: column j of a repeated input is
    N(x·w_j, Σ x_i² σ_ij² + out_noise²); moments within Z standard errors of n = 20,000 reads,
    and a KS test of the standardised outputs."""
    rng = np.random.default_rng(4)
    w = rng.uniform(-1, 1, (6, 16)).astype(np.float32)
    var = rng.uniform(0.0, 0.02, w.shape).astype(np.float32)
    x1 = rng.uniform(-1, 1, 16).astype(np.float32)
    n = 20_000
    config = PeripheryConfig(inp_res=0.0, out_res=0.0, noise_management="none",
                             bound_management="none", out_bound=math.inf, out_noise=0.05)
    matrix = TorchTiledMatrix(TiledMatrix(w, var, config, seed=4), CPU)
    y = matrix.mvm(torch.from_numpy(np.tile(x1, (n, 1))), sample=1).numpy().astype(np.float64)
    mean = x1.astype(np.float64) @ w.T
    std = np.sqrt(np.square(x1.astype(np.float64)) @ var.T + 0.05 ** 2)
    for j in range(6):
        assert_moments(y[:, j], mean[j], std[j], label=f"torch column {j}")
    assert_ks((y - mean) / std, "norm", label="torch read noise")
    # columns of one read are independent (their correlation within Z/√n of 0)
    c = np.corrcoef(((y - mean) / std).T)
    assert np.max(np.abs(c[np.triu_indices(6, 1)])) < Z / math.sqrt(n)


def test_torch_tile_batch_splits_draw_the_same_numbers() -> None:
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, (50, 700)).astype(np.float32)
    x = torch.from_numpy(rng.uniform(-1, 1, (30, 700)).astype(np.float32))
    matrix = TorchTiledMatrix(TiledMatrix(w, np.full(w.shape, 1e-3, np.float32),
                                          periphery_preset("aihwkit_default"), seed=2), CPU)
    whole = matrix.mvm(x, sample=4).numpy()
    split = np.concatenate([matrix.mvm(x[:11], 4).numpy(), matrix.mvm(x[11:], 4, 11).numpy()])
    np.testing.assert_allclose(whole, split, rtol=0, atol=RTOL * np.abs(whole).max())
    assert np.mean(whole == split) > 0.9


def _probs(model: torch.nn.Module, x: torch.Tensor, samples: int, **hw) -> dict[str, np.ndarray]:
    out = {}
    for backend in ("numba", "torch"):
        machine = BayesianMachine(model, HardwareConfig(backend=backend, torch_device="cpu",
                                                        decomposition_inputs=0, **hw), warn=False)
        out[backend] = machine.sample_probs(x, samples, 9).numpy()
    return out


@pytest.mark.parametrize("hw", [
    {"mapping": "M3"},
    {"mapping": "M3", "copies": 2},  # S = 4 > R: copies read again, the memo reused per copy
    {"mapping": "M1", "device": "pcm_ibm_2020", "max_in": 7, "max_out": 5, "batch_size": 13},
    {"mapping": "M2", "device": "pcm_ibm_2020", "periphery": "standard_hwa"},
    {"mapping": "M4", "device": "rram_lin2023", "devices_per_weight": 3},
    {"mapping": "M1", "device": "pcm_ibm_2020", "tile_scaling": "per_tile"},
])
def test_machine_probabilities_equal_numba_on_an_mlp(hw: dict) -> None:
    model = _model(hidden=(24,), sigma=0.05)
    x = torch.randn(40, 12, generator=torch.Generator().manual_seed(0))
    probs = _probs(model, x, 4, **hw)
    np.testing.assert_allclose(probs["torch"], probs["numba"], rtol=0, atol=1e-6)


def test_lenet5_and_resnet_probabilities_and_metrics_agree() -> None:
    """LeNet-5 (convolutions through unfold on torch, im2col on numba) and a small residual net
    on M1: probabilities to 1e-6; LeNet-5's accuracy and NLL against labels within the
    Monte-Carlo standard error of S = 6 samples (they are equal, which is stronger)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(24, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (24,), generator=gen).numpy()
    hw = {"device": "pcm_ibm_2020", "mapping": "M1", "batch_size": 10}
    lenet = build_model(ModelConfig(arch="lenet5"), seed=0).eval()
    probs = _probs(lenet, x, 6, **hw)
    np.testing.assert_allclose(probs["torch"], probs["numba"], rtol=0, atol=1e-6)
    per_sample = {}
    for backend, p in probs.items():  # p: [S, N, classes]
        correct = (p.argmax(-1) == labels).mean(axis=1)
        nll = -np.log(np.take_along_axis(p, labels[None, :, None], -1)[..., 0]).mean(axis=1)
        per_sample[backend] = (correct, nll)
    for k in range(2):
        a, b = per_sample["torch"][k], per_sample["numba"][k]
        se = math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / a.size) + 1e-12
        assert abs(a.mean() - b.mean()) <= Z * se
    resnet = build_model(ModelConfig(arch="resnet", channels=[4, 8]), seed=0).eval()
    probs = _probs(resnet, torch.randn(6, 1, 28, 28, generator=gen), 2, **hw)
    np.testing.assert_allclose(probs["torch"], probs["numba"], rtol=0, atol=1e-6)


def test_the_torch_machine_reads_through_torch_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """backend = 'torch' reads every mapped layer through TorchTiledMatrix, and numba never
    does (the equality tests above would pass trivially if both ran the numba path)."""
    calls: list[str] = []
    original = TorchTiledMatrix.mvm

    def counted(self, x, *args, **kwargs):
        calls.append(type(x).__name__)
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(TorchTiledMatrix, "mvm", counted)
    model = _model(hidden=(24,), sigma=0.05)
    x = torch.randn(8, 12, generator=torch.Generator().manual_seed(3))
    for backend, expected in (("numba", 0), ("torch", 2 * 3)):  # two layers, S = 3
        calls.clear()
        BayesianMachine(model, HardwareConfig(backend=backend, torch_device="cpu",
                                              decomposition_inputs=0),
                        warn=False).sample_probs(x, 3, 0)
        assert len(calls) == expected and set(calls) <= {"Tensor"}


def test_the_torch_machine_is_batch_invariant() -> None:
    model = _model(hidden=(24,), sigma=0.05)
    x = torch.randn(30, 12, generator=torch.Generator().manual_seed(2))
    probs = [BayesianMachine(model, HardwareConfig(backend="torch", torch_device="cpu",
                                                   batch_size=size, decomposition_inputs=0),
                             warn=False)
             .sample_probs(x, 3, 4).numpy() for size in (30, 7)]
    np.testing.assert_allclose(probs[0], probs[1], rtol=0, atol=1e-6)


def test_backend_choice_and_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert read_backend(HardwareConfig()) is None  # auto on a machine without CUDA: numba
    assert read_backend(HardwareConfig(backend="torch")) == CPU
    assert read_backend_name(HardwareConfig(backend="torch", torch_device="cpu")) == "torch:cpu"
    assert read_backend_name(HardwareConfig(backend="numba")) == "numba"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert read_backend(HardwareConfig(torch_device="cpu")) == CPU  # auto with a GPU: torch
    # ... but what only numba reads stays on numba under auto instead of being refused
    assert read_backend(HardwareConfig(read_path="explicit")) is None
    assert read_backend(HardwareConfig(read_correlation=0.5)) is None
    monkeypatch.undo()
    model = _model()
    for hw, pattern in ((dict(backend="torch", read_path="explicit"), "numba backend only"),
                        (dict(backend="torch", read_correlation=0.5), "numba backend only"),
                        (dict(backend="torch", torch_device="cuda:99"), "cannot be used"),
                        (dict(backend="torch", torch_device="nonsense"), "cannot be used")):
        with pytest.raises(ConfigError, match=pattern):
            BayesianMachine.compile(model, HardwareConfig(**hw))
    with pytest.raises(ValueError, match="backend"):
        HardwareConfig(backend="jax")


def test_the_command_line_refuses_an_unusable_device(trained, tmp_path, capsys) -> None:  # noqa: F811
    out = tmp_path / "sim"
    code, _, err = run(["simulate", "--checkpoint", trained, "--out", out, "-q", "--samples", 2,
                        "--set", "hardware.backend=torch",
                        "--set", "hardware.torch_device=cuda:5"], capsys)
    assert_bad_input(code, err, out, "hardware.torch_device = 'cuda:5' cannot be used")
    code, stdout, err = run(["simulate", "--checkpoint", trained, "--out", out, "-q",
                             "--samples", 2, "--set", "hardware.backend=torch",
                             "--set", "hardware.torch_device=cpu",
                             "--set", "hardware.decomposition_inputs=0"], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["hardware"]["read_backend"] == "torch:cpu"
