"""The crossbar's elementwise kernels in torch, for any torch device (the ``torch`` backend).

The same numbers as the numba kernels (kernels.py) and the same counter-based generator as
bayesim.rng: Philox4x32-10 (Salmon et al., SC 2011) on int64 tensors, so a draw is a pure function
of (key, element, input row, sample, block) on every device, and a batch split into chunks draws
what the whole batch draws. Uniforms are ``(w + ½)/2³²``; normals the inverse CDF of one uniform
by Acklam's rational approximation (the coefficients of bayesim.rng), so a counter gives the same
normal as ``rng.normal_at`` up to the last bits of the tail's logarithm.

The 32 × 32 → 64-bit products of Philox are int64 multiplications: a product beyond 2⁶³ wraps
to a negative int64 whose two's-complement bits are the unsigned product's, and an arithmetic
right shift followed by a 32-bit mask recovers its high word (checked against Random123's
known-answer vectors in the tests).

Shapes follow kernels.py: inputs ``x[rows, in]``, weights ``w[out, in]``, outputs ``[rows, out]``.
"""

import torch

from bayesim.rng import _A, _B, _C, _D, _M0, _M1, _P_LOW, _W0, _W1

_MASK = 0xFFFFFFFF
_INV_2_32 = 1.0 / 4294967296.0
_MULT = (int(_M0), int(_M1))
_WEYL = (int(_W0), int(_W1))


def philox4x32(c0: torch.Tensor, c1: torch.Tensor, c2: int | torch.Tensor,
               c3: int | torch.Tensor, k0: int, k1: int) -> tuple[torch.Tensor, ...]:
    """Philox4x32-10 on int64 tensors holding 32-bit words (broadcast together): four words
    out, each an int64 tensor in [0, 2³²)."""
    x0, x1 = c0, c1
    x2 = torch.as_tensor(c2, dtype=torch.int64, device=c0.device).expand_as(c0)
    x3 = torch.as_tensor(c3, dtype=torch.int64, device=c0.device)
    a, b = int(k0), int(k1)
    m0, m1 = _MULT
    for _ in range(10):
        p0 = x0 * m0
        p1 = x2 * m1
        y0 = ((p1 >> 32) & _MASK).bitwise_xor_(x1).bitwise_xor_(a)
        y2 = ((p0 >> 32) & _MASK).bitwise_xor_(x3).bitwise_xor_(b)
        x0, x1, x2, x3 = y0, p1.bitwise_and_(_MASK), y2, p0.bitwise_and_(_MASK)
        a = (a + _WEYL[0]) & _MASK
        b = (b + _WEYL[1]) & _MASK
    return x0, x1, x2, x3


_CALLS_PER_CHUNK = 1 << 15
"""Philox calls evaluated together (2¹⁵ calls, 2¹⁷ words): the work arrays of a chunk stay in
cache, which on 2 CPU cores made the eager torch generator 2× faster than one pass over a
batch of 200,000 rows; the chunking never changes a draw."""


def _words(key, n: int, rows: torch.Tensor, sample: int, block: int) -> torch.Tensor:
    """``[len(rows), 4·⌈n/4⌉]`` int64 Philox words: word j of row b at counter
    (j >> 2, rows[b], sample, block)."""
    per_row = (n + 3) >> 2
    word = torch.arange(per_row, dtype=torch.int64, device=rows.device)[None, :]
    row = rows.to(torch.int64)[:, None]
    words = philox4x32(word.expand(row.shape[0], per_row), row.expand(-1, per_row), sample,
                       block, int(key[0]), int(key[1]))
    return torch.stack(words, dim=-1).reshape(row.shape[0], 4 * per_row)


def _chunks(n: int, rows: torch.Tensor):
    """Row slices of about ``_CALLS_PER_CHUNK`` Philox calls each."""
    step = max(1, _CALLS_PER_CHUNK // ((n + 3) >> 2))
    for lo in range(0, rows.shape[0], step):
        yield slice(lo, lo + step)


def uniforms(key, n: int, rows: torch.Tensor, sample: int, block: int) -> torch.Tensor:
    """``[len(rows), n]`` float64 uniforms in (0, 1): element j of row b at counter
    (j, rows[b], sample, block) under ``key`` (``rng.uniform_at``)."""
    out = torch.empty((rows.shape[0], n), dtype=torch.float64, device=rows.device)
    for part in _chunks(n, rows):
        w = _words(key, n, rows[part], sample, block)[:, :n]
        out[part] = w.to(torch.float64).add_(0.5).mul_(_INV_2_32)
    return out


def _horner(t: torch.Tensor, coefficients: tuple[float, ...]) -> torch.Tensor:
    """Σ c_k t^(K−k) by Horner's rule, in place on one new array."""
    acc = t * coefficients[0]
    for c in coefficients[1:-1]:
        acc.add_(c).mul_(t)
    return acc.add_(coefficients[-1])


def _ppf(u: torch.Tensor) -> torch.Tensor:
    """Acklam's inverse normal CDF (rng._ppf_central / rng._ppf_tail) of a 1-D float64 array."""
    q = u - 0.5
    r = q * q
    z = _horner(r, _A).mul_(q).div_(_horner(r, (*_B, 1.0)))
    p = torch.minimum(u, 1.0 - u)
    tail = (p < _P_LOW).nonzero().squeeze(1)
    if tail.numel():
        t = p.index_select(0, tail).log_().mul_(-2.0).sqrt_()
        zt = _horner(t, _C).div_(_horner(t, (*_D, 1.0)))
        sign = torch.where(u.index_select(0, tail) < 0.5, 1.0, -1.0)
        z.index_copy_(0, tail, zt.mul_(sign))
    return z


def normals(key, n: int, rows: torch.Tensor, sample: int, block: int) -> torch.Tensor:
    """``[len(rows), n]`` float64 standard normals at counters (j, rows[b], sample, block)
    (``rng.normal_at``)."""
    out = torch.empty((rows.shape[0], n), dtype=torch.float64, device=rows.device)
    for part in _chunks(n, rows):
        w = _words(key, n, rows[part], sample, block)[:, :n]
        u = w.to(torch.float64).add_(0.5).mul_(_INV_2_32)
        out[part] = _ppf(u.reshape(-1)).reshape(u.shape)
    return out


def add_noise(base: torch.Tensor, var: torch.Tensor, key, sample: int, rows: torch.Tensor,
              block: int) -> torch.Tensor:
    """``base + sqrt(var)·ξ`` as float32 (kernels.noise_kernel, white): ξ the normal at counter
    (j, rows[b], sample, block); the sum is formed in float64 and rounded once."""
    z = normals(key, base.shape[1], rows, sample, block)
    return (base.to(torch.float64) + torch.sqrt(var).to(torch.float64) * z).to(torch.float32)


def scale_quantize_clip(src: torch.Tensor, scale: torch.Tensor, step: float, bound: float,
                        sto_round: bool, key, sample: int, rows: torch.Tensor, block: int,
                        post: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The DAC/ADC of kernels.scale_quantize_clip in float32: ``clip(round(src/scale/step)·step,
    ±bound)·post`` per row (half-to-even rounding; stochastic rounding adds U(−½, ½) at counter
    (j, rows[b], sample, block) first; ``step`` ≤ 0 skips quantisation). Returns the result and
    the per-row 'clipped' flags."""
    s = torch.tensor(step, dtype=torch.float32)
    lim = torch.tensor(bound, dtype=torch.float32)
    q = src.to(torch.float32) / scale.to(torch.float32)[:, None]
    if step > 0.0:
        q = q / s
        if sto_round:
            u = uniforms(key, src.shape[1], rows, sample, block)
            q = q + (u - 0.5).to(torch.float32)
        q = torch.round(q) * s
    clipped = ((q > lim) | (q < -lim)).any(dim=1)
    q = torch.clamp(q, -lim, lim)
    if post is not None:
        q = q * post.to(torch.float32)[:, None]
    return q, clipped


def read_moments(x: torch.Tensor, w: torch.Tensor, var_w: torch.Tensor | None,
                 extra_var: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean ``x·wᵀ`` and variance ``x²·(σ²)ᵀ + s²`` of the output-referred read (None without
    noise), float32 (kernels.read_moments)."""
    y = x.matmul(w.T)
    if var_w is None and extra_var is None:
        return y, None
    var = x.square().matmul(var_w.T) if var_w is not None else torch.zeros_like(y)
    if extra_var is not None:
        var = var + extra_var
    return y, var
