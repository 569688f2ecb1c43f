"""Counter-based random numbers (Philox4x32-10) usable inside numba kernels.

Every random number of the virtual hardware is a pure function of *what it is for*
(DESIGN.md, "Three clocks of randomness"): a 64-bit **key** derived from (seed, stream purpose,
layer, tile) and a 128-bit **counter** made of (element, input index, sample index, block). So a
result never depends on the thread count, the batch size or how work was chunked, and two sample
indices (or two inputs) are independent streams.

Generator: Philox4x32 with 10 rounds (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC 2011), checked against the Random123 known-answer vectors in the tests. One call
maps a counter to four 32-bit words:

- normals: Box–Muller on two words gives two normals, so normal ``e`` uses the call at counter word
  ``e >> 1`` and takes the cosine (even ``e``) or sine (odd ``e``) branch. With 32-bit uniforms the
  largest |z| is ≈ 6.7; tails beyond that are truncated (probability < 3e-11 per draw);
- uniforms in (0, 1): ``(w + 0.5) / 2^32``, four per call (``e >> 2``, word ``e & 3``);
- Laplace(0, b): inverse CDF of one uniform.

Indices are passed to the kernels as int64 (numba promotes uint64 + int64 to float64).
Counter layout: ``c0`` element index (< 2^32 after the shift), ``c1`` input index (row of a batch),
``c2`` sample index, ``c3`` block (0 for the first draw of a purpose; a purpose needing several
independent draws per element uses blocks 1, 2, …).
"""

import math
from enum import IntEnum

import numba
import numpy as np

_MASK32 = np.uint64(0xFFFFFFFF)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_TWO_PI = 2.0 * math.pi
_INV_2_32 = 1.0 / 4294967296.0


class Stream(IntEnum):
    """Purposes of random draws; each gets its own key, so streams never overlap."""
    PROGRAM = 1        # programming (write) noise: frozen at programming
    DRIFT_NU = 2       # per-device drift exponent ν: frozen at programming
    D2D = 3            # device-to-device spread: frozen at programming
    FAULT = 4          # stuck-at faults: frozen at programming
    ACCUMULATED = 5    # accumulated 1/f read noise at inference time t
    READ = 6           # per-read (per-MVM) noise: the Bayesian machine's sampler
    OUTPUT = 7         # additive output (ADC input) noise per read
    PERIPHERY = 8      # frozen periphery variation (e.g. per-column output-noise spread)
    ROUNDING = 9       # stochastic rounding of DAC/ADC


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def stream_key(seed: int, stream: Stream | int, layer: int = 0, tile: int = 0) -> np.ndarray:
    """The Philox key ``[k0, k1]`` (uint32) of one stream: a splitmix64 hash of its coordinates."""
    h = _splitmix64(int(seed) & 0xFFFFFFFFFFFFFFFF)
    for part in (int(stream), int(layer), int(tile)):
        if part < 0:
            raise ValueError(f"stream coordinates must be non-negative, got {part}")
        h = _splitmix64(h ^ (part & 0xFFFFFFFFFFFFFFFF))
    return np.array([h & 0xFFFFFFFF, h >> 32], dtype=np.uint32)


@numba.njit(cache=True, inline="always")
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10: four uint32 counter words and two key words → four uint32 words."""
    x0 = np.uint64(c0)
    x1 = np.uint64(c1)
    x2 = np.uint64(c2)
    x3 = np.uint64(c3)
    a = np.uint64(k0)
    b = np.uint64(k1)
    for _ in range(10):
        p0 = _M0 * x0
        p1 = _M1 * x2
        y0 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & _MASK32
        y1 = p1 & _MASK32
        y2 = ((p0 >> np.uint64(32)) ^ x3 ^ b) & _MASK32
        y3 = p0 & _MASK32
        x0, x1, x2, x3 = y0, y1, y2, y3
        a = (a + _W0) & _MASK32
        b = (b + _W1) & _MASK32
    return x0, x1, x2, x3


@numba.njit(cache=True, inline="always")
def normal_at(k0, k1, element, row, sample, block):
    """The standard normal of one counter coordinate (float64)."""
    w0, w1, w2, w3 = philox4x32(np.uint64(element) >> np.uint64(1), row, sample, block, k0, k1)
    u = (np.float64(w0) + 0.5) * _INV_2_32
    r = math.sqrt(-2.0 * math.log(u))
    theta = _TWO_PI * (np.float64(w1) + 0.5) * _INV_2_32
    if element & 1:
        return r * math.sin(theta)
    return r * math.cos(theta)


@numba.njit(cache=True, inline="always")
def normal_pair_at(k0, k1, pair, row, sample, block):
    """Normals ``2·pair`` and ``2·pair + 1`` of a stream, from one Philox call."""
    w0, w1, w2, w3 = philox4x32(pair, row, sample, block, k0, k1)
    u = (np.float64(w0) + 0.5) * _INV_2_32
    r = math.sqrt(-2.0 * math.log(u))
    theta = _TWO_PI * (np.float64(w1) + 0.5) * _INV_2_32
    return r * math.cos(theta), r * math.sin(theta)


@numba.njit(cache=True, inline="always")
def uniform_at(k0, k1, element, row, sample, block):
    """A uniform draw in (0, 1) (float64)."""
    w = philox4x32(np.uint64(element) >> np.uint64(2), row, sample, block, k0, k1)
    j = element & 3
    word = w[0] if j == 0 else (w[1] if j == 1 else (w[2] if j == 2 else w[3]))
    return (np.float64(word) + 0.5) * _INV_2_32


@numba.njit(cache=True, inline="always")
def laplace_at(k0, k1, element, row, sample, block):
    """A standard Laplace draw (scale b = 1, variance 2) by the inverse CDF."""
    u = uniform_at(k0, k1, element, row, sample, block) - 0.5
    if u < 0.0:
        return math.log1p(2.0 * u)
    return -math.log1p(-2.0 * u)


@numba.njit(cache=True, parallel=True)
def _fill(out, kind, k0, k1, element0, row, sample, block):
    n = out.shape[0]
    for i in numba.prange(n):
        e = element0 + i
        if kind == 0:
            out[i] = normal_at(k0, k1, e, row, sample, block)
        elif kind == 1:
            out[i] = uniform_at(k0, k1, e, row, sample, block)
        else:
            out[i] = laplace_at(k0, k1, e, row, sample, block)


_KINDS = {"normal": 0, "uniform": 1, "laplace": 2}


def draw(key: np.ndarray, n: int, kind: str = "normal", *, start: int = 0, row: int = 0,
         sample: int = 0, block: int = 0) -> np.ndarray:
    """Elements ``start … start + n − 1`` of one stream as float64 (normal, uniform or Laplace)."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    if n < 0 or start < 0 or start + n > 2 ** 33:
        raise ValueError("element indices must lie in [0, 2^33)")
    out = np.empty(n, dtype=np.float64)
    _fill(out, _KINDS[kind], np.uint32(key[0]), np.uint32(key[1]), np.int64(start),
          np.int64(row), np.int64(sample), np.int64(block))
    return out


@numba.njit(cache=True)
def philox_block(counter, key):
    """Philox4x32-10 on explicit words (for known-answer tests)."""
    w = philox4x32(np.uint64(counter[0]), np.uint64(counter[1]), np.uint64(counter[2]),
                   np.uint64(counter[3]), np.uint64(key[0]), np.uint64(key[1]))
    return np.array([w[0], w[1], w[2], w[3]], dtype=np.uint32)
