import math
import subprocess
import sys

import numpy as np
import pytest

from bayesim.crossbar.kernels import read_mvm
from bayesim.crossbar.rng import Stream, draw, philox_block, stream_key
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
    # the two normals of one Box–Muller pair are uncorrelated, including in their squares
    assert _max_abs_corr(base[0::2] ** 2, base[1::2] ** 2) < 5.0 / math.sqrt(N / 2)


def test_chunking_does_not_change_draws() -> None:
    key = stream_key(3, Stream.READ)
    whole = draw(key, 10_001, start=0)
    parts = np.concatenate([draw(key, 4_000, start=0), draw(key, 3_333, start=4_000),
                            draw(key, 2_668, start=7_333)])
    assert np.array_equal(whole, parts)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 24)).astype(np.float32)
    g = rng.uniform(0, 25, (11, 24)).astype(np.float32)
    s2 = (0.01 * g).astype(np.float32)
    full = read_mvm(x, g, s2, key, sample=5)
    split = np.concatenate([read_mvm(x[:10], g, s2, key, 5, row0=0),
                            read_mvm(x[10:], g, s2, key, 5, row0=10)])
    np.testing.assert_array_equal(full, split)


_THREAD_SCRIPT = """
import hashlib, numpy as np
from bayesim.crossbar.rng import draw, stream_key
from bayesim.crossbar.kernels import read_mvm
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
