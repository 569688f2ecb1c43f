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
"""The mean square of a row's inputs over its largest one, mean_i (x_i/max|x|)², assumed when no
calibration inputs are given: the demo's LeNet-5 on dirty-mnist measures 0.58 (the images'
patches), 0.10, 0.06, 0.07 and 0.09 (ReLU features) on 256 training images."""

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


@torch.no_grad()
def row_mean_squares(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Per Bayesian layer of ``model``, the mean over its rows (for calibration inputs ``x``,
    through the mean network) of mean_i (x_i/max|x|)²: what a full-scale input row is worth
    against the DAC's range after noise management, which decides how much the periphery's
    output noise weighs against the weights' (Chip.periphery_referred). Rows of zeros are
    skipped."""
    out: list[float] = []

    def hook(module: BayesianLayer, args: tuple) -> None:
        rows, _ = layer_rows(module, args[0])
        top = np.abs(rows).max(axis=1)
        keep = top > 0
        ratio = np.mean(np.square(rows[keep]), axis=1) / np.square(top[keep])
        out.append(float(ratio.mean()) if ratio.size else DEFAULT_ROW_MEAN_SQUARE)

    hooks = [layer.register_forward_pre_hook(hook) for layer in bayesian_layers(model)]
    try:
        with sampling(model, "mean"):
            model(x.float())
    finally:
        for handle in hooks:
            handle.remove()
    return out
