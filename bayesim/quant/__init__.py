"""Quantization of mean-field BNNs (VPQ / SPQ / JQ): quantizers, strategies with PTQ/QAT and the
digital b-bit predictor, bounded activations, and memory accounting."""

from bayesim.quant.memory import STRATEGIES, memory_report, stored_bits_per_weight
from bayesim.quant.quantizers import (
    check_bits,
    log_range,
    quantize_log,
    quantize_uniform,
    quantize_uniform_unsigned,
    straight_through,
    uniform_scale,
)

__all__ = [
    "STRATEGIES", "check_bits", "log_range", "memory_report", "quantize_log", "quantize_uniform",
    "quantize_uniform_unsigned", "stored_bits_per_weight", "straight_through", "uniform_scale",
]
