"""Input lowering: the rows a layer's tiles read.

A linear layer's tiles read the flattened activations, one row per input. A convolution runs on
the same tiles as an im2col matrix: one row per output position, holding the channel-major k × k
window (the order of a ``[out, C, k, k]`` kernel flattened). Each row is its own read, so on a
per-read sampler (M0 ``per_read``, M1, M4) every output position of a convolution sees its own
draw of the weights — what a chip that reads its array once per position does; software sampling
instead shares one weight draw across all positions of a sample (docs/machine.md, "Convolutions").
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bayesim.bnn.layers import BayesConv2d, BayesianLayer, bayesian_layers, sampling
from bayesim.crossbar.kernels import im2col

DEFAULT_ROW_MEAN_SQUARE = 0.1
"""The mean square of a row's inputs against the square of its DAC scale (noise management),
E[mean_i x_i²]/E[scale²], assumed when no calibration inputs are given: under abs-max noise
management the demo's LeNet-5 on dirty-mnist measures 0.58 (the images' patches), 0.10, 0.06,
0.07 and 0.09 (ReLU features) on 256 training images."""

Geometry = tuple[int, int, int, int]
"""(batch, output positions, output height, output width) of a convolution's rows."""


def layer_rows(module: BayesianLayer, h: torch.Tensor) -> tuple[np.ndarray, Geometry | None]:
    """The rows ``[rows, in]`` (float32) the tiles of ``module`` read for activations ``h``, and
    the output geometry of a convolution (None for a linear layer)."""
    if isinstance(module, BayesConv2d):
        k, p, s = module.kernel_size, module.padding, module.stride
        if p:
            h = F.pad(h, (p, p, p, p))
        batch, _, height, width = h.shape
        h_out, w_out = (height - k) // s + 1, (width - k) // s + 1
        return im2col(h.contiguous().numpy(), k, s), (batch, h_out * w_out, h_out, w_out)
    return h.reshape(h.shape[0], -1).contiguous().numpy(), None


def raise_rows(y: np.ndarray, geometry: Geometry | None) -> torch.Tensor:
    """The tiles' outputs ``[rows, out]`` back as activations: ``[batch, out, H, W]`` for a
    convolution (its rows are channels-last), ``[batch, out]`` otherwise."""
    out = torch.from_numpy(y)
    if geometry is None:
        return out
    batch, _, h_out, w_out = geometry
    return out.reshape(batch, h_out, w_out, -1).permute(0, 3, 1, 2)


CALIBRATION_ROWS = 20_000
"""Rows per layer kept from the calibration inputs (evenly spaced): enough for a mean square."""


@torch.no_grad()
def calibration_rows(model: nn.Module, x: torch.Tensor,
                     limit: int = CALIBRATION_ROWS) -> list[np.ndarray]:
    """Per Bayesian layer of ``model``, up to ``limit`` of the rows its tiles would read for the
    calibration inputs ``x`` (through the mean network, evenly spaced): what the chip's α choice
    measures the weight of the periphery's output noise on (Chip.periphery_referred)."""
    out: list[np.ndarray] = []

    def hook(module: BayesianLayer, args: tuple) -> None:
        rows, _ = layer_rows(module, args[0])
        step = max(1, rows.shape[0] // limit)
        out.append(np.ascontiguousarray(rows[::step][:limit]))

    hooks = [layer.register_forward_pre_hook(hook) for layer in bayesian_layers(model)]
    try:
        with sampling(model, "mean"):
            model(x.float())
    finally:
        for handle in hooks:
            handle.remove()
    return out
