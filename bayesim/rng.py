"""Counter-based random numbers (Philox4x32-10) usable inside numba kernels.

Every random number of the virtual hardware is a pure function of *what it is for*
(docs/devices.md, "Randomness"): a 64-bit **key** derived from (seed, stream purpose,
layer, tile) and a 128-bit **counter** made of (element, input index, sample index, block). So a
result never depends on the thread count, the batch size or how work was chunked, and two sample
indices (or two inputs) are independent streams.

Generator: Philox4x32 with 10 rounds (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC 2011), checked against the Random123 known-answer vectors in the tests. One call
maps a counter to four 32-bit words:

- uniforms in (0, 1): ``(w + 0.5) / 2^32``, four per call (element ``e`` uses the call at counter
  word ``e >> 2`` and its word ``e & 3``);
- normals: the inverse normal CDF of element ``e``'s uniform (Acklam's rational approximation,
  relative error < 1.2e-9 over (0, 1)). One uniform per normal keeps four normals per Philox call
  and lets the block fill (``fill_normals``) run as vectorised loops; the scalar ``normal_at`` and
  the block fill evaluate the same expressions, so a counter gives the same normal whichever path
  drew it. With 32-bit uniforms the largest |z| is ≈ 6.3; the tails beyond (probability 3e-10 per
  draw) are truncated;
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
_INV_2_32 = 1.0 / 4294967296.0


class Stream(IntEnum):
    """Purposes of random draws; each gets its own key, so streams never overlap."""
    PROGRAM = 1        # programming (write) noise: frozen at programming
    DRIFT_NU = 2       # per-device drift exponent ν: frozen at programming
    D2D = 3            # device-to-device spread: frozen at programming
    FAULT = 4          # stuck-at faults: frozen at programming
    ACCUMULATED = 5    # accumulated 1/f read noise at inference time t
    READ = 6           # per-read (per-MVM) noise: the Bayesian machine's sampler
    OUTPUT = 7         # output noise per read, explicit path (the fast path folds it into READ)
    PERIPHERY = 8      # frozen periphery variation (e.g. per-column output-noise spread)
    ROUNDING = 9       # stochastic rounding of DAC/ADC
    INPUT = 10         # DAC output (input) noise per read
    BIAS = 11          # digital bias samples of the Bayesian machine, per Monte-Carlo sample
    # seeds of the machine's own clocks (sub_seed), so that no machine stream is named by a string
    COPY = 12          # M3: the programming of copy r of the chip
    REPROGRAM = 13     # M2: the programming of Monte-Carlo sample s
    MC_READ = 14       # the per-read streams of one Monte-Carlo seed
    COPY_ORDER = 15    # M3: which copy sample s reads (a permutation per block of R samples)
    WEIGHT_DRAW = 16   # M0 'per_sample': the weight draw shared by all reads of sample s
    REALISED = 17      # the chip's own draws behind a realised-posterior report
    REPEAT_READ = 18   # the reads of a layer the model's forward calls again in the same sample


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _hash(seed: int, *parts: int) -> int:
    """splitmix64 chained over (seed, *parts); parts must be non-negative."""
    h = _splitmix64(int(seed) & 0xFFFFFFFFFFFFFFFF)
    for part in parts:
        if part < 0:
            raise ValueError(f"stream coordinates must be non-negative, got {part}")
        h = _splitmix64(h ^ (int(part) & 0xFFFFFFFFFFFFFFFF))
    return h


def stream_key(seed: int, stream: Stream | int, layer: int = 0, tile: int = 0) -> np.ndarray:
    """The Philox key ``[k0, k1]`` (uint32) of one stream: a splitmix64 hash of its coordinates."""
    h = _hash(seed, int(stream), int(layer), int(tile))
    return np.array([h & 0xFFFFFFFF, h >> 32], dtype=np.uint32)


def sub_seed(seed: int, purpose: Stream, *indices: int) -> int:
    """A 63-bit seed for one purpose of the machine's clocks (a programming of copy r, the
    re-programming of sample s, the reads of one Monte-Carlo seed): a splitmix64 hash of
    (seed, purpose, indices), a pure function of its arguments."""
    return _hash(seed, int(purpose), *(int(i) for i in indices)) >> 1


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


# Acklam's inverse normal CDF: a rational function of q = u − ½ in the central region
# [_P_LOW, 1 − _P_LOW], and of sqrt(−2 log p) in the tails (p = min(u, 1 − u)).
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00)
_P_LOW = 0.02425


# error_model="numpy": IEEE division without Python's zero check, which is what lets LLVM
# vectorise the loops that call these helpers.
@numba.njit(cache=True, inline="always", error_model="numpy")
def _ppf_central(u):
    q = u - 0.5
    r = q * q
    num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    den = ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
    return num / den


@numba.njit(cache=True, inline="always", error_model="numpy")
def _ppf_tail(u):
    p = u if u < 0.5 else 1.0 - u
    q = math.sqrt(-2.0 * math.log(p))
    z = ((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
         / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
    return z if u < 0.5 else -z


@numba.njit(cache=True, inline="always")
def _is_tail(u):
    return np.int64(u < _P_LOW) | np.int64(u > 1.0 - _P_LOW)


@numba.njit(cache=True, inline="always")
def normal_at(k0, k1, element, row, sample, block):
    """The standard normal of one counter coordinate (float64)."""
    u = uniform_at(k0, k1, element, row, sample, block)
    if _is_tail(u) != 0:
        return _ppf_tail(u)
    return _ppf_central(u)


@numba.njit(cache=True, error_model="numpy")
def fill_normals(k0, k1, start, row, sample, block, out, scratch, tails):
    """``out[i]`` = normal of element ``start + i`` (i < len(out)), identical to ``normal_at``.

    Three passes that LLVM vectorises (Philox words, the central rational function) plus a short
    scalar pass for the ≈ 4.9 % of draws in the tails. ``scratch`` is a float64 work array at
    least ``len(out) + 8`` long and ``tails`` an int64 array at least ``len(out)`` long (the caller
    owns both, so that a parallel caller can give each thread its own)."""
    n = out.shape[0]
    if n == 0:
        return
    first = np.uint64(start) >> np.uint64(2)
    offset = start - (np.int64(first) << 2)
    n_calls = (offset + n + 3) >> 2
    kk0 = np.uint64(k0)
    kk1 = np.uint64(k1)
    r = np.uint64(row)
    s = np.uint64(sample)
    bl = np.uint64(block)
    for c in range(n_calls):
        w0, w1, w2, w3 = philox4x32(first + np.uint64(c), r, s, bl, kk0, kk1)
        scratch[4 * c] = (np.float64(w0) + 0.5) * _INV_2_32
        scratch[4 * c + 1] = (np.float64(w1) + 0.5) * _INV_2_32
        scratch[4 * c + 2] = (np.float64(w2) + 0.5) * _INV_2_32
        scratch[4 * c + 3] = (np.float64(w3) + 0.5) * _INV_2_32
    for i in range(n):
        out[i] = _ppf_central(scratch[offset + i])
    # tails: compact their indices first (branch-free: always write, advance only on a tail), so
    # that LLVM cannot if-convert the loop and evaluate the logarithm for every element
    n_tail = 0
    for i in range(n):
        tails[n_tail] = i
        n_tail += _is_tail(scratch[offset + i])
    for t in range(n_tail):
        i = tails[t]
        out[i] = _ppf_tail(scratch[offset + i])


@numba.njit(cache=True, error_model="numpy")
def fill_row_normals(k0, k1, rows, sample, block, n, out, scratch, tails, call_row, call_word):
    """The normals of elements ``0 … n − 1`` for every row in ``rows``: ``out[r·stride + j]`` =
    ``normal_at(k0, k1, j, rows[r], sample, block)`` with ``stride = 4·⌈n/4⌉`` (the words
    ``j ≥ n`` of a row are padding). Like :func:`fill_normals`, but the Philox calls of all rows
    run in one flat loop, so that narrow rows (a convolution's few output channels) vectorise as
    well as wide ones. Work arrays, owned by the caller: ``scratch`` float64 and ``tails`` int64
    of at least ``len(rows)·stride`` entries, ``call_row`` and ``call_word`` uint64 of at least
    ``len(rows)·⌈n/4⌉``."""
    per_row = (n + 3) >> 2
    n_calls = rows.shape[0] * per_row
    if n_calls == 0:
        return
    k = 0
    for r in range(rows.shape[0]):
        for c in range(per_row):
            call_row[k] = np.uint64(rows[r])
            call_word[k] = np.uint64(c)
            k += 1
    kk0 = np.uint64(k0)
    kk1 = np.uint64(k1)
    s = np.uint64(sample)
    bl = np.uint64(block)
    for k in range(n_calls):
        w0, w1, w2, w3 = philox4x32(call_word[k], call_row[k], s, bl, kk0, kk1)
        scratch[4 * k] = (np.float64(w0) + 0.5) * _INV_2_32
        scratch[4 * k + 1] = (np.float64(w1) + 0.5) * _INV_2_32
        scratch[4 * k + 2] = (np.float64(w2) + 0.5) * _INV_2_32
        scratch[4 * k + 3] = (np.float64(w3) + 0.5) * _INV_2_32
    m = 4 * n_calls
    for i in range(m):
        out[i] = _ppf_central(scratch[i])
    n_tail = 0
    for i in range(m):
        tails[n_tail] = i
        n_tail += _is_tail(scratch[i])
    for t in range(n_tail):
        i = tails[t]
        out[i] = _ppf_tail(scratch[i])


_CHUNK = 1 << 16


@numba.njit(cache=True, parallel=True)
def _fill(out, kind, k0, k1, element0, row, sample, block):
    n = out.shape[0]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in numba.prange(n_chunks):
        lo = c * _CHUNK
        hi = min(n, lo + _CHUNK)
        if kind == 0:
            scratch = np.empty(hi - lo + 8)
            tails = np.empty(hi - lo, dtype=np.int64)
            fill_normals(k0, k1, element0 + lo, row, sample, block, out[lo:hi], scratch, tails)
        else:
            for i in range(lo, hi):
                e = element0 + i
                if kind == 1:
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


GAUSSIAN, LAPLACE = 0, 1
"""Shape codes of unit-variance noise (device cards' ``shape``)."""
NOISE_SHAPES = {"gaussian": GAUSSIAN, "laplace": LAPLACE}
"""The noise shapes a card may name, and the kernels' code of each: the one table of them
(device laws, DeviceModel and tiles read it)."""
_SQRT_HALF = math.sqrt(0.5)


@numba.njit(cache=True, inline="always")
def unit_noise(shape, k0, k1, element, row, sample, block):
    """A zero-mean, unit-variance draw: standard normal, or Laplace with scale 1/√2."""
    if shape == LAPLACE:
        return laplace_at(k0, k1, element, row, sample, block) * _SQRT_HALF
    return normal_at(k0, k1, element, row, sample, block)
