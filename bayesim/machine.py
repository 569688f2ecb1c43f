"""The Bayesian machine: a mean-field BNN compiled onto virtual analog hardware whose device noise
draws the posterior samples (reference/hardware.md §5; DESIGN.md, "Three clocks of randomness").

:meth:`BayesianMachine.compile` maps every weight N(μ, σ²) of a (possibly quantized) model to
conductances (bayesim.crossbar.mapping) and *programs a chip instance*: programming noise, level
grid, stuck-at faults, drift exponents and the accumulated read noise at the inference time are
drawn once, keyed by ``chip_seed``. :meth:`BayesianMachine.sample_probs` then runs Monte-Carlo
inference on that chip: every MVM is a fresh noisy read of the tiles (bayesim.crossbar.tile),
through DAC, ADC and the rest of the periphery. Convolutions run as im2col matrices on the same
tiles; activations, pooling and biases are digital.

Mappings (``HardwareConfig.mapping``), what draws sample s, and the noise law that realises σ:

==== ============================================ ===========================================
M0   exact Gaussian N(μ, σ²) per read on ideal     software sampling on the tiles (reference)
     devices (the periphery still applies)
M1   per-read noise of one programmed pair         σ_read(G) with the common-mode knob
M2   the pair is re-programmed for every sample    σ_prog(G); writes counted against endurance
M3   R programmed copies, sample s uses s mod R    σ_prog(G) (a quenched ensemble)
M4   n devices per side, currents summed (Lin     σ_read(G) of n devices
     2023: n = 3), read noise
==== ============================================ ===========================================

The per-read noise of M1–M4 is on top of whatever the mapping freezes. Sample s of input i is a
pure function of (chip seed, Monte-Carlo seed, s, i), so chunking never changes results. Unlike
the software predictor, each input of a sample sees its own read of the devices — which is what a
chip does.

Biases stay digital and are sampled per Monte-Carlo sample, b_s = μ_b + σ_b·ξ_s (counter-based,
stream BIAS). Quantization strategies (docs/machine.md): VPQ/JQ compile their quantized
distribution (Q(μ) on the uniform grid, Q_log(σ): a log-spaced set of common-mode states); the
sample quantizer of SPQ/JQ snaps every re-programmed weight of M2 to its b-bit levels, while under
M1/M3/M4 the analog sample is quantized only by the ADC.
"""

import dataclasses
import hashlib
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bayesim.bnn.layers import BayesConv2d, BayesianLayer, bayesian_layers
from bayesim.crossbar.kernels import im2col
from bayesim.crossbar.mapping import PairMap, feasibility_report, layer_alpha, map_pairs
from bayesim.crossbar.periphery import PeripheryConfig, periphery_preset, periphery_presets
from bayesim.crossbar.rng import Stream, draw, stream_key
from bayesim.crossbar.tile import TiledMatrix, TilingConfig, split_sizes
from bayesim.devices.laws import scaled
from bayesim.devices.model import DeviceModel
from bayesim.devices.presets import load_preset
from bayesim.errors import ConfigError, MappingError
from bayesim.metrics import effective_sample_size, mutual_information
from bayesim.quant.strategies import Quantizer, model_memory, quantization_of
from bayesim.schema import StrictModel
from bayesim.seeding import derive_seed

Mapping = Literal["M0", "M1", "M2", "M3", "M4"]


class HardwareConfig(StrictModel):
    """The virtual chip: device card, mapping, periphery, tiles, time. Units: µS, s."""

    device: str = "pcm_ibm_2020"
    """A card of device_models/ (``bayesim devices list``) or the path of a card file."""
    allow_extrapolation: bool = False
    mapping: Mapping = "M1"
    common_mode: bool = True
    """Use the common mode of each pair as the σ knob (M5); False parks the unused device at g_min
    (aihwkit's single-pair converter), so σ follows μ."""
    alpha: float | list[float] | None = None
    """Layer scale, µS per weight unit: one for all layers, one per Bayesian layer (e.g. those of
    device-constrained training), or None to choose it per layer for feasibility."""
    alpha_scope: Literal["layer", "column", "chip"] = "layer"
    """One α per layer, one per output column (its own digital gain after the ADC), or one for
    the whole chip, chosen over all layers' weights together (then equal weights of different
    layers are the same device state, as a shared-Gaussian codebook needs)."""
    alpha_policy: Literal["feasibility", "max"] = "feasibility"
    """How α is chosen when not given: 'feasibility' maximises the fraction of σ realised within
    ±10 % (mapping.choose_alpha); 'max' takes the largest α at which every μ fits (most signal
    against programming error, σ as it falls; aihwkit maps weights this way)."""
    levels_bits: int | None = Field(default=None, ge=1, le=12)
    """Conductance levels 2^bits on [g_min, g_max]; None keeps the card's (usually analog)."""
    read_noise_scale: float = Field(default=1.0, ge=0)
    """Multiplies the card's per-read σ(G) (0 switches read noise off)."""
    program_noise_scale: float = Field(default=1.0, ge=0)
    """Multiplies the card's programming σ(G) (0 switches programming noise off)."""
    drift: bool = True
    """Apply drift and the accumulated (1/f, relaxation) noise at ``drift_time``."""
    drift_time: float = Field(default=0.0, ge=0)
    """Inference time after programming, s (after the card's t₀ for PCM)."""
    drift_compensation: bool = True
    """Global drift compensation per layer (aihwkit): a digital gain Σ|y(t₀)|/Σ|y(t)| measured
    with an all-ones calibration input."""
    periphery: str = "aihwkit_standard_io"
    """Periphery preset (aihwkit StandardIOParameters: 8-bit DAC/ADC, out_noise 0.04)."""
    dac_bits: int | None = Field(default=8, ge=0, le=24)
    """Signed DAC resolution (step 1/(2^b − 2) of the range, aihwkit); 0 or None: no
    quantisation."""
    adc_bits: int | None = Field(default=8, ge=0, le=24)
    out_noise: float | None = Field(default=None, ge=0)
    """Output noise per read (tile units); None keeps the preset's."""
    max_in: int = Field(default=512, ge=1)
    max_out: int = Field(default=512, ge=1)
    read_path: Literal["fast", "explicit"] = "fast"
    """fast: exact output-referred Gaussian (a Laplace card's noise moment-matched, hardware.md
    §3.3); explicit: one draw per device and read, in the card's shape."""
    read_correlation: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Lag-1 correlation ρ of successive reads of a device (AR(1), fast path); 0: white. RTN and
    1/f noise make back-to-back reads correlated (hardware.md §3.6), which lowers the effective
    number of samples."""
    copies: int = Field(default=8, ge=1)
    """M3: programmed copies R (the quenched ensemble)."""
    devices_per_weight: int = Field(default=3, ge=1)
    """M4: devices per side of a weight (Lin et al. 2023 sum three devices)."""
    endurance_cycles: float = Field(default=1e7, gt=0)
    """M2: write cycles a device survives (OxRAM robust at 10^7, Dalgaty et al. 2021)."""
    p_stuck_min: float | None = Field(default=None, ge=0, le=1)
    """Stuck-at-g_min probability per device; None keeps the card's."""
    p_stuck_max: float | None = Field(default=None, ge=0, le=1)
    chip_seed: int = Field(default=0, ge=0)
    """Keys every frozen draw: one chip instance per seed."""
    batch_size: int = Field(default=1000, ge=1)
    """Inputs per forward pass on the chip."""
    decomposition_inputs: int = Field(default=300, ge=0)
    """Inputs per subset (clean, OOD) for the variance decomposition of the report; 0 skips it."""


def layer_alphas(alpha: float | list[float] | None, n_layers: int) -> list[float | None]:
    """``hardware.alpha`` as one entry per Bayesian layer (None: to be chosen)."""
    if alpha is None:
        return [None] * n_layers
    values = list(alpha) if isinstance(alpha, list) else [alpha] * n_layers
    if len(values) != n_layers:
        raise ConfigError(f"hardware.alpha lists {len(values)} layer scales but the model has "
                          f"{n_layers} Bayesian layers")
    for value in values:
        if not value > 0:
            raise ConfigError(f"hardware.alpha must be > 0 µS per weight unit, got {value}")
    return values


def periphery_config(hw: HardwareConfig) -> PeripheryConfig:
    """The preset of ``hw.periphery`` with the DAC/ADC bits and output noise of ``hw``."""
    if hw.periphery not in periphery_presets():
        raise ConfigError(f"hardware.periphery {hw.periphery!r} is not a preset; choose one of "
                          f"{', '.join(periphery_presets())}")
    overrides: dict[str, Any] = {"inp_res": _resolution("dac_bits", hw.dac_bits),
                                 "out_res": _resolution("adc_bits", hw.adc_bits)}
    if hw.out_noise is not None:
        overrides["out_noise"] = hw.out_noise
    if hw.periphery == "ideal":
        return periphery_preset("ideal")
    return periphery_preset(hw.periphery, **overrides)


def _resolution(name: str, bits: int | None) -> float:
    """aihwkit's resolution of a signed b-bit converter, 1/(2^b − 2); 0 (none) for 0 or None."""
    if not bits:
        return 0.0
    if bits < 2:
        raise ConfigError(f"hardware.{name} = {bits}: a signed converter needs at least 2 bits "
                          f"(or 0 for no quantisation)")
    return 1.0 / (2 ** bits - 2)


def device_for(hw: HardwareConfig) -> DeviceModel:
    """The card of ``hw.device`` with the hardware's levels, noise scales and fault rates."""
    device = load_preset(hw.device, allow_extrapolation=hw.allow_extrapolation)
    program = device.program_law
    if program is None and device.timed_program is not None:
        program = device.timed_program.laws[0]
    changes: dict[str, Any] = {
        "program_law": scaled(program, hw.program_noise_scale),
        "timed_program": None if hw.program_noise_scale != 1.0 else device.timed_program,
        "read_law": scaled(device.read_law, hw.read_noise_scale),
    }
    if hw.levels_bits is not None:
        changes["levels"] = 2 ** hw.levels_bits
    if hw.p_stuck_min is not None:
        changes["p_stuck_min"] = hw.p_stuck_min
    if hw.p_stuck_max is not None:
        changes["p_stuck_max"] = hw.p_stuck_max
    return dataclasses.replace(device, **changes)


@dataclasses.dataclass
class AnalogLayer:
    """One Bayesian layer on the chip: its targets and its programmed state(s)."""

    index: int
    module: BayesianLayer
    mu: np.ndarray
    """[out, in] weight means (weight units), convolution kernels flattened."""
    sigma: np.ndarray
    bias_mu: np.ndarray | None
    bias_sigma: np.ndarray | None
    pairs: PairMap | None
    """Target conductances (None for M0)."""
    states: list[tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)
    """Programmed (W, per-read variance) in weight units: one for M0/M1/M4, R for M3."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.mu.shape  # type: ignore[return-value]


class BayesianMachine:
    """A programmed chip that implements the Predictor protocol (``kind = "analog"``)."""

    kind = "analog"

    def __init__(self, model: nn.Module, hw: HardwareConfig) -> None:
        if not isinstance(model, nn.Sequential):
            raise MappingError("the machine compiles sequential models (bayesim's MLP and "
                               "LeNet-5); wrap other architectures in nn.Sequential")
        self.model = model.eval()
        self.hw = hw
        self.periphery = periphery_config(hw)
        self.device = None if hw.mapping == "M0" else device_for(hw)
        self.tiling = TilingConfig(max_in=self._physical_max_in(), max_out=hw.max_out)
        self.quant = quantization_of(model)
        self.counters = {"mvms": 0, "device_reads": 0, "random_draws": 0, "device_writes": 0,
                         "programming_events": 0}
        modules = bayesian_layers(model)
        self._alphas = layer_alphas(hw.alpha, len(modules))
        if hw.alpha_scope == "chip" and hw.alpha is None and self.device is not None:
            self._alphas = [self._chip_alpha(modules)] * len(modules)
        self.layers = [self._map_layer(i, m) for i, m in enumerate(modules)]
        if not self.layers:
            raise MappingError("the model has no Bayesian layers to compile")
        for layer in self.layers:
            self._program_layer(layer)
        self._cache: dict[tuple[int, int], list[TiledMatrix]] = {}
        if hw.read_correlation > 0 and hw.read_path == "explicit":
            raise ConfigError("hardware.read_correlation needs read_path = 'fast' (the explicit "
                              "path would keep one state per device and input)")
        self._chain: dict[str, Any] = {}
        """AR(1) read noise: the inputs, seed and next sample of the chain, and its states."""

    @classmethod
    def compile(cls, model: nn.Module, hw: HardwareConfig) -> "BayesianMachine":
        """Map and program ``model`` (fp32 or quantized) on the chip described by ``hw``."""
        return cls(model, hw)

    # ---- mapping and programming ----
    @property
    def n_devices(self) -> int:
        """Devices per side of a weight."""
        return self.hw.devices_per_weight if self.hw.mapping == "M4" else 1

    def _physical_max_in(self) -> int:
        n = self.n_devices
        if self.hw.max_in < n:
            raise MappingError(f"a tile of {self.hw.max_in} rows cannot hold one weight of "
                               f"{n} devices per side; raise hardware.max_in")
        return self.hw.max_in // n  # M4: n physical rows per logical input

    def _sigma_law(self) -> object | None:
        assert self.device is not None
        if self.hw.mapping in ("M2", "M3"):
            return self.device.program_law
        return self.device.read_law

    def _chip_alpha(self, modules: list[BayesianLayer]) -> float:
        """One α for every layer, by the α policy over all weights together."""
        dev = self.device
        assert dev is not None
        pairs = [tuple(t.detach().double().reshape(-1).numpy() for t in m.distribution("weight"))
                 for m in modules]
        mu, sigma = (np.concatenate(parts) for parts in zip(*pairs, strict=True))
        return layer_alpha(mu, sigma, self._sigma_law(), dev.g_min, dev.g_max, n=self.n_devices,
                           levels=dev.levels, common_mode=self.hw.common_mode,
                           policy=self.hw.alpha_policy)

    def device_states(self) -> dict[str, Any]:
        """How many distinct target states the chip is programmed to: (G⁺, G⁻) pairs and single
        conductance values, per layer and over the chip (targets rounded to 1e-6 µS), and the
        bits a level grid needs to hold every distinct conductance, ⌈log₂ n⌉."""
        if self.hw.mapping == "M0":
            return {"note": "M0 has no devices"}
        pairs, values, per_layer = [], [], []
        for layer in self.layers:
            assert layer.pairs is not None
            gp = np.round(np.asarray(layer.pairs.g_plus, dtype=np.float64).reshape(-1), 6)
            gm = np.round(np.asarray(layer.pairs.g_minus, dtype=np.float64).reshape(-1), 6)
            pair = np.unique(np.stack([gp, gm], 1), axis=0)
            value = np.unique(np.concatenate([gp, gm]))
            pairs.append(pair)
            values.append(value)
            per_layer.append({"layer": layer.index, "pairs": int(pair.shape[0]),
                              "conductances": int(value.size)})
        n_pairs = int(np.unique(np.concatenate(pairs), axis=0).shape[0])
        n_values = int(np.unique(np.concatenate(values)).size)
        assert self.device is not None
        return {"pairs": n_pairs, "conductances": n_values,
                "level_bits_needed": int(math.ceil(math.log2(max(n_values, 2)))),
                "device_levels": int(self.device.levels) or None,
                "weights": int(sum(layer.mu.size for layer in self.layers)),
                "layers": per_layer}

    def _map_layer(self, index: int, module: BayesianLayer) -> AnalogLayer:
        mu_t, sigma_t = module.distribution("weight")
        mu = mu_t.detach().double().reshape(mu_t.shape[0], -1).numpy()
        sigma = sigma_t.detach().double().reshape(mu_t.shape[0], -1).numpy()
        bias_mu = bias_sigma = None
        if module.bias_mu is not None:
            b_mu, b_sigma = module.distribution("bias")
            bias_mu = b_mu.detach().double().numpy()
            bias_sigma = b_sigma.detach().double().numpy()
        pairs = None
        if self.device is not None:
            dev = self.device
            pairs = map_pairs(mu, sigma, self._sigma_law(), dev.g_min, dev.g_max,
                              alpha=self._alphas[index], n=self.n_devices, levels=dev.levels,
                              common_mode=self.hw.common_mode,
                              scope="column" if self.hw.alpha_scope == "column" else "layer",
                              policy=self.hw.alpha_policy)
        return AnalogLayer(index, module, mu, sigma, bias_mu, bias_sigma, pairs)

    def _program_layer(self, layer: AnalogLayer) -> None:
        if self.hw.mapping == "M0":
            layer.states = [(layer.mu.astype(np.float32), np.square(layer.sigma)
                             .astype(np.float32))]
        elif self.hw.mapping == "M3":
            layer.states = [self.program(layer, derive_seed(self.hw.chip_seed, "copy", r))
                            for r in range(self.hw.copies)]
        elif self.hw.mapping in ("M1", "M4"):
            layer.states = [self.program(layer, self.hw.chip_seed)]
        # M2 programs a fresh state for every sample (program() in _matrices)

    def program(self, layer: AnalogLayer, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Write the layer's target conductances once (programming noise, levels, faults), drift
        them to the inference time and return (W, per-read variance) in weight units."""
        dev, pairs, hw = self.device, layer.pairs, self.hw
        assert dev is not None and pairs is not None
        n = pairs.n_devices
        targets = np.stack([np.broadcast_to(pairs.g_plus, (n, *layer.shape)),
                            np.broadcast_to(pairs.g_minus, (n, *layer.shape))])
        g = dev.program(targets, seed, layer=layer.index)
        self.counters["device_writes"] += g.size
        self.counters["programming_events"] += 1
        g_t = g
        drifts = dev.drift is not None or dev.accumulated is not None or \
            dev.relaxation is not None or (dev.timed_program is not None and hw.drift_time > 0)
        if hw.drift and drifts:
            nu = dev.drift_exponents(targets, seed, layer=layer.index)
            g_t = dev.at_time(g, nu, hw.drift_time, seed, layer=layer.index)
        alpha = pairs.alpha
        w = (g_t[0].sum(0) - g_t[1].sum(0)) / alpha
        var = np.square(dev.sigma_read(g_t)).sum(axis=(0, 1)) / alpha ** 2
        if hw.drift and drifts and hw.drift_compensation:
            w0 = (g[0].sum(0) - g[1].sum(0)) / alpha
            now = np.abs(w.sum(axis=1)).sum()
            gain = np.abs(w0.sum(axis=1)).sum() / now if now > 0 else 1.0
            w, var = w * gain, var * gain ** 2
        if hw.mapping == "M2":
            w = self._snap_sample(layer, w)
        return w.astype(np.float32), var.astype(np.float32)

    @staticmethod
    def _snap_sample(layer: AnalogLayer, w: np.ndarray) -> np.ndarray:
        """SPQ/JQ under M2: the re-programmed weight lands on the b-bit levels of the model's
        sample quantizer (a write-verify to the nearest level), as the digital predictor's sample
        does."""
        transform = layer.module.transform
        if not isinstance(transform, Quantizer) or not transform.quantizes_sample:
            return w
        mu, sigma = layer.module.distribution("weight")
        shape = mu.shape
        with torch.no_grad():
            snapped = transform.sample(torch.from_numpy(w).reshape(shape).float(), mu, sigma,
                                       "weight")
        return snapped.reshape(w.shape).double().numpy()

    # ---- reading ----
    def _noise_shape(self) -> str:
        if self.hw.read_path == "explicit" and self.device is not None:
            return self.device.read_shape
        return "gaussian"

    def _matrix(self, layer: AnalogLayer, state: tuple[np.ndarray, np.ndarray],
                read_seed: int) -> TiledMatrix:
        w, var = state
        return TiledMatrix(w, var if np.any(var > 0) else None, self.periphery,
                           seed=self.hw.chip_seed, layer=layer.index, tiling=self.tiling,
                           noise_shape=self._noise_shape(), read_seed=read_seed,
                           weight_scaling_omega=1.0, read_path=self.hw.read_path)

    def _matrices(self, sample: int, read_seed: int) -> list[TiledMatrix]:
        """The tiles every layer reads in Monte-Carlo sample ``sample``."""
        if self.hw.mapping == "M2":
            seed = derive_seed(self.hw.chip_seed, "reprogram", sample)
            return [self._matrix(layer, self.program(layer, seed), read_seed)
                    for layer in self.layers]
        copy = sample % self.hw.copies if self.hw.mapping == "M3" else 0
        key = (copy, read_seed)
        if key not in self._cache:
            if len(self._cache) >= max(1, self.hw.copies if self.hw.mapping == "M3" else 1):
                self._cache.clear()
            self._cache[key] = [self._matrix(layer, layer.states[copy], read_seed)
                                for layer in self.layers]
        return self._cache[key]

    @staticmethod
    def _layer_input(layer: AnalogLayer, h: torch.Tensor) -> tuple[np.ndarray, tuple | None]:
        """The rows the tiles read: im2col patches for a convolution (with the output geometry),
        the flattened activations otherwise."""
        module = layer.module
        if isinstance(module, BayesConv2d):
            k, p, s = module.kernel_size, module.padding, module.stride
            if p:
                h = F.pad(h, (p, p, p, p))
            batch, channels, height, width = h.shape
            h_out, w_out = (height - k) // s + 1, (width - k) // s + 1
            x = im2col(h.contiguous().numpy(), k, s)
            return x, (batch, h_out * w_out, h_out, w_out)
        return h.reshape(h.shape[0], -1).contiguous().numpy(), None

    def _read_layer(self, layer: AnalogLayer, matrix: TiledMatrix, x: np.ndarray,
                    geometry: tuple | None, sample: int, read_seed: int, row0: int,
                    memo: dict | None = None, correlation: dict | None = None) -> torch.Tensor:
        n_out, n_in = layer.shape
        bias = None
        if layer.bias_mu is not None:  # sampled in digital, added after the ADC
            assert layer.bias_sigma is not None
            xi = draw(stream_key(read_seed, Stream.BIAS, layer.index), n_out, sample=sample)
            bias = (layer.bias_mu + layer.bias_sigma * xi).astype(np.float32)
            self.counters["random_draws"] += n_out
        y = matrix.mvm(x, sample, row0 if geometry is None else row0 * geometry[1], memo,
                       correlation, self.hw.read_correlation, bias)
        rows = x.shape[0]
        self.counters["mvms"] += rows * matrix.n_tiles
        self.counters["device_reads"] += rows * n_out * n_in * 2 * self.n_devices
        per_read = n_out * (n_in if self.hw.read_path == "explicit" else len(matrix.in_sizes))
        self.counters["random_draws"] += rows * per_read
        out = torch.from_numpy(y)
        if geometry is not None:
            batch, n_pos, h_out, w_out = geometry
            out = out.reshape(batch, h_out, w_out, n_out).permute(0, 3, 1, 2)  # channels-last
        return out

    def _forward(self, first: tuple[np.ndarray, tuple | None], memo: dict | None, sample: int,
                 read_seed: int, row0: int, matrices: list[TiledMatrix],
                 chain: list[dict] | None = None) -> torch.Tensor:
        """Logits of one sample; ``first`` is the first Bayesian layer's input rows (the same for
        every sample, so computed once per batch), ``memo`` what its tiles may reuse between
        samples (Tile.mvm), ``chain`` the AR(1) read-noise states of every layer."""
        h: torch.Tensor | None = None
        k = 0
        for module in list(self.model)[self._first_bayesian:]:
            if isinstance(module, BayesianLayer):
                layer = self.layers[k]
                x, geometry = first if k == 0 else self._layer_input(layer, h)
                h = self._read_layer(layer, matrices[k], x, geometry, sample, read_seed, row0,
                                     memo if k == 0 else None,
                                     None if chain is None else chain[k])
                k += 1
            else:
                h = module(h)
        assert h is not None
        return h

    @property
    def _first_bayesian(self) -> int:
        return next(i for i, m in enumerate(self.model) if isinstance(m, BayesianLayer))

    @torch.no_grad()
    def sample_probs(self, x: torch.Tensor, n_samples: int, seed: int, *,
                     sample_offset: int = 0) -> torch.Tensor:
        """``[n_samples, B, C]`` class probabilities of samples ``sample_offset …``: each sample
        a fresh read of the chip (M2: a fresh programming), inputs in batches."""
        if n_samples < 1:
            raise ConfigError(f"the number of Monte-Carlo samples must be ≥ 1, got {n_samples}")
        read_seed = derive_seed(seed, "machine-read")
        chains = self._chains(x, seed, sample_offset) if self.hw.read_correlation > 0 else None
        samples = range(sample_offset, sample_offset + n_samples)
        starts = range(0, x.shape[0], self.hw.batch_size)

        def first_input(a: int) -> tuple:
            h = x[a:a + self.hw.batch_size].float()
            for module in list(self.model)[:self._first_bayesian]:
                h = module(h)
            return self._layer_input(self.layers[0], h)

        def chain(a: int) -> list[dict] | None:
            return None if chains is None else chains.setdefault(a, [{} for _ in self.layers])

        if self.hw.mapping == "M2":  # one programming per sample, read by every batch
            logits = []
            for s in samples:
                matrices = self._matrices(s, read_seed)
                logits.append(torch.cat([self._forward(first_input(a), None, s, read_seed, a,
                                                       matrices, chain(a)) for a in starts]))
            probs = torch.softmax(torch.stack(logits), dim=-1)
        else:
            out = []
            for a in starts:
                # one programmed state read again and again: the first layer's DAC output, mean
                # and variance are the same for every sample (only the draws differ)
                memo = {} if self.hw.mapping in ("M0", "M1", "M4") else None
                first = first_input(a)
                logits = [self._forward(first, memo, s, read_seed, a,
                                        self._matrices(s, read_seed), chain(a)) for s in samples]
                out.append(torch.softmax(torch.stack(logits), dim=-1))
            probs = torch.cat(out, dim=1)
        if chains is not None:
            self._chain["next"] = sample_offset + n_samples
        return probs

    def _chains(self, x: torch.Tensor, seed: int, sample_offset: int) -> dict:
        """The AR(1) states of the reads of ``x`` just before sample ``sample_offset``: those
        left by the previous call when it ended there on the same inputs and seed; otherwise the
        chain is restarted at sample 0 and run up to ``sample_offset`` (so a sample stays a pure
        function of (seed, s), at the cost of the skipped samples)."""
        digest = hashlib.blake2b(x.detach().float().contiguous().numpy().tobytes(),
                                 digest_size=16).hexdigest()
        same = self._chain.get("digest") == digest and self._chain.get("seed") == seed
        if same and self._chain.get("next") == sample_offset:
            return self._chain["states"]
        self._chain = {"digest": digest, "seed": seed, "next": 0, "states": {}}
        if sample_offset > 0:
            self.sample_probs(x, sample_offset, seed, sample_offset=0)
        return self._chain["states"]

    # ---- reports ----
    def realised_sigma(self, layer: AnalogLayer, programmed: bool = True) -> np.ndarray:
        """σ (weight units) the chip gives each weight of ``layer``: for the per-read samplers
        (M1, M4) on this programmed chip (after programming noise, drift and compensation) when
        ``programmed``, else at the target conductances; for M2/M3 (programming noise is the
        sampler) always at the targets; M0 exactly the target."""
        if self.hw.mapping == "M0" or layer.pairs is None:
            return layer.sigma
        if programmed and self.hw.mapping in ("M1", "M4"):
            return np.sqrt(layer.states[0][1].astype(np.float64))
        return layer.pairs.sigma_realised

    def feasibility(self) -> dict[str, Any]:
        """The feasibility report: overall and per layer (with α). For M1/M4 the headline numbers
        are those of this programmed chip; ``nominal`` gives the mapping's at the targets."""
        if self.hw.mapping == "M0":
            return {"mapping": "M0", "fraction_feasible": 1.0,
                    "note": "M0 samples N(μ, σ²) exactly; every σ is realised"}
        per_layer = []
        for layer in self.layers:
            assert layer.pairs is not None
            report = feasibility_report(layer.sigma, self.realised_sigma(layer))
            per_layer.append({"layer": layer.index, **_alpha_summary(layer.pairs.alpha),
                              **report})
        target = np.concatenate([layer.sigma.reshape(-1) for layer in self.layers])
        law = "programming" if self.hw.mapping in ("M2", "M3") else "per-read"
        result = {"mapping": self.hw.mapping, "noise_law": law,
                  **feasibility_report(target, self._all_realised(True)), "layers": per_layer}
        if self.hw.mapping in ("M1", "M4"):
            result["as"] = "programmed chip (programming noise, drift, compensation)"
            result["nominal"] = feasibility_report(target, self._all_realised(False))
        return result

    def _all_realised(self, programmed: bool) -> np.ndarray:
        return np.concatenate([self.realised_sigma(layer, programmed).reshape(-1)
                               for layer in self.layers])

    def sigma_pairs(self, limit: int = 5000) -> tuple[np.ndarray, np.ndarray]:
        """(target σ, realised σ on this chip) of up to ``limit`` weights (a fixed random
        subset)."""
        target = np.concatenate([layer.sigma.reshape(-1) for layer in self.layers])
        realised = self._all_realised(True)
        if target.size > limit:
            pick = np.random.default_rng(0).choice(target.size, limit, replace=False)
            target, realised = target[pick], realised[pick]
        return target, realised

    def endurance(self, n_samples: int) -> dict[str, Any] | None:
        """M2: write cycles per device after ``n_samples`` samples, against the budget."""
        if self.hw.mapping != "M2":
            return None
        return {"writes_per_device": n_samples, "endurance_cycles": self.hw.endurance_cycles,
                "fraction_of_budget": n_samples / self.hw.endurance_cycles,
                "samples_until_worn_out": self.hw.endurance_cycles}

    def hardware_report(self, n_samples: int) -> dict[str, Any]:
        n_weights = sum(layer.mu.size for layer in self.layers)
        devices = 0 if self.hw.mapping == "M0" else n_weights * 2 * self.n_devices * (
            self.hw.copies if self.hw.mapping == "M3" else 1)
        return {
            "config": self.hw.model_dump(mode="json"),
            "device": None if self.device is None else self.device.name,
            "periphery": self.periphery.model_dump(mode="json"),
            "n_weights": n_weights,
            "n_devices": devices,
            "n_tiles": sum(len(split_sizes(layer.shape[0], self.tiling.max_out)) *
                           len(split_sizes(layer.shape[1], self.tiling.max_in))
                           for layer in self.layers) * (self.hw.copies
                                                        if self.hw.mapping == "M3" else 1),
            "feasibility": self.feasibility(),
            "device_states": self.device_states(),
            "endurance": self.endurance(n_samples),
            "counters": dict(self.counters),
            "counters_note": "mvms: one input vector on one tile; device_reads: devices read "
                             "(both sides of every pair); random_draws: normals drawn per read "
                             "and for biases; re-reads of bound management not counted",
        }

    def describe(self) -> dict[str, Any]:
        label = f"analog {self.hw.mapping} {self.hw.device if self.device else 'exact'}"
        if self.quant is not None and self.quant.strategy != "fp":
            label += f" {self.quant.label}"
        return {"kind": self.kind, "label": label, "hardware": self.hw.model_dump(mode="json")}

    def memory(self) -> dict[str, Any]:
        return model_memory(self.model, self.quant)


def _alpha_summary(alpha: float | np.ndarray) -> dict[str, Any]:
    if np.ndim(alpha) == 0:
        return {"alpha_uS_per_unit": float(alpha)}
    values = np.asarray(alpha).reshape(-1)
    return {"alpha_uS_per_unit": float(np.median(values)), "alpha_scope": "column",
            "alpha_min": float(values.min()), "alpha_max": float(values.max())}


def sampling_report(probs: torch.Tensor, read_correlation: float) -> dict[str, Any]:
    """Effective sample size of Monte-Carlo samples ``probs[S, N, C]`` of a machine with read
    correlation ρ: per input, Geyer's ESS of the sequence of the predicted class's probability
    (metrics.py), and the AR(1) value S·(1 − ρ)/(1 + ρ) for a statistic linear in the noise."""
    probs = probs.double()
    n_samples = probs.shape[0]
    top = probs.mean(0).argmax(-1)
    chains = probs.gather(2, top[None, :, None].expand(n_samples, -1, 1))[..., 0]
    ess = effective_sample_size(chains)
    rho = read_correlation
    return {"read_correlation": rho, "n_samples": n_samples, "n_inputs": int(probs.shape[1]),
            "ess_median": float(ess.median()), "ess_mean": float(ess.mean()),
            "ess_fraction_median": float(ess.median()) / n_samples,
            "ess_ar1_linear": n_samples * (1 - rho) / (1 + rho),
            "statistic": "probability of the mean-predicted class, per input (Geyer's initial "
                         "positive sequence)"}


def predictive_statistics(probs: torch.Tensor) -> dict[str, float]:
    """Mean over inputs of the predictive variance Σ_c Var_s[p_c] and of the mutual information
    (nats) of Monte-Carlo samples ``probs[S, N, C]``."""
    probs = probs.double()
    variance = probs.var(0, unbiased=True).sum(-1) if probs.shape[0] > 1 else \
        torch.zeros(probs.shape[1])
    return {"predictive_variance": float(variance.mean()),
            "mutual_information": float(mutual_information(probs).mean())}


SOURCES: dict[str, dict[str, Any]] = {
    "read_noise": {"read_noise_scale": 0.0},
    "programming_noise": {"program_noise_scale": 0.0},
    "drift": {"drift": False},
}


def variance_decomposition(model: nn.Module, hw: HardwareConfig,
                           inputs: dict[str, torch.Tensor], n_samples: int, seed: int,
                           on_step: Callable[[], None] | None = None,
                           reference: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """How much of the predictive variance and of the mean MI each noise source carries, measured
    by switching it off (a chip compiled without it, same seeds) on each input set.
    ``reference``: the full chip's samples of ``inputs`` if the caller has them already."""
    if hw.mapping == "M0":
        return {"note": "M0 has no device noise to decompose"}
    result: dict[str, Any] = {"n_samples": n_samples,
                              "inputs": {k: int(v.shape[0]) for k, v in inputs.items()}}
    variants = {"all": hw} | {name: hw.model_copy(update=change)
                              for name, change in SOURCES.items()}
    stats = {}
    for name, config in variants.items():
        if name == "all" and reference is not None:
            samples = reference
        else:
            machine = BayesianMachine.compile(model, config)
            samples = {k: machine.sample_probs(x, n_samples, seed) for k, x in inputs.items()}
        stats[name] = {k: predictive_statistics(p) for k, p in samples.items()}
        if on_step:
            on_step()
    for subset in inputs:
        full = stats["all"][subset]
        entry: dict[str, Any] = {"all_sources": full}
        for name in SOURCES:
            off = stats[name][subset]
            entry[name] = {
                "without": off,
                "share_of_variance": _share(full["predictive_variance"],
                                            off["predictive_variance"]),
                "share_of_mi": _share(full["mutual_information"], off["mutual_information"]),
            }
        result[subset] = entry
    return result


def _share(full: float, without: float) -> float | None:
    """1 − without/full: the part that disappears when a source is switched off."""
    return None if full <= 0 or not math.isfinite(full) else 1.0 - without / full
