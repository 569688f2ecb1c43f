import math
import subprocess
import sys

import numpy as np
import pytest

from bayesim.crossbar.kernels import add_output_noise, as_rows, explicit_read_mvm, read_mvm
from bayesim.rng import Stream, draw, normal_at, philox_block, stream_key
from tests.statcheck import assert_ks, assert_moments

# Random123's known-answer vectors for Philox4x32-10 (kat_vectors)
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
N = 200_000


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_philox_known_answers(counter, key, expected) -> None:
    out = philox_block(np.array(counter, dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert tuple(int(v) for v in out) == expected


def test_distributions() -> None:
    key = stream_key(1, Stream.READ)
    normal = draw(key, N)
    assert_moments(normal, 0.0, 1.0, label="normal")
    assert_ks(normal, "norm", label="normal")
    lap = draw(key, N, "laplace", block=1)
    assert_moments(lap, 0.0, math.sqrt(2.0), kurtosis=6.0, label="laplace")
    assert_ks(lap, "laplace", label="laplace")
    uni = draw(key, N, "uniform", block=2)
    assert_ks(uni, "uniform", label="uniform")
    assert uni.min() > 0.0 and uni.max() < 1.0


def _max_abs_corr(a: np.ndarray, b: np.ndarray) -> float:
    return abs(float(np.corrcoef(a, b)[0, 1]))


def test_streams_samples_and_rows_are_independent() -> None:
    tol = 5.0 / math.sqrt(N)  # standard error of a correlation coefficient under independence
    base = draw(stream_key(0, Stream.READ), N)
    others = {
        "seed": draw(stream_key(1, Stream.READ), N),
        "purpose": draw(stream_key(0, Stream.PROGRAM), N),
        "layer": draw(stream_key(0, Stream.READ, layer=1), N),
        "tile": draw(stream_key(0, Stream.READ, tile=1), N),
        "sample": draw(stream_key(0, Stream.READ), N, sample=1),
        "row": draw(stream_key(0, Stream.READ), N, row=1),
        "block": draw(stream_key(0, Stream.READ), N, block=1),
        "neighbour element": np.roll(base, 1),
    }
    for name, other in others.items():
        assert not np.array_equal(base, other), name
        assert _max_abs_corr(base, other) < tol, f"correlated with the {name} stream"
    # the four normals of one Philox call are uncorrelated, including in their squares
    for lag in (1, 2, 3):
        assert _max_abs_corr(base[0::4] ** 2, base[lag::4] ** 2) < 5.0 / math.sqrt(N / 4)


@pytest.mark.parametrize("n_out", [1, 3, 6, 11, 16, 509, 700])
def test_read_noise_is_the_scalar_normal_of_its_counter(n_out: int) -> None:
    """The flat, vectorised fill of the read-noise kernel draws, for every (row, output), the
    normal that normal_at gives for counter (output, row, sample, block), whatever the width."""
    key = stream_key(4, Stream.READ, 2, 1)
    rows = np.array([0, 5, 6, 1000, 3, 77, 2 ** 20, 9] * 41, dtype=np.int64)[:300]
    y = np.zeros((rows.size, n_out))
    add_output_noise(y, np.ones_like(y), key, np.int64(7), rows, np.int64(2))
    rng = np.random.default_rng(n_out)
    for b, j in zip(rng.integers(0, rows.size, 400), rng.integers(0, n_out, 400), strict=True):
        assert y[b, j] == normal_at(key[0], key[1], j, rows[b], 7, 2)


def test_chunking_does_not_change_draws() -> None:
    key = stream_key(3, Stream.READ)
    whole = draw(key, 10_001, start=0)
    parts = np.concatenate([draw(key, 4_000, start=0), draw(key, 3_333, start=4_000),
                            draw(key, 2_668, start=7_333)])
    assert np.array_equal(whole, parts)
    # the noise of a read: bit-identical however the batch is split
    rng = np.random.default_rng(0)
    y = rng.standard_normal((37, 11)).astype(np.float32)
    var = rng.uniform(0.1, 2.0, (37, 11)).astype(np.float32)
    whole_y = y.copy()
    add_output_noise(whole_y, var, key, np.int64(5), as_rows(0, 37), np.int64(0))
    head, tail = y[:10].copy(), y[10:].copy()
    add_output_noise(head, var[:10], key, np.int64(5), as_rows(0, 10), np.int64(0))
    add_output_noise(tail, var[10:], key, np.int64(5), as_rows(10, 27), np.int64(0))
    np.testing.assert_array_equal(whole_y, np.concatenate([head, tail]))
    # the explicit per-device read MVM sums in its own fixed order: bit-identical too
    x = rng.standard_normal((37, 24))
    g = rng.uniform(0, 25, (11, 24))
    sigma = 0.1 * np.sqrt(g)
    full = np.empty((37, 11))
    explicit_read_mvm(x, g, sigma[None], 0, key, np.int64(5), as_rows(0, 37), np.int64(0), full)
    parts = [np.empty((10, 11)), np.empty((27, 11))]
    explicit_read_mvm(x[:10], g, sigma[None], 0, key, np.int64(5), as_rows(0, 10), np.int64(0),
                      parts[0])
    explicit_read_mvm(x[10:], g, sigma[None], 0, key, np.int64(5), as_rows(10, 27), np.int64(0),
                      parts[1])
    np.testing.assert_array_equal(full, np.concatenate(parts))
    # the fast path's noise-free product is OpenBLAS's, whose summation order depends on the
    # batch shape: equal to float32 rounding, not bit for bit (docs/devices.md)
    xf, gf, s2 = x.astype(np.float32), g.astype(np.float32), np.square(sigma).astype(np.float32)
    fast = read_mvm(xf, gf, s2, key, sample=5)
    split = np.concatenate([read_mvm(xf[:10], gf, s2, key, 5, row0=0),
                            read_mvm(xf[10:], gf, s2, key, 5, row0=10)])
    np.testing.assert_allclose(fast, split, rtol=1e-5, atol=1e-4)


_THREAD_SCRIPT = """
import hashlib, numpy as np
from bayesim.rng import draw, stream_key
from bayesim.crossbar.kernels import add_output_noise, explicit_read_mvm, read_mvm
from bayesim.devices.presets import load_preset
key = stream_key(9, 6)
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 40)).astype(np.float32)
g = rng.uniform(0, 25, (33, 40)).astype(np.float32)
h = hashlib.sha256()
h.update(draw(key, 100_001).tobytes())
h.update(read_mvm(x, g, 0.01 * g, key, sample=3).tobytes())
m = load_preset("pcm_ibm_2020")
gp = m.program(rng.uniform(1, 24, 5000), seed=4)
h.update(gp.tobytes())
h.update(m.at_time(gp, m.drift_exponents(gp, 4), 3600.0, 4).tobytes())
h.update(m.read(gp[:100], 7, seed=4).tobytes())
print(h.hexdigest())
"""


def test_bit_identical_across_thread_counts() -> None:
    digests = set()
    for threads in ("1", "2"):
        env = {"NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT], env=env, check=True,
                             capture_output=True, text=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_scalar_and_block_normals_agree() -> None:
    """Kernels that draw one normal at a time (normal_at) and the vectorised block fill used by
    draw() and the read noise give the same number for the same counter, tails included."""
    import numba

    from bayesim.rng import normal_at

    key = stream_key(4, Stream.PROGRAM)

    @numba.njit
    def scalar(n, start):
        out = np.empty(n)
        for i in range(n):
            out[i] = normal_at(key[0], key[1], start + i, 2, 1, 0)
        return out

    block = draw(key, 5_003, start=7, row=2, sample=1)
    np.testing.assert_array_equal(block, scalar(5_003, 7))
    assert np.abs(block).max() > 2.0  # the tail branch was exercised
