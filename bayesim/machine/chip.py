"""The chip: every Bayesian layer's targets mapped to conductances and programmed into states.

:class:`Chip` maps each layer's weights N(μ, σ²) to device pairs with the scheme's sampler law
(bayesim.crossbar.mapping; α by ``hardware.alpha_policy``), then *programs* the states the scheme
keeps: programming noise, level grid, drift to the inference time with the accumulated 1/f noise,
global drift compensation. Programming noise is keyed by the programming's own seed (a copy of
M3, a sample of M2), device-to-device spread and stuck-at faults by the devices: the chip seed (and
the copy, whose devices are others). A :class:`State` is what one programming leaves, in weight
units; :meth:`Chip.matrix` puts a state on tiles.
"""

import dataclasses
from typing import Any

import numpy as np
import torch

from bayesim.crossbar.mapping import PairMap, choose_alpha, map_pairs
from bayesim.crossbar.periphery import Periphery
from bayesim.crossbar.tile import TiledMatrix, TilingConfig, split_sizes
from bayesim.devices.model import DeviceModel
from bayesim.errors import ConfigError, MappingError
from bayesim.machine.adapters import LayerAdapter
from bayesim.machine.config import HardwareConfig, device_for, layer_alphas, periphery_config
from bayesim.machine.lowering import DEFAULT_ROW_MEAN_SQUARE
from bayesim.machine.schemes import Scheme, scheme_for
from bayesim.quant.strategies import Quantizer
from bayesim.rng import Stream, draw, stream_key


@dataclasses.dataclass
class State:
    """One programmed state of a layer, in weight units."""

    w: np.ndarray
    """[out, in] float32: the weights a read returns on average (drift-compensated)."""
    var: np.ndarray
    """[out, in] float32: the per-read variance of each weight (device read noise)."""
    gain: float = 1.0
    """The digital drift-compensation gain already in ``w`` and ``var``."""
    device_sigma: np.ndarray | None = None
    """[k, out, in] float32: the read σ of each of the k devices of a weight (explicit path)."""


@dataclasses.dataclass
class AnalogLayer:
    """One Bayesian layer on the chip: its targets, its mapping and its programmed state(s)."""

    index: int
    adapter: LayerAdapter
    """The user's layer this one replaces (its path, type and posterior)."""
    mu: np.ndarray
    """[out, in] weight means (weight units), convolution kernels flattened."""
    sigma: np.ndarray
    bias_mu: np.ndarray | None
    bias_sigma: np.ndarray | None
    pairs: PairMap | None
    """Target conductances (None for M0)."""
    states: list[State] = dataclasses.field(default_factory=list)
    """The states the scheme keeps: one for M0/M1/M4, R for M3, none for M2."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.mu.shape  # type: ignore[return-value]

    @property
    def kind(self) -> str:
        return self.adapter.kind

    @property
    def path(self) -> str:
        return self.adapter.path


def layer_targets(adapter: LayerAdapter) -> tuple[np.ndarray, ...]:
    """(μ[out, in], σ[out, in], μ_b, σ_b) of a mapped layer (float64; biases None if absent)."""
    with torch.no_grad():
        mu_t, sigma_t = adapter.weight()
        bias = adapter.bias()
    mu = mu_t.detach().double().reshape(mu_t.shape[0], -1).numpy()
    sigma = sigma_t.detach().double().reshape(mu_t.shape[0], -1).numpy()
    bias_mu = bias_sigma = None
    if bias is not None:
        bias_mu, bias_sigma = (t.detach().double().numpy() for t in bias)
    return mu, sigma, bias_mu, bias_sigma


def drift_gain(g0: np.ndarray, g_t: np.ndarray) -> float:
    """Global drift compensation of one layer: the digital gain Σ G(t₀) / Σ G(t) over all its
    devices, the total conductance an all-ones calibration input reads from the G⁺ and the G⁻
    columns apart, at programming and at the inference time. (aihwkit reads the differential
    output instead, Σ_j |Σ_i w_ij(t₀)| / Σ_j |Σ_i w_ij(t)|; for weights of mixed sign those row
    sums nearly cancel and the gain scatters by several per cent between programmings — 2–7 % per
    layer of the demo's LeNet-5 on IBM's PCM card at t₀, where nothing drifts.) Only applied where
    a drift law moves the conductances (t > 0)."""
    now = float(np.sum(g_t))
    return float(np.sum(g0)) / now if now > 0 else 1.0


class Chip:
    """The mapped and programmed layers of one chip instance (``hw.chip_seed``).

    ``mapping_of``: another chip whose targets and α to reuse (an ablation of a noise source is
    the same chip with that source off, not a chip mapped anew)."""

    def __init__(self, modules: list[LayerAdapter], hw: HardwareConfig,
                 counters: dict[str, int], mapping_of: "Chip | None" = None,
                 calibration: list[np.ndarray] | None = None) -> None:
        if not modules:
            raise MappingError("the model has no Bayesian layers to compile")
        self.hw = hw
        self.scheme: Scheme = scheme_for(hw)
        self.device: DeviceModel | None = device_for(hw) if self.scheme.has_devices else None
        self.periphery, self.notes = periphery_config(hw, self.device)
        self.n = self.scheme.devices_per_side(hw)
        if hw.max_in < self.n:
            raise MappingError(f"a tile of {hw.max_in} rows cannot hold one weight of "
                               f"{self.n} devices per side; raise hardware.max_in")
        self.tiling = TilingConfig(max_in=hw.max_in // self.n, max_out=hw.max_out)
        if hw.read_correlation > 0 and hw.read_path == "explicit":
            raise ConfigError("hardware.read_correlation needs read_path = 'fast' (the explicit "
                              "path would keep one state per device and input)")
        self.counters = counters
        self.sampler = frozen = None
        if self.device is not None and hw.drift and hw.drift_time > 0:
            self.device.check_t(hw.drift_time)  # a card without time data refuses a time
        if self.device is not None:
            self.sampler = self.scheme.sampler_law(self.device, hw)
            frozen = self.scheme.frozen_law(self.device, hw)
        self.frozen = frozen
        if calibration is not None and len(calibration) != len(modules):
            raise MappingError(f"calibration rows for {len(calibration)} layers, but the model "
                               f"has {len(modules)} Bayesian layers")
        self.row_mean_square: list[float] | None = None
        """Per layer, E[mean_i x_i²]/E[scale²] of its rows on calibration inputs, the scale
        being the DAC's of each input tile (noise management); None: assumed,
        lowering.DEFAULT_ROW_MEAN_SQUARE."""
        if mapping_of is not None:
            self.row_mean_square = mapping_of.row_mean_square
        elif calibration is not None:
            self.row_mean_square = [self._row_mean_square(rows) for rows in calibration]
        targets = [layer_targets(m) for m in modules]
        if mapping_of is not None:
            pairs = [layer.pairs for layer in mapping_of.layers]
        else:
            pairs = self._map(targets)
        self.layers = [AnalogLayer(i, m, *t, p)
                       for i, (m, t, p) in enumerate(zip(modules, targets, pairs, strict=True))]
        self.rows_read = [0] * len(self.layers)
        """Rows each layer's tiles have read (one input vector each; bound-management re-reads
        not included): what the cost model counts per sample."""
        for layer in self.layers:
            layer.states = [self.state(layer, k) for k in range(self.scheme.n_states(hw))]

    def _row_mean_square(self, rows: np.ndarray) -> float:
        """E[mean_i x_i²]/E[scale²] over ``rows`` of one layer, with the DAC scale of every
        input tile by this periphery's noise management (a ratio of means: the output noise's
        energy against the weights')."""
        if rows.size == 0:
            return DEFAULT_ROW_MEAN_SQUARE
        edges = np.cumsum([0, *split_sizes(rows.shape[1], self.tiling.max_in)])
        management = Periphery(self.periphery, 1, seed=0)
        scale_sq = np.mean([np.mean(np.square(management.input_scales(
            np.ascontiguousarray(rows[:, a:b])))) for a, b in zip(edges[:-1], edges[1:],
                                                                  strict=True)])
        value = float(np.mean(np.square(rows.astype(np.float64))) / scale_sq)
        return value if value > 0 else DEFAULT_ROW_MEAN_SQUARE

    def drift_gain_expected(self) -> float:
        """The drift-compensation gain the chip will apply, E-weighted over the window:
        Σ g / Σ g·E[D(g)] on a uniform grid of targets (1 where no drift law acts)."""
        dev, hw = self.device, self.hw
        if dev is None or dev.drift is None or not (hw.drift and hw.drift_compensation
                                                    and hw.drift_time > 0):
            return 1.0
        g = np.linspace(dev.g_min, dev.g_max, 257)
        m1, _ = dev.drift_factor_moments(g, hw.drift_time)
        return float(np.sum(g) / np.sum(g * m1))

    # ---- mapping ----
    def periphery_referred(self, index: int, n_in: int) -> float:
        """The periphery's output noise per read referred to the weights of layer ``index``
        (``n_in`` inputs), as c with variance c/α² per weight (weight units² for α in µS per
        unit): under physical tile ranges a read adds (out_noise² + ADC step²/12) in tile units
        per tile, i.e. (n·g_max/α)² times that per output in weight units (for inputs normalised
        to the DAC's range), which the n_in weights of a column share in proportion to the mean
        square ρ² of their inputs against the DAC scale's:
        c = tiles·(out_noise² + step²/12)·(n·g_max·gain)²/(n_in·ρ²), gain the drift
        compensation's (the tile unit carries it). An output-referred equivalent, not a weight
        noise: 0 for per-tile ranges (it does not depend on α then) and for an ideal
        periphery."""
        p = self.periphery
        if self.device is None or p.is_perfect or self.hw.tile_scaling != "physical":
            return 0.0
        rho2 = DEFAULT_ROW_MEAN_SQUARE if self.row_mean_square is None else \
            max(self.row_mean_square[index], 1e-6)
        tiles = len(split_sizes(n_in, self.tiling.max_in))
        per_read = p.out_noise ** 2 * (1 + p.out_noise_std ** 2) + p.out_step ** 2 / 12.0
        unit = self.n * self.device.g_max * self.drift_gain_expected()
        return tiles * per_read * unit ** 2 / (n_in * rho2)

    def _map(self, targets: list[tuple[np.ndarray, ...]]) -> list[PairMap | None]:
        hw, dev = self.hw, self.device
        if dev is None:
            return [None] * len(targets)
        alphas = layer_alphas(hw.alpha, len(targets))
        options: dict[str, Any] = {"n": self.n, "levels": dev.levels,
                                   "common_mode": hw.common_mode, "policy": hw.alpha_policy,
                                   "frozen": self.frozen}
        periphery = [self.periphery_referred(i, t[0].shape[1]) for i, t in enumerate(targets)]
        if hw.alpha_scope == "chip" and hw.alpha is None:
            mu = np.concatenate([t[0].reshape(-1) for t in targets])
            sigma = np.concatenate([t[1].reshape(-1) for t in targets])
            weights = [t[0].size for t in targets]  # every weight counts once
            alphas = [choose_alpha(mu, sigma, self.sampler, dev.g_min, dev.g_max,
                                   periphery=float(np.average(periphery, weights=weights)),
                                   **options)] * len(targets)
        scope = "column" if hw.alpha_scope == "column" else "layer"
        return [map_pairs(mu, sigma, self.sampler, dev.g_min, dev.g_max, alpha=alpha,
                          scope=scope, periphery=c, **options)
                for (mu, sigma, *_), alpha, c in zip(targets, alphas, periphery, strict=True)]

    # ---- programming ----
    def state(self, layer: AnalogLayer, k: int) -> State:
        """Kept state ``k`` of the scheme (M0: the exact targets; M3: copy k on its own
        devices; M1/M4: the one programming of the chip)."""
        if layer.pairs is None:
            return State(layer.mu.astype(np.float32), np.square(layer.sigma).astype(np.float32))
        seed, devices = self.scheme.state_seeds(k, self.hw)
        return self.program(layer, seed, frozen_seed=devices)

    def sample_state(self, layer: AnalogLayer, sample: int, read_seed: int,
                     count: bool = True) -> State:
        """The state Monte-Carlo sample ``sample`` of read seed ``read_seed`` reads: a kept one,
        or the sample's own — a fresh programming of the same devices (M2), a fresh exact draw
        (M0 per_sample). ``count``: add a programming to the chip's write counters."""
        scheme = self.scheme
        if not scheme.fresh_per_sample(self.hw):
            return layer.states[scheme.state_of(sample, read_seed, self.hw)]
        seed = scheme.fresh_seed(sample, read_seed, self.hw)
        if layer.pairs is None:
            xi = draw(stream_key(seed, Stream.WEIGHT_DRAW, layer.index), layer.mu.size,
                      sample=sample).reshape(layer.shape)
            w = (layer.mu + layer.sigma * xi).astype(np.float32)
            return State(w, np.zeros_like(w))
        return self.program(layer, seed, frozen_seed=self.hw.chip_seed, count=count)

    def program(self, layer: AnalogLayer, seed: int, frozen_seed: int | None = None,
                count: bool = True) -> State:
        """Write the layer's targets once (programming noise keyed by ``seed``; D2D spread and
        faults by ``frozen_seed``), drift them to the inference time, compensate, and return the
        state in weight units. ``count``: add the writes to the chip's counters (not for the
        programmings a report draws to measure the chip)."""
        dev, pairs, hw = self.device, layer.pairs, self.hw
        assert dev is not None and pairs is not None
        n = pairs.n_devices
        targets = np.stack([np.broadcast_to(pairs.g_plus, (n, *layer.shape)),
                            np.broadcast_to(pairs.g_minus, (n, *layer.shape))])
        g = dev.program(targets, seed, layer=layer.index, frozen_seed=frozen_seed)
        if count:
            self.counters["device_writes"] += g.size
            self.counters["programming_events"] += 1
        g_t = g
        evolves = hw.drift and dev.evolves(hw.drift_time)
        if evolves:
            nu = dev.drift_exponents(targets, seed, layer=layer.index)
            g_t = dev.at_time(g, nu, hw.drift_time, seed, layer=layer.index)
        alpha = pairs.alpha
        w = (g_t[0].sum(0) - g_t[1].sum(0)) / alpha
        sigma = dev.sigma_read(g_t) / alpha  # [2, n, out, in]
        gain = 1.0
        if evolves and hw.drift_compensation and dev.drift is not None and hw.drift_time > 0:
            gain = drift_gain(g, g_t)
            w, sigma = w * gain, sigma * gain
        if self.scheme.snaps_sample():
            w = self._snap_sample(layer, w)
        var = np.square(sigma).sum(axis=(0, 1))
        device_sigma = None
        if hw.read_path == "explicit":
            device_sigma = sigma.reshape(2 * n, *layer.shape).astype(np.float32)
        return State(w.astype(np.float32), var.astype(np.float32), gain, device_sigma)

    @staticmethod
    def _snap_sample(layer: AnalogLayer, w: np.ndarray) -> np.ndarray:
        """SPQ/JQ under M2: the re-programmed weight lands on the b-bit levels of the model's
        sample quantizer (a write-verify to the nearest level), as the digital predictor's sample
        does."""
        transform = layer.adapter.transform
        if not isinstance(transform, Quantizer) or not transform.quantizes_sample:
            return w
        mu, sigma = layer.adapter.weight()
        with torch.no_grad():
            snapped = transform.sample(torch.from_numpy(w).reshape(mu.shape).float(), mu, sigma,
                                       "weight")
        return snapped.reshape(w.shape).double().numpy()

    # ---- tiles ----
    def unit(self, layer: AnalogLayer, state: State) -> float | np.ndarray | None:
        """Weight units per tile unit under ``tile_scaling = 'physical'``: the weight of a full
        conductance difference, n·g_max/α, times the state's drift gain (the tiles hold the
        drifted conductances; the gain is digital). One per output for column scales; None when
        each tile is normalised to its own largest weight (M0, or ``'per_tile'``)."""
        if layer.pairs is None or self.hw.tile_scaling == "per_tile":
            return None
        assert self.device is not None
        unit = self.n * self.device.g_max / np.asarray(layer.pairs.alpha, dtype=np.float64)
        unit = unit * state.gain
        return float(unit) if unit.ndim == 0 else unit.reshape(-1)

    def matrix(self, layer: AnalogLayer, state: State, read_seed: int) -> TiledMatrix:
        """``state`` on tiles with this chip's periphery, read under ``read_seed``."""
        unit = self.unit(layer, state)
        noise_shape = "gaussian"
        if self.hw.read_path == "explicit" and self.device is not None:
            noise_shape = self.device.read_shape
        return TiledMatrix(state.w, state.var if np.any(state.var > 0) else None,
                           self.periphery, seed=self.hw.chip_seed, layer=layer.index,
                           tiling=self.tiling, noise_shape=noise_shape, read_seed=read_seed,
                           weight_scaling_omega=1.0 if unit is None else None,
                           read_path=self.hw.read_path, unit=unit,
                           device_sigma=state.device_sigma)

    def read_variance(self, layer: AnalogLayer, state: State) -> np.ndarray:
        """Per-read variance (weight units²) of every weight of ``state`` as its tiles read it:
        the devices' and the periphery's weight read noise (``w_noise``, which acts in tile units
        on the stored weight)."""
        return self.matrix(layer, state, 0).weight_variance()
