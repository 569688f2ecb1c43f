"""numba kernels of the crossbar: noisy MVMs (output-referred and per device), DAC/ADC, im2col.

Kernels work on float32/float64 arrays of weights in tile units and on per-device σ arrays that
the caller evaluated beforehand; they know nothing of device cards (the write, drift and
single-device read kernels live with the devices, bayesim.devices.kernels). Every random number
comes from bayesim.rng at a counter coordinate fixed by *what* it is (element index, input row,
sample index), so results are bit-identical for any thread count and any chunking.

Matrix products go through torch (:func:`matmul_t`), not numpy. numpy's OpenBLAS keeps its own
thread pool, and on a small machine its threads and the OpenMP threads of the numba kernels take
turns badly: with torch loaded first (so OpenMP spins by default) a 256 × 512 · 512 × 512 noisy
read took 8.0 ms with numpy products and 2.0 ms with torch's (benchmarks/read_kernel.py).

Shapes: a crossbar holds conductances ``G[out, in]`` and computes ``y = x @ G.T`` for inputs
``x[batch, in]``.
"""

import math

import numba
import numpy as np
import torch

from bayesim.rng import GAUSSIAN, LAPLACE, fill_row_normals, uniform_at, unit_noise  # noqa: F401


def as_rows(row0: int | np.ndarray, batch: int) -> np.ndarray:
    """Global input indices of a batch's rows: ``row0, row0 + 1, …`` or an explicit index array
    (bound management recomputes only some rows, which keep their own indices)."""
    if isinstance(row0, np.ndarray):
        if row0.shape != (batch,):
            raise ValueError(f"rows must have shape ({batch},), got {row0.shape}")
        return row0.astype(np.int64, copy=False)
    return np.arange(int(row0), int(row0) + batch, dtype=np.int64)


_ELEMENTS_PER_TASK = 2048


@numba.njit(cache=True, parallel=True, error_model="numpy")
def noise_kernel(y, base, var, key, sample, rows, block, state, carry, fresh):
    """``y[b, j] = base[b, j] + sqrt(var[b, j])·ξ[b, j]`` (``base`` may be ``y``: in place) with
    ``ξ = carry·state + fresh·z`` and z
    the normal at counter (j, rows[b], sample, block); ``state`` (the previous ξ, same shape as
    ``y``) is overwritten with the new ξ. An empty ``state`` means white noise, ξ = z. Rows are
    handed out in groups of about 2,048 elements (one set of work arrays per group), whose
    normals are drawn by one flat, vectorised fill (rng.fill_row_normals) however narrow the
    rows; the grouping never changes a draw."""
    batch, n_out = y.shape
    stateful = state.shape[0] > 0
    per_row = (n_out + 3) >> 2
    stride = 4 * per_row
    rows_per_task = max(1, _ELEMENTS_PER_TASK // stride)
    n_tasks = (batch + rows_per_task - 1) // rows_per_task
    for task in numba.prange(n_tasks):
        lo = task * rows_per_task
        hi = min(batch, lo + rows_per_task)
        size = (hi - lo) * stride
        z = np.empty(size)
        scratch = np.empty(size)
        tails = np.empty(size, dtype=np.int64)
        call_row = np.empty((hi - lo) * per_row, dtype=np.uint64)
        call_word = np.empty((hi - lo) * per_row, dtype=np.uint64)
        fill_row_normals(key[0], key[1], rows[lo:hi], sample, block, n_out, z, scratch, tails,
                         call_row, call_word)
        for b in range(lo, hi):
            first = (b - lo) * stride
            if stateful:
                for j in range(n_out):
                    xi = carry * state[b, j] + fresh * z[first + j]
                    state[b, j] = xi
                    y[b, j] = base[b, j] + math.sqrt(var[b, j]) * xi
            else:
                for j in range(n_out):
                    y[b, j] = base[b, j] + math.sqrt(var[b, j]) * z[first + j]


_NO_STATE = np.empty((0, 0))


def add_output_noise(y: np.ndarray, var: np.ndarray, key: np.ndarray, sample: int,
                     rows: np.ndarray, block: int, base: np.ndarray | None = None) -> None:
    """``y[b, j] = base[b, j] + sqrt(var[b, j])·ξ`` (in place, ``y += …``, without ``base``),
    ξ the standard normal at counter (j, rows[b], sample, block): white noise."""
    noise_kernel(y, y if base is None else base, var, key, np.int64(sample), rows,
                 np.int64(block), _NO_STATE, 0.0, 1.0)


def add_ar1_output_noise(y: np.ndarray, var: np.ndarray, key: np.ndarray, sample: int,
                         rows: np.ndarray, state: np.ndarray | None,
                         rho: float) -> np.ndarray:
    """Like :func:`add_output_noise` (block 0), but ξ follows an AR(1) process over successive
    reads: ``ξ_s = ρ·ξ_{s−1} + sqrt(1 − ρ²)·z_s`` (docs/machine.md, "Correlated reads"),
    stationary with unit variance; ``state`` is ξ of the previous read (None for the
    first read: ξ = z). Returns the new state."""
    if state is None:
        state = np.zeros(y.shape)
        carry, fresh = 0.0, 1.0
    else:
        carry, fresh = rho, math.sqrt(1.0 - rho * rho)
    noise_kernel(y, y, var, key, np.int64(sample), rows, np.int64(0), state, carry, fresh)
    return state


@numba.njit(cache=True, parallel=True)
def explicit_read_mvm(x, g, sigma, shape, key, sample, rows, block, out):
    """The per-device path: every device of every weight gets its own read noise for every input
    row, ``y[b, j] = Σ_i x[b, i]·(G[j, i] + Σ_k σ[k, j, i]·ξ[b, k, j, i])``, where ``σ[k]`` is
    the read σ of device k of the weight (a differential pair has two, M4 2n; a single σ per
    weight is ``σ[None]``) and ξ has the card's shape, at counter ((k·n_out + j)·n_in + i,
    rows[b], sample, block). Slow (one draw per device and row); exists to validate the
    output-referred path and for non-Gaussian shapes, whose sum over devices is not one draw of
    the same shape. Sums run in a fixed order, so results are bit-identical for any chunking."""
    batch, n_in = x.shape
    n_out = g.shape[0]
    n_dev = sigma.shape[0]
    for b in numba.prange(batch):
        row = rows[b]
        for j in range(n_out):
            acc = 0.0
            for i in range(n_in):
                w = g[j, i]
                for k in range(n_dev):
                    xi = unit_noise(shape, key[0], key[1], (k * n_out + j) * n_in + i, row,
                                    sample, block)
                    w += sigma[k, j, i] * xi
                acc += x[b, i] * w
            out[b, j] = acc


def matmul_t(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T`` through torch's BLAS (zero-copy views of the numpy arrays; float32 in, float32
    out). Rounding of a BLAS product depends on the batch shape and thread count; every random
    draw does not."""
    return torch.from_numpy(np.ascontiguousarray(x)).matmul(torch.from_numpy(w).T).numpy()


def read_mvm(x: np.ndarray, g: np.ndarray, sigma_sq: np.ndarray | None, key: np.ndarray,
             sample: int, row0: int | np.ndarray = 0, block: int = 0,
             extra_var: np.ndarray | None = None) -> np.ndarray:
    """The output-referred (fast) path of a noisy read MVM, exact for Gaussian per-device noise:
    ``y = x @ G.T + sqrt((x²) @ (σ²).T + s²)·ξ``, one draw per output (docs/crossbar.md, "One
    tile MVM").

    ``x[batch, in]``, ``g[out, in]`` (µS, or weight units), ``sigma_sq[out, in]`` the per-device
    read variances (same units squared; None for no device noise); ``extra_var[out]`` an
    input-independent output variance drawn with the same ξ (the periphery's output noise: the sum
    of independent Gaussians is one Gaussian). ``row0`` is the global index of ``x``'s first row
    (or an index per row), so a batch split into chunks draws the same numbers as the whole
    batch; ``block`` separates repeated reads of the same rows (bound management)."""
    y, var = read_moments(x, g, sigma_sq, extra_var)
    if var is not None:
        add_output_noise(y, var, key, np.int64(sample), as_rows(row0, x.shape[0]),
                         np.int64(block))
    return y


def read_moments(x: np.ndarray, g: np.ndarray, sigma_sq: np.ndarray | None,
                 extra_var: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean ``x @ G.T`` and variance ``x² @ (σ²).T + s²`` of the output-referred read (None
    without noise): the part of :func:`read_mvm` that does not depend on the draw, so that
    repeated reads of the same inputs can reuse it."""
    y = matmul_t(x, g)
    if sigma_sq is None and extra_var is None:
        return y, None
    if sigma_sq is not None:  # x² in torch: threaded, unlike numpy's
        x_sq = torch.from_numpy(np.ascontiguousarray(x)).square()
        var = x_sq.matmul(torch.from_numpy(sigma_sq).T).numpy()
    else:
        var = np.zeros_like(y)
    if extra_var is not None:
        var += extra_var
    return y, var


@numba.njit(cache=True, parallel=True, error_model="numpy")
def scale_quantize_clip(src, scale, dst, step, bound, sto_round, key, sample, rows, block,
                        clipped, post):
    """The fused DAC/ADC kernel: ``dst[b, j] = clip(round(src[b, j]/scale[b]/step)·step, −bound,
    bound)·post[b]`` (aihwkit UniformQuantize followed by its clamp, after noise management's
    division by α; ``post``, float32 ones for the DAC, is the ADC's digital rescale by the output
    scale and α), with stochastic rounding (``v/step + U(−½, ½)`` before rounding, U at counter
    (j, rows[b], sample, block)) when ``sto_round``; ``step`` ≤ 0 skips quantization. Rounding is
    half-to-even like torch.round, and arithmetic runs in ``dst``'s dtype, so float32 matches
    aihwkit bit for bit. ``dst`` may be ``src``. ``clipped[b]`` becomes True when any value of
    row b lay beyond ±bound (the bound-management test)."""
    batch, n = dst.shape
    s = dst.dtype.type(step)
    lim = dst.dtype.type(bound)
    quantize = step > 0.0
    for b in numba.prange(batch):
        hits = 0
        row_scale = dst.dtype.type(scale[b])
        row_post = dst.dtype.type(post[b])
        if quantize and sto_round:
            for j in range(n):
                q = dst.dtype.type(src[b, j]) / row_scale / s
                u = uniform_at(key[0], key[1], j, rows[b], sample, block)
                q = np.rint(q + dst.dtype.type(u - 0.5)) * s
                hits += np.int64(q > lim) | np.int64(q < -lim)
                dst[b, j] = min(max(q, -lim), lim) * row_post
        elif quantize:  # branch-free, so that LLVM vectorises it
            for j in range(n):
                q = np.rint(dst.dtype.type(src[b, j]) / row_scale / s) * s
                hits += np.int64(q > lim) | np.int64(q < -lim)
                dst[b, j] = min(max(q, -lim), lim) * row_post
        else:
            for j in range(n):
                q = dst.dtype.type(src[b, j]) / row_scale
                hits += np.int64(q > lim) | np.int64(q < -lim)
                dst[b, j] = min(max(q, -lim), lim) * row_post
        clipped[b] = hits > 0


def quantize_clip(v: np.ndarray, step: float, bound: float, sto_round: bool, key: np.ndarray,
                  sample: int, rows: np.ndarray, block: int, clipped: np.ndarray,
                  post: np.ndarray | None = None) -> None:
    """:func:`scale_quantize_clip` in place on ``v[batch, n]`` with no input scaling; each row
    multiplied by ``post`` (float32) afterwards when given."""
    ones = np.ones(v.shape[0])
    scale_quantize_clip(v, ones, v, step, bound, sto_round, key, sample, rows, block, clipped,
                        ones.astype(v.dtype) if post is None else post)


@numba.njit(cache=True, parallel=True)
def row_max(x, absolute, out):
    """``out[b]`` = max_j |x[b, j]| (``absolute``) or max_j x[b, j], as float64."""
    for b in numba.prange(x.shape[0]):
        m = -np.inf
        if absolute:
            for j in range(x.shape[1]):
                m = max(m, abs(x[b, j]))
        else:
            for j in range(x.shape[1]):
                m = max(m, x[b, j])
        out[b] = m


@numba.njit(cache=True, parallel=True)
def _im2col_kernel(h, k, stride, out):
    batch, channels, height, width = h.shape
    h_out = (height - k) // stride + 1
    w_out = (width - k) // stride + 1
    for b in numba.prange(batch):
        for i in range(h_out):
            for j in range(w_out):
                r = (b * h_out + i) * w_out + j
                c = 0
                for ch in range(channels):
                    for u in range(k):
                        for v in range(k):
                            out[r, c] = h[b, ch, i * stride + u, j * stride + v]
                            c += 1


def im2col(h: np.ndarray, k: int, stride: int) -> np.ndarray:
    """The patches of a convolution as rows: ``h[batch, C, H, W]`` (already padded) →
    ``[batch·H_out·W_out, C·k·k]`` float32, row (b, i, j) holding channel-major k × k windows
    (the order of a ``[out, C, k, k]`` weight flattened); a parallel copy, 2× torch's strided
    one on 2 cores."""
    h = np.ascontiguousarray(h, dtype=np.float32)
    batch, channels, height, width = h.shape
    h_out, w_out = (height - k) // stride + 1, (width - k) // stride + 1
    out = np.empty((batch * h_out * w_out, channels * k * k), dtype=np.float32)
    _im2col_kernel(h, np.int64(k), np.int64(stride), out)
    return out


@numba.njit(cache=True, parallel=True)
def scale_to_float32(y, scale, bias):
    """In place on ``y[batch, n]``: ``y = float32(0 + float64(y)·scale) + bias`` (``bias``
    float32 per column, or empty for none): exactly what adding one tile's output, scaled in
    float64, to a zero float64 accumulator, rounding to float32 and adding a float32 bias gives."""
    n = y.shape[1]
    with_bias = bias.shape[0] > 0
    for b in numba.prange(y.shape[0]):
        for j in range(n):
            v = np.float32(0.0 + np.float64(y[b, j]) * scale)
            y[b, j] = v + bias[j] if with_bias else v
