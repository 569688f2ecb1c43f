"""Input lowering: the rows a layer's tiles read.

A linear layer's tiles read the flattened activations, one row per input (per token of an input
``[batch, …, features]``). A convolution runs on
the same tiles as an im2col matrix: one row per output position, holding the channel-major k × k
window (the order of a ``[out, C, k, k]`` kernel flattened). Each row is its own read, so on a
per-read sampler (M0 ``per_read``, M1, M4) every output position of a convolution sees its own
draw of the weights — what a chip that reads its array once per position does; software sampling
instead shares one weight draw across all positions of a sample (docs/machine.md, "Convolutions").
"""

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from bayesim.crossbar.kernels import im2col
from bayesim.machine.adapters import LayerAdapter

DEFAULT_ROW_MEAN_SQUARE = 0.1
"""The mean square of a row's inputs against the square of its DAC scale (noise management),
E[mean_i x_i²]/E[scale²], assumed when no calibration inputs are given: under abs-max noise
management the demo's LeNet-5 on dirty-mnist measures 0.58 (the images' patches), 0.10, 0.06,
0.07 and 0.09 (ReLU features) on 256 training images."""


@dataclasses.dataclass(frozen=True)
class Geometry:
    """How a layer's rows stand for its input: ``positions`` rows per input example (output
    positions of a convolution, tokens of a linear layer on ``[batch, …, in]``), and the shape
    the outputs take back (``(batch, H_out, W_out)`` of a convolution, the leading dimensions of
    a linear layer's input)."""

    positions: int
    shape: tuple[int, ...]
    conv: bool


def layer_rows(layer: LayerAdapter, h: torch.Tensor,
               tensor: bool = False) -> tuple[np.ndarray | torch.Tensor, Geometry]:
    """The rows ``[rows, in]`` (float32) the tiles of ``layer`` read for activations ``h``, and
    their geometry: a numpy array for the numba backend, or (``tensor``) a tensor on ``h``'s
    device for the torch backend (the same rows, by ``F.unfold``)."""
    conv = layer.conv
    if conv is None:
        lead = tuple(h.shape[:-1]) if h.dim() > 2 else (h.shape[0],)
        rows = h.reshape(-1, h.shape[-1]) if h.dim() > 2 else h.reshape(h.shape[0], -1)
        rows = rows.contiguous()
        return rows if tensor else rows.numpy(), Geometry(
            int(np.prod(lead[1:], dtype=np.int64)), lead, False)
    if conv.square and not tensor:
        k, p, s = conv.kernel[0], conv.padding[0], conv.stride[0]
        if p:
            h = F.pad(h, (p, p, p, p))
        batch, _, height, width = h.shape
        h_out, w_out = (height - k) // s + 1, (width - k) // s + 1
        return im2col(h.contiguous().numpy(), k, s), Geometry(h_out * w_out,
                                                              (batch, h_out, w_out), True)
    batch, _, height, width = h.shape
    h_out, w_out = ((size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, p, s, d in zip(
        (height, width), conv.kernel, conv.padding, conv.stride, conv.dilation, strict=True))
    cols = F.unfold(h.float(), conv.kernel, conv.dilation, conv.padding, conv.stride)
    rows = cols.transpose(1, 2).reshape(batch * h_out * w_out, -1).contiguous()
    return rows if tensor else rows.numpy(), Geometry(h_out * w_out, (batch, h_out, w_out),
                                                      True)


def raise_rows(y: np.ndarray | torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """The tiles' outputs ``[rows, out]`` back as activations: ``[batch, out, H, W]`` for a
    convolution (its rows are channels-last), ``[*leading, out]`` otherwise."""
    out = y if isinstance(y, torch.Tensor) else torch.from_numpy(y)
    if not geometry.conv:
        return out if len(geometry.shape) == 1 else out.reshape(*geometry.shape, -1)
    batch, h_out, w_out = geometry.shape
    return out.reshape(batch, h_out, w_out, -1).permute(0, 3, 1, 2)


CALIBRATION_ROWS = 20_000
"""Rows per layer kept from the calibration inputs (evenly spaced): enough for a mean square."""


def keep_rows(rows: np.ndarray, limit: int = CALIBRATION_ROWS) -> np.ndarray:
    """Up to ``limit`` evenly spaced rows of ``rows`` (calibration)."""
    step = max(1, rows.shape[0] // limit)
    return np.ascontiguousarray(rows[::step][:limit])
