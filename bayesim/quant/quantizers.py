"""Quantizers with straight-through gradients (Borras et al., arXiv 2512.10602).

* :func:`quantize_uniform` — symmetric, signed, narrow range: codes ``−(2^{b−1}−1) … 2^{b−1}−1``
  times a scale, so zero is exact and the grid is symmetric; per tensor or per output channel;
  round half to even; clipped STE (gradient 1 inside the clip range, 0 outside). With ``b = 1``
  the narrow range has no non-zero code, so 1 bit means the binary quantizer ``s·sign(x)`` with
  ``s = mean|x|`` (BinaryConnect/XNOR-Net scaling), STE clipped at ``|x| ≤ max|x|``.
* :func:`quantize_log` — for σ > 0: ``log2 σ`` on a uniform grid of ``2^b`` codes (all used, no zero
  code) between ``ℓ_min`` and ``ℓ_max = log2 max σ``. The dynamic-range policy sets ``ℓ_min`` to
  ``log2`` of the ``min_quantile`` quantile of σ (default 0.01), so that the smallest σ of the
  tensor stay resolvable instead of collapsing onto one code, while a few outliers near zero do not
  stretch the grid; σ below ``ℓ_min`` clamp to the smallest code (never to 0). STE: identity.
* :func:`quantize_uniform_unsigned` — the ablation for σ: ``2^b`` codes ``0 … (2^b−1)·s`` with
  ``s = max σ / (2^b − 1)``; small σ round to exactly 0, i.e. the posterior collapses to a point.

All functions return dequantized float tensors (the "fake-quantized" values) and accept an optional
precomputed scale or range so that a quantizer can be frozen after calibration.
"""

import math

import torch

MIN_BITS, MAX_BITS = 1, 16
DEFAULT_MIN_QUANTILE = 0.01
"""Quantile of σ that sets the bottom of the log grid (see the module docstring)."""
_QUANTILE_SAMPLE_LIMIT = 1 << 20  # torch.quantile's input-size limit is 2^24; subsample above this


def check_bits(bits: int) -> int:
    """Return ``bits`` if it is an integer in [1, 16], else raise ValueError."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return bits


def straight_through(x: torch.Tensor, x_quantized: torch.Tensor,
                     pass_gradient: torch.Tensor | None = None) -> torch.Tensor:
    """Forward exactly ``x_quantized``; backward the identity (times ``pass_gradient``).

    Written as ``x_q + (x − x)`` with the first two terms detached, so the forward value has no
    rounding error (``x + (x_q − x)`` would not be exactly on the grid)."""
    zero_with_gradient = x - x.detach()
    if pass_gradient is not None:
        zero_with_gradient = zero_with_gradient * pass_gradient
    return x_quantized.detach() + zero_with_gradient


def _reduce_dims(x: torch.Tensor, per_channel: bool) -> tuple[int, ...] | None:
    return tuple(range(1, x.ndim)) if per_channel and x.ndim > 1 else None


def _abs_reduce(x: torch.Tensor, per_channel: bool, how: str) -> torch.Tensor:
    dims = _reduce_dims(x, per_channel)
    a = x.detach().abs()
    if dims is None:
        return a.max() if how == "max" else a.mean()
    return a.amax(dim=dims, keepdim=True) if how == "max" else a.mean(dim=dims, keepdim=True)


def uniform_levels(bits: int) -> int:
    """Largest code of the symmetric narrow-range grid, ``2^{b−1} − 1`` (0 for one bit)."""
    return 2 ** (check_bits(bits) - 1) - 1


def uniform_scale(x: torch.Tensor, bits: int, per_channel: bool = False) -> torch.Tensor:
    """Step size mapping ``max|x|`` onto the largest code (``mean|x|`` for 1 bit); an all-zero
    tensor (or channel) gets scale 1 so that it stays exactly zero."""
    levels = uniform_levels(bits)
    if levels == 0:
        scale = _abs_reduce(x, per_channel, "mean")
    else:
        scale = _abs_reduce(x, per_channel, "max") / levels
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_uniform(x: torch.Tensor, bits: int, scale: torch.Tensor | None = None,
                     per_channel: bool = False) -> torch.Tensor:
    """Symmetric signed uniform quantization with a clipped straight-through gradient."""
    levels = uniform_levels(bits)
    if scale is None:
        scale = uniform_scale(x, bits, per_channel)
    if levels == 0:
        clip = _abs_reduce(x, per_channel, "max")
        return straight_through(x, scale * torch.sign(x), (x.abs() <= clip).to(x.dtype))
    ratio = x / scale
    q = torch.clamp(torch.round(ratio), -levels, levels)
    inside = (ratio.abs() <= levels + 0.5).to(x.dtype)
    return straight_through(x, q * scale, inside)


def log_range(sigma: torch.Tensor, bits: int,
              min_quantile: float = DEFAULT_MIN_QUANTILE) -> tuple[float, float]:
    """``(ℓ_min, ℓ_max)`` in log2 units for ``2^bits`` log codes, by the quantile policy."""
    check_bits(bits)
    if not 0.0 <= min_quantile < 1.0:
        raise ValueError(f"min_quantile must lie in [0, 1), got {min_quantile}")
    s = sigma.detach().reshape(-1).double()
    if s.numel() == 0 or not bool((s > 0).all()):
        raise ValueError("the logarithmic quantizer needs σ > 0 everywhere")
    if s.numel() > _QUANTILE_SAMPLE_LIMIT:
        s = s[torch.linspace(0, s.numel() - 1, _QUANTILE_SAMPLE_LIMIT).long()]
    l_max = math.log2(float(s.max()))
    l_min = math.log2(float(torch.quantile(s, min_quantile))) if min_quantile > 0 else \
        math.log2(float(s.min()))
    return min(l_min, l_max), l_max


def quantize_log(sigma: torch.Tensor, bits: int, log2_range: tuple[float, float] | None = None,
                 min_quantile: float = DEFAULT_MIN_QUANTILE) -> torch.Tensor:
    """Logarithmic quantization of σ > 0 onto ``2^bits`` codes ``2^{ℓ_min + k·Δ}``."""
    n_codes = 2 ** check_bits(bits)
    l_min, l_max = log_range(sigma, bits, min_quantile) if log2_range is None else log2_range
    step = (l_max - l_min) / (n_codes - 1)
    if step <= 0:  # all σ equal (or one code): every σ becomes that value
        return straight_through(sigma, torch.full_like(sigma, 2.0 ** l_max))
    level = torch.log2(sigma.detach().clamp_min(torch.finfo(sigma.dtype).tiny))
    k = torch.clamp(torch.round((level - l_min) / step), 0, n_codes - 1)
    return straight_through(sigma, torch.exp2(l_min + k * step).to(sigma.dtype))


def quantize_uniform_unsigned(sigma: torch.Tensor, bits: int,
                              scale: torch.Tensor | None = None) -> torch.Tensor:
    """Uniform unsigned quantization on ``[0, max σ]`` with ``2^bits`` codes (σ ablation)."""
    n_codes = 2 ** check_bits(bits)
    if scale is None:
        top = sigma.detach().max()
        scale = top / (n_codes - 1) if top > 0 else torch.ones((), dtype=sigma.dtype)
    q = torch.clamp(torch.round(sigma / scale), 0, n_codes - 1)
    return straight_through(sigma, q * scale, (sigma <= scale * (n_codes - 0.5)).to(sigma.dtype))
