"""A tiled matrix read through torch on any device: the read path of the ``torch`` backend.

:class:`TorchTiledMatrix` takes a programmed :class:`~bayesim.crossbar.tile.TiledMatrix` (its
tiles' weights, per-read variances, frozen per-column output noise and random-stream keys) onto a
torch device and performs the same managed reads as ``TiledMatrix.mvm`` with the kernels of
torch_kernels.py: noise management, DAC (with stochastic rounding and input noise), the
output-referred noisy read, IR drop, output noise, ADC, iterative bound management (per row, with
fresh draws at every round), the digital rescale, the float64 partial sums and the digital bias.
Every draw sits at the numba path's counter coordinate, so on a CPU both backends draw the same
normals; the tests compare them (tests/test_torch_backend.py).

What only the numba backend reads: the explicit per-device path (``read_path = "explicit"``,
Laplace cards) and AR(1)-correlated reads (``read_correlation > 0``); the machine refuses them on
the torch backend before any work (bayesim.machine.config.read_backend).
"""

import numpy as np
import torch

from bayesim.crossbar import torch_kernels as tk
from bayesim.crossbar.periphery import BoundManagement, NoiseManagement, PeripheryConfig
from bayesim.crossbar.tile import Tile, TiledMatrix, memoised_moments
from bayesim.errors import MappingError


def _tensor(a: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(device)


class _TorchTile:
    """One tile of a :class:`TorchTiledMatrix`: a numba tile's state on ``device``."""

    def __init__(self, tile: Tile, device: torch.device) -> None:
        if tile.explicit:
            raise MappingError("the torch backend reads the output-referred (fast) path only; "
                               "use hardware.backend = 'numba' for the explicit per-device read")
        self.config: PeripheryConfig = tile.config
        self.w = _tensor(tile.w, device)
        self.read_var = _tensor(tile.read_var, device)
        self.out_var = None if tile.config.is_perfect else _tensor(tile.periphery.out_var, device)
        self.key_read = tile._key_read
        self.key_input = tile.periphery._key_input
        self.key_round = tile.periphery._key_round
        self.abs_w = None if tile._ir is None else self.w.abs()
        self.n_out = tile.w.shape[0]

    def _read(self, x_dac: torch.Tensor, rows: torch.Tensor, sample: int, rnd: int,
              memo: dict | None) -> torch.Tensor:
        """The noisy crossbar read of DAC outputs (Tile._read, fast path)."""
        if memo is None:
            mean, var = tk.read_moments(x_dac, self.w, self.read_var, self.out_var)
        else:
            mean, var = memoised_moments(
                memo, self, lambda: tk.read_moments(x_dac, self.w, self.read_var, self.out_var))
        if var is None:
            return mean
        return tk.add_noise(mean, var, self.key_read, sample, rows, rnd)

    def _input_scales(self, x: torch.Tensor) -> torch.Tensor:
        """Noise management: α per row, float64, never ≤ 0 (Periphery.input_scales)."""
        c = self.config
        nm = c.noise_management
        if nm == NoiseManagement.NONE:
            alpha = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
        elif nm == NoiseManagement.CONSTANT:
            alpha = torch.full((x.shape[0],), c.nm_thres if c.nm_thres > 0 else 1.0,
                               dtype=torch.float64, device=x.device)
        else:
            top = x.abs() if nm == NoiseManagement.ABS_MAX else x
            alpha = top.amax(dim=1).to(torch.float64) if x.shape[1] else torch.full(
                (x.shape[0],), -torch.inf, dtype=torch.float64, device=x.device)
            if c.nm_thres > 0:
                alpha = torch.clamp(alpha, max=c.nm_thres)
        return torch.where(alpha > 0, alpha, 1.0)

    def _dac(self, x: torch.Tensor, scale: torch.Tensor, sample: int, rows: torch.Tensor,
             rnd: int) -> torch.Tensor:
        c = self.config
        v, _ = tk.scale_quantize_clip(x, scale, c.inp_step, c.inp_bound, c.inp_sto_round,
                                      self.key_round, sample, rows, 2 * rnd, None)
        if c.inp_noise > 0:
            v = tk.add_noise(v, torch.full_like(v, c.inp_noise ** 2), self.key_input, sample,
                             rows, rnd)
        return v

    def _ir_drop(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """aihwkit's simple IR-drop model (Periphery.ir_drop), float32."""
        c = self.config
        n = x.shape[1]
        a = (n / c.ir_drop_g_ratio) * x.abs().matmul(self.abs_w.T)
        coeff = a * (a * (0.05 * a - 0.2) + 0.5)
        p = 1.0 - torch.arange(n, dtype=torch.float32, device=x.device) / np.float32(n)
        return y - c.ir_drop * coeff * (x * (1.0 - p * p)).matmul(self.w.T)

    def mvm(self, x: torch.Tensor, sample: int, rows: torch.Tensor,
            memo: dict | None) -> torch.Tensor:
        """One managed read of ``x[rows, in]`` (tile units) → ``[rows, out]`` float32, the steps
        of Periphery.mvm; ``memo`` keeps the scales, the DAC output and the moments between reads
        of the same ``x`` (draws unaffected)."""
        c = self.config
        if c.is_perfect:
            return self._read(x, rows, sample, 0, memo)
        if memo is not None and (c.inp_sto_round or c.inp_noise > 0):
            memo = None  # a random DAC output is drawn afresh on every read
        if memo is not None and "alpha" in memo:
            alpha = memo["alpha"]
        else:
            alpha = self._input_scales(x)
            if memo is not None:
                memo["alpha"] = alpha
        batch = x.shape[0]
        out: torch.Tensor | None = None
        pending = torch.arange(batch, device=x.device)
        reduction, rnd = 1.0, 0
        iterative = c.bound_management == BoundManagement.ITERATIVE
        limit = c.max_bm_factor
        if c.inp_step > 0:
            limit = min(limit, c.max_bm_res / c.inp_step)
        while pending.numel():
            whole = rnd == 0
            scale = (alpha if whole else alpha[pending]) * reduction
            part = x if whole else x[pending]
            if memo is not None and whole:
                if "dac" not in memo:
                    memo["dac"] = self._dac(part, scale, sample, rows, rnd)
                x_dac = memo["dac"]
            else:
                x_dac = self._dac(part, scale, sample, rows[pending], rnd)
            y = self._read(x_dac, rows if whole else rows[pending], sample, rnd,
                           memo if whole else None)
            if c.ir_drop > 0 and self.abs_w is not None:
                y = self._ir_drop(y, x_dac)
            y, clipped = tk.scale_quantize_clip(
                y, torch.ones(y.shape[0], dtype=torch.float64, device=y.device), c.out_step,
                c.out_bound, c.out_sto_round, self.key_round, sample,
                rows if whole else rows[pending], 2 * rnd + 1,
                (c.out_scale * scale).to(torch.float32))
            finished = not (iterative and reduction <= limit) or not bool(clipped.any())
            if finished and whole:
                return y
            if out is None:
                out = torch.zeros((batch, self.n_out), dtype=torch.float32, device=x.device)
            if finished:
                out[pending] = y
                break
            out[pending[~clipped]] = y[~clipped]
            pending = pending[clipped]
            reduction *= 2.0
            rnd += 1
        if out is None:  # an empty batch
            out = torch.zeros((batch, self.n_out), dtype=torch.float32, device=x.device)
        return out


class TorchTiledMatrix:
    """``matrix`` (a programmed TiledMatrix) on ``device``; :meth:`mvm` reads it as
    TiledMatrix.mvm does. Shapes and tile grid are the matrix's."""

    def __init__(self, matrix: TiledMatrix, device: torch.device) -> None:
        self.shape = matrix.shape
        self.device = device
        self.out_sizes, self.in_sizes = matrix.out_sizes, matrix.in_sizes
        self.out_edges, self.in_edges = matrix.out_edges, matrix.in_edges
        self.n_tiles = matrix.n_tiles
        self.tiles = [[_TorchTile(tile, device) for tile in row] for row in matrix.tiles]
        self.scales = [[s if not np.ndim(s) else _tensor(np.asarray(s, np.float64), device)
                        for s in row] for row in matrix.scales]

    def mvm(self, x: torch.Tensor, sample: int = 0, row0: int = 0, memo: dict | None = None,
            bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x[batch, in]`` (float32 on the device) → ``y[batch, out]`` float32: every tile's
        managed read of rows ``row0 …``, partial sums added in float64, then the float32
        ``bias[out]`` when given."""
        if x.dim() != 2 or x.shape[1] != self.shape[1]:
            raise MappingError(f"input must have shape (batch, {self.shape[1]}), "
                               f"got {tuple(x.shape)}")
        rows = torch.arange(row0, row0 + x.shape[0], dtype=torch.int64, device=x.device)

        def read(r: int, c: int) -> torch.Tensor:
            part = x[:, self.in_edges[c]:self.in_edges[c + 1]]
            return self.tiles[r][c].mvm(part, sample, rows,
                                        None if memo is None else memo.setdefault((r, c), {}))

        if self.n_tiles == 1 and not isinstance(self.scales[0][0], torch.Tensor):
            y = (read(0, 0).to(torch.float64) * float(self.scales[0][0])).to(torch.float32)
            return y if bias is None else y + bias
        out = torch.zeros((x.shape[0], self.shape[0]), dtype=torch.float64, device=x.device)
        for r in range(len(self.out_sizes)):
            o0, o1 = int(self.out_edges[r]), int(self.out_edges[r + 1])
            for c in range(len(self.in_sizes)):
                scale = self.scales[r][c]
                out[:, o0:o1] += read(r, c).to(torch.float64) * (
                    scale[None, :] if isinstance(scale, torch.Tensor) else float(scale))
        result = out.to(torch.float32)
        return result if bias is None else result + bias
