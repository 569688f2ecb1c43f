"""Memory accounting of quantized mean-field BNNs (Borras et al., arXiv 2512.10602).

A mean-field fp32 BNN stores μ and σ for every weight: 64 bits. Quantizing the variational
parameters (VPQ, JQ) with b bits stores 2b bits per weight; SPQ keeps μ and σ in fp32 and only the
*sampled* weight entering the multiply-accumulate has b bits. Per-tensor scales and log-grid
bounds (a few fp32 numbers per tensor) are counted in ``overhead_bits`` and are negligible.
"""

from typing import Literal

from bayesim.quant.quantizers import check_bits

Strategy = Literal["fp", "VPQ", "SPQ", "JQ"]
STRATEGIES: tuple[str, ...] = ("fp", "VPQ", "SPQ", "JQ")
FP32_BITS_PER_WEIGHT = 64  # μ and σ, 32 bits each


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    return strategy


def stored_bits_per_weight(strategy: str, mu_bits: int, sigma_bits: int) -> int:
    """Bits stored per weight: 64 for fp and SPQ, ``mu_bits + sigma_bits`` for VPQ and JQ."""
    if check_strategy(strategy) in ("VPQ", "JQ"):
        return check_bits(mu_bits) + check_bits(sigma_bits)
    return FP32_BITS_PER_WEIGHT


def sample_bits(strategy: str, w_bits: int) -> int:
    """Bits of the sampled weight that enters the multiply-accumulate."""
    return check_bits(w_bits) if check_strategy(strategy) in ("SPQ", "JQ") else 32


def memory_report(strategy: str, mu_bits: int, sigma_bits: int, w_bits: int, n_weights: int,
                  n_tensors: int) -> dict[str, float | int | str]:
    """The report's ``memory`` section for one model.

    Args:
        strategy: fp, VPQ, SPQ or JQ.
        mu_bits, sigma_bits, w_bits: bit widths of μ, σ and the sampled weight.
        n_weights: number of quantized weights.
        n_tensors: number of quantized tensors (each carries two fp32 range values per
            quantized parameter).
    """
    bits = stored_bits_per_weight(strategy, mu_bits, sigma_bits)
    overhead = 2 * 32 * 2 * n_tensors if strategy in ("VPQ", "JQ") else 0
    return {
        "strategy": strategy,
        "n_weights": n_weights,
        "bits_per_weight": float(bits),
        "compression_vs_fp32": FP32_BITS_PER_WEIGHT / bits,
        "sample_bits": sample_bits(strategy, w_bits),
        "overhead_bits": overhead,
        "total_bytes": (bits * n_weights + overhead) / 8,
    }
