"""Quantization of mean-field BNNs (docs/quantization.md).

- ``quantizers``: the uniform quantizer of μ and samples and the logarithmic quantizer of σ, with
  straight-through gradients;
- ``strategies``: VPQ (μ, σ stored in b bits), SPQ (samples in b bits), JQ (both), applied to a
  model for PTQ and QAT; the quantized model is the digital b-bit predictor of
  bayesim.evaluate.SoftwarePredictor;
- ``activations``: bounded activations for quantized sampling;
- ``memory``: bits per weight and compression of each strategy.

A new strategy: a name in ``memory.STRATEGIES`` with its storage rule, and the quantizers it
applies in ``strategies.Quantizer``; ``bayesim quantize --strategy NAME`` then runs it.
"""

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
