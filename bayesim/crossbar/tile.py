"""Tiles: one physical crossbar array with its own periphery, and a logical matrix split over many.

A :class:`Tile` holds its weights in tile units (``w = G / g_ref``: conductance, or the difference
of a device pair, over the reference conductance) and the per-read variance of every weight
(σ_read² / g_ref²). It computes ``y ≈ x·wᵀ`` through its periphery (periphery.py): noise
management, DAC, the noisy read, IR drop, output noise, ADC and bound management.

A :class:`TiledMatrix` splits an ``[out, in]`` matrix into tiles of at most ``max_out × max_in``
devices (defaults 512 × 512, aihwkit's ``MappingParameter``), in near-equal parts as aihwkit's
``get_split_sizes`` does (ceil(n/max) parts whose sizes differ by at most one). Every tile has its
own periphery and its own random streams (keyed by seed, layer and tile index); the partial
outputs of the tiles along the input dimension are added in digital, in float64.
"""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

from bayesim.crossbar.kernels import (
    LAPLACE,
    add_ar1_output_noise,
    add_output_noise,
    as_rows,
    explicit_read_mvm,
    read_moments,
    read_mvm,
    scale_to_float32,
)
from bayesim.crossbar.periphery import Periphery, PeripheryConfig, weight_noise_variance
from bayesim.errors import MappingError
from bayesim.rng import NOISE_SHAPES, Stream, stream_key
from bayesim.schema import StrictModel

READ_PATHS = ("fast", "explicit")


def memoised_moments(memo: dict, tile: object, compute: Callable[[], Any]) -> Any:
    """The read moments ``compute()`` of ``tile`` for the inputs ``memo`` belongs to, computed
    once per tile. The memo of one tile position is shared by every state a batch's samples read
    (M3's copies: the same inputs, scales and DAC output, other weights), so the moments are kept
    per tile object, which the memo holds so that its ``id`` stays its own."""
    kept = memo.setdefault("moments", {})
    entry = kept.get(id(tile))
    if entry is None:
        entry = kept[id(tile)] = (tile, compute())
    return entry[1]


class TilingConfig(StrictModel):
    """The largest physical array (aihwkit ``MappingParameter``: 512 × 512; 0 = no limit)."""

    max_in: int = Field(default=512, ge=0)
    max_out: int = Field(default=512, ge=0)


def split_sizes(n: int, max_size: int) -> list[int]:
    """``n`` split into ceil(n/max_size) near-equal parts (sizes differ by at most one, larger
    parts first); ``max_size`` 0 means one part."""
    if n < 1:
        raise MappingError(f"a matrix dimension must be at least 1, got {n}")
    parts = 1 if max_size == 0 else math.ceil(n / max_size)
    base, extra = divmod(n, parts)
    return [base + 1] * extra + [base] * (parts - extra)


class Tile:
    """One physical array of ``w.shape = (out, in)`` weights.

    ``read_var`` is the per-read variance of each weight in tile units² (None: noise-free reads);
    ``noise_shape`` 'gaussian' uses the exact output-referred read (one draw per output) unless
    ``read_path`` is 'explicit'; 'laplace' always uses the explicit per-device read
    (kernels.explicit_read_mvm), with the read σ of every device of a weight in
    ``device_sigma[k, out, in]`` (tile units; default: one device of σ = sqrt(read_var)).
    ``seed`` keys the frozen draws (per-column output-noise spread), ``read_seed`` (default:
    ``seed``) the per-read ones. An ``is_perfect`` periphery reads the devices (their noise stays:
    it is the sampler) without any DAC, ADC, output noise or management."""

    def __init__(self, w: np.ndarray, read_var: np.ndarray | None, periphery: PeripheryConfig,
                 seed: int, layer: int = 0, index: int = 0, noise_shape: str = "gaussian",
                 tiling: TilingConfig | None = None, read_seed: int | None = None,
                 read_path: str = "fast", device_sigma: np.ndarray | None = None) -> None:
        tiling = tiling or TilingConfig()
        if read_path not in READ_PATHS:
            raise MappingError(f"read_path must be one of {', '.join(READ_PATHS)}, "
                               f"got {read_path!r}")
        n_out, n_in = w.shape
        if (tiling.max_out and n_out > tiling.max_out) or (tiling.max_in and n_in > tiling.max_in):
            raise MappingError(f"a tile holds at most {tiling.max_out} × {tiling.max_in} "
                               f"weights, got {n_out} × {n_in}; use TiledMatrix to split it")
        if read_var is not None and read_var.shape != w.shape:
            raise MappingError(f"read_var has shape {read_var.shape}, weights {w.shape}")
        if device_sigma is not None and device_sigma.shape[1:] != w.shape:
            raise MappingError(f"device_sigma has shape {device_sigma.shape}, weights {w.shape}")
        if noise_shape not in NOISE_SHAPES:
            raise MappingError(f"noise_shape must be one of {sorted(NOISE_SHAPES)}, "
                               f"got {noise_shape!r}")
        self.config = periphery
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.shape = NOISE_SHAPES[noise_shape]
        var = None if read_var is None else np.asarray(read_var, dtype=np.float32)
        extra = weight_noise_variance(periphery, self.w)
        if extra is not None:
            var = extra if var is None else var + extra
        self.read_var = var
        self.periphery = Periphery(periphery, n_out, seed, layer, index, read_seed)
        per_read = seed if read_seed is None else read_seed
        self._key_read = stream_key(per_read, Stream.READ, layer, index)
        self.explicit = self.shape == LAPLACE or read_path == "explicit"
        if self.explicit:  # the explicit path draws device and output noise apart
            if device_sigma is not None:
                parts = [np.asarray(device_sigma, dtype=np.float64)]
                if extra is not None:  # the periphery's weight noise: one more draw per weight
                    parts.append(np.sqrt(extra, dtype=np.float64)[None])
                stack = np.concatenate(parts)
            else:
                stack = (np.zeros_like(self.w) if var is None else np.sqrt(var))[None]
            self._read_sigma = np.ascontiguousarray(stack)
            self._key_output = stream_key(per_read, Stream.OUTPUT, layer, index)
        self._ir = (self.w, np.abs(self.w)) if periphery.ir_drop > 0 else None

    def _read(self, sample: int, correlation: "ReadCorrelation | None" = None,
              row0: int = 0):
        out_var = None if self.config.is_perfect else self.periphery.out_var

        def read(x_dac: np.ndarray, rows: np.ndarray, rnd: int, memo: dict | None) -> np.ndarray:
            if not self.explicit:
                if memo is None and (correlation is None or rnd > 0):
                    return read_mvm(x_dac, self.w, self.read_var, self._key_read, sample, rows,
                                    rnd, out_var)
                kept = memo is not None  # a memoised mean is reused: it stays untouched
                if memo is None:
                    mean, var = read_moments(x_dac, self.w, self.read_var, out_var)
                else:  # same inputs, same tile: mean and variance reused
                    mean, var = memoised_moments(
                        memo, self, lambda: read_moments(x_dac, self.w, self.read_var, out_var))
                if var is not None and correlation is not None and rnd == 0:
                    y = mean.copy() if kept else mean
                    correlation.advance(y, var, self._key_read, sample, rows, row0)
                    return y
                if var is None:
                    return mean.copy() if kept else mean
                y = np.empty_like(mean) if kept else mean
                add_output_noise(y, var, self._key_read, np.int64(sample), rows, np.int64(rnd),
                                 base=mean)
                return y
            y = np.empty((x_dac.shape[0], self.w.shape[0]))
            explicit_read_mvm(x_dac, self.w, self._read_sigma, self.shape, self._key_read,
                              np.int64(sample), rows, np.int64(rnd), y)
            y = y.astype(np.float32)
            if out_var is not None:
                add_output_noise(y, np.broadcast_to(out_var, y.shape), self._key_output,
                                 np.int64(sample), rows, np.int64(rnd))
            return y

        return read

    def mvm(self, x: np.ndarray, sample: int = 0, row0: int | np.ndarray = 0,
            memo: dict | None = None,
            correlation: "ReadCorrelation | None" = None) -> np.ndarray:
        """``x[batch, in]`` (tile input units) → ``y[batch, out]`` float32, one read per row:
        ``sample`` is the Monte-Carlo sample index, ``row0`` the global index of the first row.
        ``memo``: an empty dict on the first of several reads of the same ``x`` by this tile,
        the same dict afterwards (Periphery.mvm); results are identical with or without it.
        ``correlation``: the AR(1) read-noise state of this tile for these rows (fast path)."""
        if x.ndim != 2 or x.shape[1] != self.w.shape[1]:
            raise MappingError(f"input must have shape (batch, {self.w.shape[1]}), "
                               f"got {x.shape}")
        if correlation is not None and (self.explicit or not isinstance(row0, int)):
            raise MappingError("correlated read noise needs the fast read path and a row offset")
        read = self._read(sample, correlation, row0 if isinstance(row0, int) else 0)
        if self.config.is_perfect:  # the devices' read, nothing around it
            return read(np.ascontiguousarray(x, dtype=np.float32), as_rows(row0, x.shape[0]), 0,
                        memo)
        return self.periphery.mvm(x, read, sample, row0, self._ir, memo)


class ReadCorrelation:
    """AR(1) read noise of one tile over successive reads of the same input rows: the
    output-referred standard normal ξ of each (row, output) follows ξ_s = ρ·ξ_{s−1} +
    sqrt(1 − ρ²)·z_s (docs/machine.md, "Correlated reads"). For a fixed
    input this is exactly per-device AR(1) noise with the same ρ; when the input of a layer
    changes between reads (deeper layers) it is the approximation that keeps one draw per output.
    Only the first round of a read is correlated (bound-management re-reads are white)."""

    def __init__(self, rho: float, batch: int, n_out: int) -> None:
        if not 0.0 <= rho < 1.0:
            raise MappingError(f"the read-noise correlation must lie in [0, 1), got {rho}")
        self.rho = rho
        self.state = np.zeros((batch, n_out))
        self.started = np.zeros(batch, dtype=bool)

    def advance(self, y: np.ndarray, var: np.ndarray, key: np.ndarray, sample: int,
                rows: np.ndarray, row0: int) -> None:
        local = rows - row0
        fresh = ~self.started[local]
        for first, subset in ((True, fresh), (False, ~fresh)):
            if not subset.any():
                continue
            idx = local[subset]
            part = y[subset] if not subset.all() else y
            state = None if first else self.state[idx]
            new = add_ar1_output_noise(part, var[subset] if not subset.all() else var, key,
                                       sample, rows[subset], state, self.rho)
            if not subset.all():
                y[subset] = part
            self.state[idx] = new
            self.started[idx] = True


_NO_BIAS = np.empty(0, dtype=np.float32)


class TiledMatrix:
    """A logical ``[out, in]`` matrix on a grid of tiles with digital accumulation.

    ``w``, ``read_var`` and ``device_sigma`` are in the caller's units (e.g. weight units), and so
    is the output. How they become tile units:

    - ``unit`` (weight units per tile unit; one number, or one per output): every tile stores
      ``w / unit`` and its output is multiplied back by ``unit`` in digital, after the ADC. The
      machine passes the weight of a full conductance difference, n·g_max/α, so that the
      periphery's ranges are physical currents, fixed by the devices;
    - ``weight_scaling_omega`` (aihwkit's ``MappingParameter.weight_scaling_omega``, 1.0 in its
      inference presets): every tile is divided by its own max|w|/ω, so that its largest weight
      uses the tile's full range whatever the conductances;
    - neither: the values are tile units already."""

    def __init__(self, w: np.ndarray, read_var: np.ndarray | None, periphery: PeripheryConfig,
                 seed: int, layer: int = 0, tiling: TilingConfig | None = None,
                 noise_shape: str = "gaussian", read_seed: int | None = None,
                 weight_scaling_omega: float | None = None, read_path: str = "fast",
                 unit: float | np.ndarray | None = None,
                 device_sigma: np.ndarray | None = None) -> None:
        tiling = tiling or TilingConfig()
        if weight_scaling_omega is not None and not weight_scaling_omega > 0:
            raise MappingError(f"weight_scaling_omega must be > 0, got {weight_scaling_omega}")
        if weight_scaling_omega is not None and unit is not None:
            raise MappingError("give either a fixed unit or weight_scaling_omega, not both")
        units = None if unit is None else np.broadcast_to(
            np.asarray(unit, dtype=np.float64).reshape(-1), (w.shape[0],))
        if units is not None and not np.all(units > 0):
            raise MappingError("the tile unit must be > 0")
        self.shape = w.shape
        self.out_sizes = split_sizes(w.shape[0], tiling.max_out)
        self.in_sizes = split_sizes(w.shape[1], tiling.max_in)
        self.out_edges = np.cumsum([0, *self.out_sizes])
        self.in_edges = np.cumsum([0, *self.in_sizes])
        self.tiles: list[list[Tile]] = []
        self.scales: list[list[float | np.ndarray]] = []
        """The digital gain of each tile's output: a number, or one per output column."""
        for r in range(len(self.out_sizes)):
            row, row_scales = [], []
            rs = slice(self.out_edges[r], self.out_edges[r + 1])
            for c in range(len(self.in_sizes)):
                cs = slice(self.in_edges[c], self.in_edges[c + 1])
                sub = w[rs, cs]
                var = None if read_var is None else read_var[rs, cs]
                dev = None if device_sigma is None else device_sigma[:, rs, cs]
                scale: float | np.ndarray = 1.0
                if weight_scaling_omega is not None:
                    top = float(np.max(np.abs(sub)))
                    scale = top / weight_scaling_omega if top > 0 else 1.0
                elif units is not None:
                    part = units[rs]
                    scale = float(part[0]) if np.all(part == part[0]) else part.copy()
                if np.ndim(scale) or scale != 1.0:
                    col = scale if not np.ndim(scale) else np.reshape(scale, (-1, 1))
                    sub = sub / col
                    var = None if var is None else var / col ** 2
                    dev = None if dev is None else dev / col
                row.append(Tile(sub, var, periphery, seed, layer,
                                index=r * len(self.in_sizes) + c, noise_shape=noise_shape,
                                tiling=tiling, read_seed=read_seed, read_path=read_path,
                                device_sigma=dev))
                row_scales.append(scale)
            self.tiles.append(row)
            self.scales.append(row_scales)

    @property
    def n_tiles(self) -> int:
        return len(self.out_sizes) * len(self.in_sizes)

    def weight_variance(self) -> np.ndarray:
        """``[out, in]`` per-read variance of every weight in the caller's units, as the tiles
        read it (device read noise and the periphery's ``w_noise``), float64."""
        var = np.zeros(self.shape, dtype=np.float64)
        for r, row in enumerate(self.tiles):
            rs = slice(self.out_edges[r], self.out_edges[r + 1])
            for c, tile in enumerate(row):
                if tile.read_var is None:
                    continue
                cs = slice(self.in_edges[c], self.in_edges[c + 1])
                scale = np.reshape(self.scales[r][c], (-1, 1))
                var[rs, cs] = tile.read_var.astype(np.float64) * np.square(scale)
        return var

    def mvm(self, x: np.ndarray, sample: int = 0, row0: int | np.ndarray = 0,
            memo: dict | None = None, correlation: dict | None = None,
            rho: float = 0.0, bias: np.ndarray | None = None) -> np.ndarray:
        """``x[batch, in]`` → ``y[batch, out]`` (float32); partial sums added in float64, then a
        digital float32 ``bias[out]`` when given. ``memo`` as in :meth:`Tile.mvm` (one dict for
        the whole matrix); ``correlation`` a dict that keeps every tile's
        :class:`ReadCorrelation` (coefficient ``rho``) for these rows between reads, or None for
        white read noise."""
        if x.ndim != 2 or x.shape[1] != self.shape[1]:
            raise MappingError(f"input must have shape (batch, {self.shape[1]}), got {x.shape}")

        def read(r: int, c: int) -> np.ndarray:
            state = None
            if correlation is not None:
                state = correlation.get((r, c))
                if state is None:
                    state = correlation[(r, c)] = ReadCorrelation(
                        rho, x.shape[0], self.out_sizes[r])
            return self.tiles[r][c].mvm(x[:, self.in_edges[c]:self.in_edges[c + 1]], sample,
                                        row0, None if memo is None else
                                        memo.setdefault((r, c), {}), state)

        bias32 = _NO_BIAS if bias is None else np.asarray(bias, dtype=np.float32)
        if self.n_tiles == 1 and not np.ndim(self.scales[0][0]):
            # no partial sums: the float32 the float64 sum would round to
            y = read(0, 0)
            scale_to_float32(y, np.float64(self.scales[0][0]), bias32)
            return y
        out = np.zeros((x.shape[0], self.shape[0]), dtype=np.float64)
        for r in range(len(self.out_sizes)):
            o0, o1 = self.out_edges[r], self.out_edges[r + 1]
            for c in range(len(self.in_sizes)):
                y = read(r, c)
                scale = self.scales[r][c]
                if np.ndim(scale):
                    out[:, o0:o1] += y * scale[None, :]
                else:
                    out[:, o0:o1] += y if scale == 1.0 else y * np.float64(scale)
        result = out.astype(np.float32)
        if bias is not None:
            result += bias32
        return result
