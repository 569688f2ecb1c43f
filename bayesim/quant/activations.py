"""Activation quantization: a uniform b-bit quantizer on the output range of a *bounded*
activation (Borras et al., arXiv 2512.10602: "specialized activation functions").

Bounded activations and their ranges: ReLU6 [0, 6], hardtanh [−1, 1], tanh [−1, 1], PACT [0, α]
with the learned α. ReLU and GELU are unbounded: there is no fixed range to put b-bit codes on,
which is the argument for bounded activations in a low-precision machine; asking to quantize them is
an error. The quantizer is attached as a forward hook, so the model's parameters and state dict do
not change (a quantized checkpoint stores the config and re-attaches it on load).
"""

import torch
from torch import nn

from bayesim.bnn.models import ACTIVATIONS, PACT
from bayesim.errors import ConfigError
from bayesim.quant.quantizers import check_bits, straight_through

FIXED_RANGES: dict[type[nn.Module], tuple[float, float]] = {
    nn.ReLU6: (0.0, 6.0),
    nn.Hardtanh: (-1.0, 1.0),
    nn.Tanh: (-1.0, 1.0),
}
_ACTIVATION_TYPES = tuple(ACTIVATIONS.values())


def activation_range(activation: nn.Module) -> tuple[float, float]:
    """Output range of a bounded activation; ConfigError for an unbounded one."""
    if isinstance(activation, PACT):
        return 0.0, float(activation.alpha.detach())
    for kind, bounds in FIXED_RANGES.items():
        if isinstance(activation, kind):
            return bounds
    raise ConfigError(f"activation {type(activation).__name__} is unbounded and cannot be "
                      f"quantized; use model.activation = relu6, hardtanh, tanh or pact")


def quantize_activation_output(y: torch.Tensor, lo: float, hi: float, bits: int) -> torch.Tensor:
    """``y`` rounded onto ``2^bits`` equally spaced levels of [lo, hi] (straight-through)."""
    top = 2 ** check_bits(bits) - 1
    step = (hi - lo) / top
    q = lo + torch.clamp(torch.round((y - lo) / step), 0, top) * step
    return straight_through(y, q)


def attach_activation_quantizer(model: nn.Module, bits: int) -> list[nn.Module]:
    """Quantize the output of every activation module of ``model`` to ``bits`` bits."""
    check_bits(bits)
    activations = [m for m in model.modules() if isinstance(m, _ACTIVATION_TYPES)]
    for module in activations:
        activation_range(module)  # refuse unbounded ones before attaching anything

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return quantize_activation_output(output, *activation_range(module), bits)

    for module in activations:
        module.register_forward_hook(hook)
    return activations
