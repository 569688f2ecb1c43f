"""The periphery of one crossbar tile: DAC, ADC, noise and bound management, output noise, IR drop.

Everything here works in *tile units*: inputs normalised so that the DAC range is ±``inp_bound``
and weights normalised so that the reference conductance is 1 (``w = G / g_ref``), which is the
convention of aihwkit's ``IOParameters`` (aihwkit 1.1.0 ``AnalogMVM.matmul``,
``src/aihwkit/simulator/tiles/analog_mvm.py``). The defaults are aihwkit's ``IOParameters``
defaults (the forward pass of ``InferenceRPUConfig``, aihwkit 1.1.0,
``src/aihwkit/simulator/parameters/io.py``); aihwkit's presets (``PresetIOParameters``,
``StandardIOParameters``, ``StandardHWATrainingPreset`` in ``src/aihwkit/simulator/presets``) are
available by name through :func:`periphery_preset`.

One tile MVM (:meth:`Periphery.mvm`), in aihwkit's order:

1. noise management: a scale α per input row (``none``: 1; ``abs_max``: max|x|; ``max``: max x;
   ``constant``: ``nm_thres`` or 1; ``abs_max``/``max`` clamped at ``nm_thres`` when it is > 0;
   α ≤ 0 becomes 1). A row of zeros is read like any other: the output noise and the ADC act on
   it (aihwkit returns exact zeros when the whole batch is zero, which hides the output noise);
2. DAC: x/(α·r) quantised with step ``inp_res``·2·``inp_bound`` (``res`` > 1 counts steps,
   otherwise it is the step), optionally stochastically rounded, clipped to ±``inp_bound``, plus
   ``inp_noise``·ξ;
3. the noisy crossbar read (the tile's device read noise, plus ``w_noise`` of type
   ``additive_constant``, σ² = w_noise², or ``pcm_read``, σ² = w_noise²·|w|, as in aihwkit's C++
   tile);
4. IR drop (aihwkit's simple C++ model): a_i = n/``ir_drop_g_ratio``·Σ_j |w_ij||x_j|,
   c_i = a_i(a_i(0.05a_i − 0.2) + 0.5), y_i −= ``ir_drop``·c_i·Σ_j w_ij x_j (1 − (1 − j/n)²);
5. output noise: ``out_noise``·ξ, or per column |``out_noise``·(1 + ``out_noise_std``·ξ_j)| with
   ξ_j drawn once per tile (the C++ tile's formula; aihwkit's torch tile ignores the value of
   ``out_noise_std``: ``TorchSimulatorTile`` in aihwkit 1.1.0 ``simulator/tiles/torch_tile.py``);
6. ADC: the same quantiser with ``out_res`` and ``out_bound``, then clipping to ±``out_bound``;
7. bound management ``iterative``: a row whose output reached beyond ±``out_bound`` is recomputed
   with its input halved, until it fits or the reduction exceeds ``max_bm_factor`` or
   ``max_bm_res``/(input step); fresh noise is drawn on every round. This test is **per row**
   (like the C++/CUDA tiles); aihwkit's torch tile halves the whole batch when any row clips,
   which would make a result depend on its batch-mates;
8. the output is multiplied back by ``out_scale``·α·reduction.

Randomness: every draw has a counter coordinate (element, global input row, sample index, round)
in its own stream (read, output, input noise, rounding), so results do not depend on batch size or
chunking (see rng.py).
"""

from collections.abc import Callable
from enum import StrEnum

import numpy as np
from pydantic import Field, model_validator

from bayesim.crossbar.kernels import (
    add_output_noise,
    as_rows,
    quantize_clip,
    row_max,
    scale_quantize_clip,
)
from bayesim.errors import ConfigError
from bayesim.rng import Stream, draw, stream_key
from bayesim.schema import StrictModel, validate


class NoiseManagement(StrEnum):
    NONE = "none"
    ABS_MAX = "abs_max"
    MAX = "max"
    CONSTANT = "constant"


class BoundManagement(StrEnum):
    NONE = "none"
    ITERATIVE = "iterative"


class WeightNoise(StrEnum):
    NONE = "none"
    ADDITIVE_CONSTANT = "additive_constant"
    PCM_READ = "pcm_read"


class PeripheryConfig(StrictModel):
    """DAC/ADC and management settings of a tile (tile units; defaults: aihwkit 1.1.0
    ``IOParameters``, ``src/aihwkit/simulator/parameters/io.py``)."""

    is_perfect: bool = False
    """Skip every non-ideality: the tile computes a plain matmul (aihwkit ``is_perfect``)."""
    inp_bound: float = Field(default=1.0, gt=0)
    """DAC range ±inp_bound (tile input units)."""
    inp_res: float = Field(default=1.0 / (2 ** 7 - 2), ge=0)
    """DAC resolution: a step count if > 1, else the step as a fraction of the range (×2·bound);
    0 disables quantisation. Default 1/(2^7 − 2): a 7-bit signed DAC."""
    inp_sto_round: bool = False
    inp_noise: float = Field(default=0.0, ge=0)
    """Additive Gaussian noise on each DAC output (tile input units)."""
    out_bound: float = Field(default=12.0, gt=0)
    """ADC range ±out_bound (tile output units; ``inf`` for none)."""
    out_res: float = Field(default=1.0 / (2 ** 9 - 2), ge=0)
    """ADC resolution, same convention as ``inp_res``. Default: a 9-bit signed ADC."""
    out_sto_round: bool = False
    out_noise: float = Field(default=0.06, ge=0)
    """Additive Gaussian noise at each output before the ADC, per read."""
    out_noise_std: float = Field(default=0.0, ge=0)
    """Relative column-to-column spread of ``out_noise``, drawn once per tile."""
    out_scale: float = Field(default=1.0, gt=0)
    noise_management: NoiseManagement = NoiseManagement.ABS_MAX
    nm_thres: float = Field(default=0.0, ge=0)
    bound_management: BoundManagement = BoundManagement.ITERATIVE
    max_bm_factor: float = Field(default=1000.0, gt=0)
    max_bm_res: float = Field(default=0.25, gt=0)
    w_noise: float = Field(default=0.0, ge=0)
    """Output-referred weight read noise (tile weight units) on top of the devices' own."""
    w_noise_type: WeightNoise = WeightNoise.NONE
    ir_drop: float = Field(default=0.0, ge=0)
    """Scale of the simple IR-drop model (0: off; 1.0 in the standard HWA preset)."""
    ir_drop_g_ratio: float = Field(default=1.0 / 0.35 / 5e-6, gt=0)
    """Wire-to-device conductance ratio (0.35 Ω wire, 5 mS g_max: ≈ 5.714e5)."""

    @model_validator(mode="after")
    def _weight_noise_consistent(self) -> "PeripheryConfig":
        if self.w_noise > 0 and self.w_noise_type == WeightNoise.NONE:
            raise ValueError("w_noise > 0 needs w_noise_type 'additive_constant' or 'pcm_read'")
        return self

    @property
    def inp_step(self) -> float:
        return quantizer_step(self.inp_res, self.inp_bound)

    @property
    def out_step(self) -> float:
        return quantizer_step(self.out_res, self.out_bound)


def quantizer_step(res: float, bound: float) -> float:
    """aihwkit's step: ``res`` > 1 counts steps (step 1/res), otherwise it is the step; then
    × 2·bound. 0 (no quantisation) stays 0."""
    if res <= 0:
        return 0.0
    return (1.0 / res if res > 1.0 else res) * 2.0 * bound


_PRESETS: dict[str, dict] = {
    # aihwkit IOParameters defaults (InferenceRPUConfig forward)
    "aihwkit_default": {},
    # aihwkit PresetIOParameters (training presets): 7-bit DAC, 9-bit ADC, out_bound 20,
    # out_noise 0.1
    "aihwkit_preset_io": {"out_bound": 20.0, "out_noise": 0.1},
    # aihwkit StandardIOParameters: 8-bit DAC and ADC, out_bound 10, out_noise 0.04
    "aihwkit_standard_io": {"inp_res": 1.0 / (2 ** 8 - 2), "out_res": 1.0 / (2 ** 8 - 2),
                            "out_bound": 10.0, "out_noise": 0.04},
    # StandardHWATrainingPreset forward (Rasch et al., Nat. Electron. 2023, arXiv 2302.08469):
    # 254-step DAC and ADC, no bound management, constant noise management at 1.0, PCM-like
    # w_noise 0.0175, IR drop 1.0, out_noise 0.04, out_bound 10
    "standard_hwa": {"inp_res": 254.0, "out_res": 254.0, "bound_management": "none",
                     "noise_management": "constant", "nm_thres": 1.0, "w_noise": 0.0175,
                     "w_noise_type": "pcm_read", "ir_drop": 1.0, "out_noise": 0.04,
                     "out_bound": 10.0},
    # no periphery at all: the tile is a float32 matmul
    "ideal": {"is_perfect": True},
}


def periphery_presets() -> list[str]:
    return sorted(_PRESETS)


def periphery_preset(name: str, **overrides: object) -> PeripheryConfig:
    """A periphery by name (``periphery_presets()``), with optional field overrides."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown periphery preset {name!r}; choose one of "
                          f"{', '.join(periphery_presets())}")
    return validate(PeripheryConfig, {**_PRESETS[name], **overrides},
                    source=f"periphery preset {name!r}")


ReadFn = Callable[[np.ndarray, np.ndarray, int, dict | None], np.ndarray]
"""``read(x_dac, rows, round, memo) -> y``: the tile's noisy crossbar read of DAC outputs (``memo``
as in :meth:`Periphery.mvm`, or None)."""


class Periphery:
    """The periphery of one tile: its config, its frozen per-column output noise and its
    random streams (keyed by seed, layer and tile index). ``read_seed`` (default: ``seed``) keys
    the per-read streams (input noise, stochastic rounding) apart from the frozen ones, so one
    programmed chip can be read under many Monte-Carlo seeds."""

    def __init__(self, config: PeripheryConfig, n_out: int, seed: int, layer: int = 0,
                 tile: int = 0, read_seed: int | None = None) -> None:
        self.config = config
        self.n_out = n_out
        coords = {"layer": layer, "tile": tile}
        per_read = seed if read_seed is None else read_seed
        self._key_input = stream_key(per_read, Stream.INPUT, **coords)
        self._key_round = stream_key(per_read, Stream.ROUNDING, **coords)
        self.out_noise_std = self._column_noise(stream_key(seed, Stream.PERIPHERY, **coords))
        self.out_var = (np.square(self.out_noise_std).astype(np.float32)
                        if config.out_noise > 0 else None)
        """Per-column output-noise variance, or None without output noise."""

    def _column_noise(self, key: np.ndarray) -> np.ndarray:
        """Per-column output-noise std, frozen at construction."""
        c = self.config
        if c.out_noise_std > 0:
            xi = draw(key, self.n_out)
            return np.abs(c.out_noise * (1.0 + c.out_noise_std * xi))
        return np.full(self.n_out, c.out_noise)

    def input_scales(self, x: np.ndarray, abs_max: np.ndarray | None = None) -> np.ndarray:
        """Noise management: α per input row (never ≤ 0); ``abs_max`` = max|x| per row if the
        caller has it already."""
        c = self.config
        nm = c.noise_management
        if nm == NoiseManagement.NONE:
            alpha = np.ones(x.shape[0])
        elif nm == NoiseManagement.CONSTANT:
            alpha = np.full(x.shape[0], c.nm_thres if c.nm_thres > 0 else 1.0)
        else:
            if nm == NoiseManagement.ABS_MAX and abs_max is not None:
                alpha = abs_max
            else:
                alpha = np.empty(x.shape[0])
                row_max(x, nm == NoiseManagement.ABS_MAX, alpha)
            if c.nm_thres > 0:
                alpha = np.minimum(alpha, c.nm_thres)
        return np.where(alpha > 0, alpha, 1.0)

    def dac(self, x: np.ndarray, scale: np.ndarray, sample: int, rows: np.ndarray,
            rnd: int) -> np.ndarray:
        """x/scale (one scale per row), quantised, clipped, plus input noise; a new float32
        array."""
        c = self.config
        v = np.empty(x.shape, dtype=np.float32)
        clipped = np.empty(v.shape[0], dtype=np.bool_)
        scale_quantize_clip(x, scale, v, c.inp_step, c.inp_bound, c.inp_sto_round,
                            self._key_round, np.int64(sample), rows, np.int64(2 * rnd), clipped,
                            np.ones(v.shape[0], dtype=np.float32))
        if c.inp_noise > 0:
            add_output_noise(v, np.full_like(v, c.inp_noise ** 2), self._key_input,
                             np.int64(sample), rows, np.int64(rnd))
        return v

    def adc(self, y: np.ndarray, sample: int, rows: np.ndarray, rnd: int,
            post: np.ndarray | None = None) -> np.ndarray:
        """Quantise and clip in place, then multiply row b by ``post[b]`` (float32; the digital
        rescale) when given; returns the per-row 'clipped' flags."""
        c = self.config
        clipped = np.empty(y.shape[0], dtype=np.bool_)
        quantize_clip(y, c.out_step, c.out_bound, c.out_sto_round, self._key_round,
                      np.int64(sample), rows, np.int64(2 * rnd + 1), clipped, post)
        return clipped

    def ir_drop(self, y: np.ndarray, x: np.ndarray, w: np.ndarray, abs_w: np.ndarray) -> None:
        """aihwkit's simple IR-drop model, in place (module docstring, step 4)."""
        c = self.config
        n = x.shape[1]
        a = (n / c.ir_drop_g_ratio) * (np.abs(x) @ abs_w.T)
        coeff = a * (a * (0.05 * a - 0.2) + 0.5)
        p = 1.0 - np.arange(n, dtype=np.float32) / np.float32(n)
        y -= c.ir_drop * coeff * ((x * (1.0 - p * p)) @ w.T)

    @property
    def deterministic_dac(self) -> bool:
        """The DAC output is a function of the input alone (no stochastic rounding or noise)."""
        return not self.config.inp_sto_round and self.config.inp_noise == 0

    def mvm(self, x: np.ndarray, read: ReadFn, sample: int, row0: int | np.ndarray = 0,
            ir_drop_weights: tuple[np.ndarray, np.ndarray] | None = None,
            memo: dict | None = None) -> np.ndarray:
        """One managed analog MVM of a batch ``x[batch, in]`` (tile units; steps 1–8 of the
        module docstring). ``read(x_dac, rows, round, memo)`` performs the noisy crossbar read;
        ``ir_drop_weights`` = (w, |w|) when IR drop is on. ``memo`` (a dict owned by the caller,
        one per input batch) keeps what does not change between reads of the same ``x`` — the
        management scales and the first round's DAC output when the DAC is deterministic — and
        is handed to ``read`` for the first round; the draws are unaffected."""
        c = self.config
        batch = x.shape[0]
        rows = as_rows(row0, batch)
        if memo is not None and not self.deterministic_dac:
            memo = None
        if memo is not None and "alpha" in memo:
            alpha = memo["alpha"]
        else:
            abs_max = np.empty(batch)
            row_max(x, True, abs_max)
            alpha = self.input_scales(x, abs_max)
            if memo is not None:
                memo["alpha"] = alpha
        out: np.ndarray | None = None  # allocated only when rows are read apart
        pending = np.arange(batch)  # a row of zeros is read too: its output noise is physical
        reduction = 1.0
        rnd = 0
        iterative = c.bound_management == BoundManagement.ITERATIVE
        limit = c.max_bm_factor
        if c.inp_step > 0:
            limit = min(limit, c.max_bm_res / c.inp_step)
        while pending.size:
            whole = rnd == 0  # first round on the whole batch: no gathers
            scale = alpha if whole else alpha[pending]
            scale = scale * reduction
            if memo is not None and rnd == 0:
                if "dac" not in memo:
                    memo["dac"] = self.dac(x if whole else x[pending], scale, sample,
                                           rows[pending], rnd)
                x_dac = memo["dac"]
            else:
                x_dac = self.dac(x if whole else x[pending], scale, sample, rows[pending], rnd)
            y = read(x_dac, rows[pending], rnd, memo if rnd == 0 else None)
            if c.ir_drop > 0 and ir_drop_weights is not None:
                self.ir_drop(y, x_dac, *ir_drop_weights)
            clipped = self.adc(y, sample, rows[pending], rnd,
                               (c.out_scale * scale).astype(np.float32))
            finished = not (iterative and reduction <= limit) or not clipped.any()
            if finished and whole:
                return y
            if out is None:
                out = np.zeros((batch, self.n_out), dtype=np.float32)
            if finished:
                out[pending] = y
                break
            done = ~clipped
            out[pending[done]] = y[done]
            pending = pending[clipped]
            reduction *= 2.0
            rnd += 1
        if out is None:  # an empty batch
            out = np.zeros((batch, self.n_out), dtype=np.float32)
        return out


def weight_noise_variance(config: PeripheryConfig, w: np.ndarray) -> np.ndarray | None:
    """The per-device variance (weight units²) of the periphery's ``w_noise``."""
    if config.w_noise == 0:
        return None
    if config.w_noise_type == WeightNoise.ADDITIVE_CONSTANT:
        return np.full(w.shape, config.w_noise ** 2, dtype=np.float32)
    return (config.w_noise ** 2 * np.abs(w)).astype(np.float32)
