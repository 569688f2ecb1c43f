"""The virtual chip's configuration (``[hardware]``) and what is built from it before mapping: the
device card with the hardware's changes, the periphery, the layer scales.

Units: µS for conductances, s for times, µS per weight unit for α. Every default names its source.
"""

import dataclasses
from typing import Any, Literal

import torch
from pydantic import Field

from bayesim.crossbar.periphery import PeripheryConfig, periphery_preset, periphery_presets
from bayesim.devices.laws import TimedPrograms, scaled
from bayesim.devices.model import DeviceModel
from bayesim.devices.presets import load_preset
from bayesim.errors import ConfigError
from bayesim.schema import StrictModel

Mapping = Literal["M0", "M1", "M2", "M3", "M4"]


class HardwareConfig(StrictModel):
    """The virtual chip: device card, mapping, periphery, tiles, time. Units: µS, s.

    The default is a PCM chip that works: IBM's statistical PCM model as a quenched ensemble of 8
    programmed copies (M3), whose programming noise (with the 1/f noise accumulated by t₀ and the
    read noise) is the sampler, α chosen for the smallest distance between the realised and the
    target posterior. Under "program once, read many" (M1) the same card's frozen programming
    error is about 3× its per-read σ (docs/results/machine.md, experiments/machine_pcm_m1.toml)."""

    device: str = "pcm_ibm_2020"
    """A card of device_models/ (``bayesim devices list``) or the path of a card file."""
    allow_extrapolation: bool = False
    mapping: Mapping = "M3"
    """What draws a sample (bayesim.machine.schemes): M0 exact, M1 per-read noise of one
    programmed pair, M2 re-programming per sample, M3 R programmed copies, M4 n devices per side
    summed (docs/machine.md, "Mappings")."""
    common_mode: bool = True
    """Use the common mode of each pair as the σ knob (M5); False parks the unused device at g_min
    (aihwkit's single-pair converter), so σ follows μ."""
    alpha: float | list[float] | None = Field(default=None, json_schema_extra={"unit": "µS"})
    """Layer scale, µS per weight unit: one for all layers, one per Bayesian layer (e.g. those of
    device-constrained training), or None to choose it by ``alpha_policy``."""
    alpha_scope: Literal["layer", "column", "chip"] = "layer"
    """One α per layer, one per output column (its own digital gain after the ADC), or one for
    the whole chip, chosen over all layers' weights together (then equal weights of different
    layers are the same device state, as a shared-Gaussian codebook needs)."""
    alpha_policy: Literal["distance", "feasibility", "max"] = "distance"
    """How α is chosen when not given (bayesim.crossbar.mapping): 'distance' minimises the
    expected 2-Wasserstein distance between the realised and the target posterior, frozen error
    included; 'feasibility' maximises the fraction of σ realised within ±10 % by the sampler
    alone; 'max' takes the largest α at which every μ fits (aihwkit's mapping)."""
    levels_bits: int | None = Field(default=None, ge=1, le=12)
    """Conductance levels 2^bits on [g_min, g_max]; None keeps the card's (usually analog)."""
    read_noise_scale: float = Field(default=1.0, ge=0)
    """Multiplies the card's per-read σ(G) (0 switches read noise off)."""
    program_noise_scale: float = Field(default=1.0, ge=0)
    """Multiplies the card's programming σ(G), at every time it is fitted (0 switches
    programming noise off)."""
    drift: bool = True
    """Apply drift and the accumulated (1/f, relaxation) noise at ``drift_time``."""
    drift_time: float = Field(default=0.0, ge=0, json_schema_extra={"unit": "s"})
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
    tile_scaling: Literal["physical", "per_tile"] = "physical"
    """The tile unit of the periphery's ranges: 'physical', the current of one weight at full
    conductance difference n·g_max under a full-scale input, so output noise and ADC steps are
    fixed by the devices and a larger α buys signal; 'per_tile', each tile normalised to its own
    largest weight (aihwkit's ``weight_scaling_omega = 1``), which makes the periphery's
    signal-to-noise independent of α."""
    max_in: int = Field(default=512, ge=1)
    max_out: int = Field(default=512, ge=1)
    read_path: Literal["fast", "explicit"] = "fast"
    """fast: exact output-referred Gaussian (a Laplace card's noise moment-matched: only the
    mean and variance of weight noise matter, Patel et al., arXiv 2501.05564); explicit: one
    draw per device and read, in the card's shape."""
    read_correlation: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Lag-1 correlation ρ of successive reads of a device (AR(1), fast path); 0: white. RTN and
    1/f noise make back-to-back reads correlated (Ambrogio et al., IEEE TED 2014, 2015), which
    lowers the effective number of samples."""
    copies: int = Field(default=8, ge=1)
    """M3: programmed copies R (the quenched ensemble); 8 as the demo (guideline sweep: 4 suffice
    for accuracy)."""
    devices_per_weight: int = Field(default=3, ge=1)
    """M4: devices per side of a weight (Lin et al. 2023 sum three devices)."""
    endurance_cycles: float = Field(default=1e7, gt=0, json_schema_extra={"unit": "cycles"})
    """M2: write cycles a device survives (OxRAM robust at 10^7, Dalgaty et al. 2021)."""
    p_stuck_min: float | None = Field(default=None, ge=0, le=1)
    """Stuck-at-g_min probability per device; None keeps the card's."""
    p_stuck_max: float | None = Field(default=None, ge=0, le=1)
    m0_sampling: Literal["per_read", "per_sample"] = "per_read"
    """M0: a fresh weight draw for every read (each input row, i.e. each output position of a
    convolution, sees its own weights, as a per-read sampler does) or one weight draw per
    Monte-Carlo sample shared by all reads (software sampling)."""
    realised_draws: int = Field(default=200, ge=2)
    """M2: fresh programmings from which the report measures the realised posterior (the
    per-weight mean and std; their standard errors are reported)."""
    chip_seed: int = Field(default=0, ge=0)
    """Keys every frozen draw: one chip instance per seed."""
    batch_size: int = Field(default=256, ge=1)
    """Inputs per forward pass on the chip (results do not depend on it). 256 keeps a LeNet-5
    layer's im2col rows and read moments (≤ 15 MB) below glibc's mmap threshold, so the CPU
    allocator reuses them instead of faulting fresh pages on every read: the demo's PCM chip ran
    1.8× faster than at 1000 on 2 cores (docs/performance.md, "Batch size")."""
    backend: Literal["auto", "numba", "torch"] = "auto"
    """What runs the read path (noise, DAC, ADC, bound management): 'numba', the CPU kernels;
    'torch', torch kernels on ``torch_device`` (any torch device, a GPU included; the same
    counter-based draws); 'auto', torch when a CUDA GPU is available, numba otherwise."""
    torch_device: str = "auto"
    """The torch backend's device ('cpu', 'cuda', 'cuda:1', …); 'auto': 'cuda' when available,
    else 'cpu'."""
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


def periphery_config(hw: HardwareConfig, device: DeviceModel | None = None
                     ) -> tuple[PeripheryConfig, list[str]]:
    """The preset of ``hw.periphery`` with the DAC/ADC bits and output noise of ``hw``, and notes
    on what was changed. A preset's weight read noise (``w_noise``, e.g. the standard HWA preset's
    PCM_READ) is dropped when the device card has a per-read law of its own (the card then owns
    the read noise, and both would count the same physics twice) and under M0 (``device`` None),
    whose weights are exact draws of N(μ, σ²)."""
    if hw.periphery not in periphery_presets():
        raise ConfigError(f"hardware.periphery {hw.periphery!r} is not a preset; choose one of "
                          f"{', '.join(periphery_presets())}")
    overrides: dict[str, Any] = {"inp_res": _resolution("dac_bits", hw.dac_bits),
                                 "out_res": _resolution("adc_bits", hw.adc_bits)}
    if hw.out_noise is not None:
        overrides["out_noise"] = hw.out_noise
    if hw.periphery == "ideal":
        return periphery_preset("ideal"), []
    config = periphery_preset(hw.periphery, **overrides)
    notes = []
    if config.w_noise > 0 and (device is None or device.read_law is not None):
        owner = "M0's exact weights are" if device is None else \
            f"the card {device.name} has its own per-read law,"
        notes.append(f"the preset's w_noise {config.w_noise:g} ({config.w_noise_type}) is not "
                     f"applied: {owner} the read noise")
        config = periphery_preset(hw.periphery, **overrides, w_noise=0.0, w_noise_type="none")
    return config, notes


def _resolution(name: str, bits: int | None) -> float:
    """aihwkit's resolution of a signed b-bit converter, 1/(2^b − 2); 0 (none) for 0 or None."""
    if not bits:
        return 0.0
    if bits < 2:
        raise ConfigError(f"hardware.{name} = {bits}: a signed converter needs at least 2 bits "
                          f"(or 0 for no quantisation)")
    return 1.0 / (2 ** bits - 2)


def device_for(hw: HardwareConfig) -> DeviceModel:
    """The card of ``hw.device`` with the hardware's levels, noise scales and fault rates. The
    programming-noise scale multiplies every fitted time of a card with spreads measured at fixed
    times (NeuRRAM), so the spread still grows between them."""
    device = load_preset(hw.device, allow_extrapolation=hw.allow_extrapolation)
    timed = device.timed_program
    if timed is not None and hw.program_noise_scale != 1.0:
        timed = TimedPrograms(timed.times, tuple(scaled(law, hw.program_noise_scale)
                                                 for law in timed.laws))
    changes: dict[str, Any] = {
        "program_law": scaled(device.program_law, hw.program_noise_scale),
        "timed_program": timed,
        "read_law": scaled(device.read_law, hw.read_noise_scale),
    }
    if hw.levels_bits is not None:
        changes["levels"] = 2 ** hw.levels_bits
    if hw.p_stuck_min is not None:
        changes["p_stuck_min"] = hw.p_stuck_min
    if hw.p_stuck_max is not None:
        changes["p_stuck_max"] = hw.p_stuck_max
    return dataclasses.replace(device, **changes)


def read_backend(hw: HardwareConfig) -> torch.device | None:
    """The torch device the read path runs on, or None for the numba backend
    (``hardware.backend``). ``auto`` takes torch only on a CUDA host and only for what the torch
    backend reads (not ``read_path = 'explicit'``, not AR(1) reads); an explicit ``torch`` refuses
    those and a device torch cannot use or that lacks float64 (the read path's accumulator)."""
    cuda = torch.cuda.is_available()
    numba_only = hw.read_path == "explicit" or hw.read_correlation > 0
    if hw.backend == "numba" or (hw.backend == "auto" and (not cuda or numba_only)):
        return None
    name = hw.torch_device
    if name == "auto":
        name = "cuda" if cuda else "cpu"
    try:
        device = torch.device(name)
        torch.empty(1, device=device, dtype=torch.float64)
    except (RuntimeError, AssertionError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"hardware.torch_device = {name!r} cannot be used ({first}); give "
                          f"'cpu', an available GPU, or hardware.backend = 'numba'") from None
    if hw.read_path == "explicit":
        raise ConfigError("hardware.read_path = 'explicit' (one draw per device) runs on the "
                          "numba backend only; set hardware.backend = 'numba'")
    if hw.read_correlation > 0:
        raise ConfigError("hardware.read_correlation > 0 (AR(1) reads) runs on the numba backend "
                          "only; set hardware.backend = 'numba'")
    return device
