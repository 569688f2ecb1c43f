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

from bayesim.bnn.layers import BayesConv2d, BayesianLayer
from bayesim.crossbar.kernels import im2col

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
