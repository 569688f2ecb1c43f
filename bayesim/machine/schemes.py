"""The mappings M0–M4 as schemes: what draws a Monte-Carlo sample, which noise law the mapping
targets, what stays frozen, how many devices and states a weight needs (docs/machine.md,
"Mappings").

Each scheme declares its **sampling clock** — the event at which a fresh weight sample is drawn —
and, from the device card, the per-device std laws the mapping uses:

==== ===================================== ======================================== =============
     sampling clock                        sampler law (what the mapping targets)   frozen law
==== ===================================== ======================================== =============
M0   every read (or every sample,          exact N(μ, σ²), no devices               –
     ``m0_sampling``)
M1   every read of one programmed pair     σ_read at the inference time             programming,
                                                                                    drift, 1/f,
                                                                                    D2D
M2   every sample re-programs the pair     programming + drift spread + 1/f at t    D2D (same
                                           + relaxation/growth + read               devices)
M3   every sample reads one of R           as M2, plus the D2D spread (each copy    –
     programmed copies                     is other devices)
M4   every read of n devices per side,     σ_read of the n devices at t             as M1
     currents summed
==== ===================================== ======================================== =============

"At the inference time" means the card's laws after drift to ``drift_time`` and global drift
compensation, in closed form (DeviceModel.state_variance, read_sigma_at); the laws that combine
several of the card's are tabulated on 1,025 conductances. The window's clipping is in the laws
(censored moments; approximate near g_min); stuck-at faults are in none: the realised-posterior
report measures them from the chip's own states.
"""

import dataclasses
from typing import Any

import numpy as np

from bayesim.devices.laws import tabulate
from bayesim.devices.model import DeviceModel
from bayesim.machine.config import HardwareConfig
from bayesim.rng import Stream, draw, stream_key, sub_seed


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One mapping (module docstring). Subclasses override what differs; the chip, the read loop
    and the reports ask the scheme instead of branching on the mapping's name."""

    name: str
    clock: str
    """What draws a fresh weight sample, in words."""
    noise_law: str
    """The device noise the mapping targets, in words."""
    realised: str = "state"
    """How the realised posterior is known (realised.py): 'exact' (the target itself), 'state'
    (the one programmed state and its per-read variance), 'copies' (the mixture of the kept
    states) or 'measured' (fresh programmings)."""
    frozen_error: str = "the frozen programming error and drift"
    """What a realised mean's offset from μ is, in words."""

    # ---- devices ----
    def devices_per_side(self, hw: HardwareConfig) -> int:
        return 1

    def devices_per_weight(self, hw: HardwareConfig) -> int:
        """Physical devices holding one weight on the chip (both sides, every copy)."""
        return 2 * self.devices_per_side(hw)

    def arrays(self, hw: HardwareConfig) -> int:
        """Physical copies of the tiles the chip needs (R for M3)."""
        return 1

    @property
    def has_devices(self) -> bool:
        return True

    # ---- laws the mapping uses ----
    def sampler_law(self, device: DeviceModel, hw: HardwareConfig) -> object | None:
        """Per-device std (µS) of the noise that draws a sample, at the inference time."""
        return _read_law(device, hw)

    def frozen_law(self, device: DeviceModel, hw: HardwareConfig) -> object | None:
        """Per-device std (µS) of the error that the sampler never redraws (the chip's frozen
        error, reported as a bias); None if there is none."""
        return _law(device, lambda g: _state(device, hw, g, d2d=True))

    # ---- states ----
    def n_states(self, hw: HardwareConfig) -> int:
        """Programmed states kept by the chip (0: a fresh one per sample)."""
        return 1

    def state_seeds(self, k: int, hw: HardwareConfig) -> tuple[int, int]:
        """(programming seed, devices' seed) of kept state ``k``: the chip's own."""
        return hw.chip_seed, hw.chip_seed

    def state_of(self, sample: int, read_seed: int, hw: HardwareConfig) -> int:
        """Which kept state Monte-Carlo sample ``sample`` reads."""
        return 0

    def cycled_states(self, hw: HardwareConfig) -> int | None:
        """The number of kept states the samples take turns reading, where that number bounds
        the independent posterior draws among them (M3's R copies); None where every sample
        draws afresh (machine.report.sampling_report, ``posterior_draws``)."""
        return None

    def fresh_per_sample(self, hw: HardwareConfig) -> bool:
        """Every sample reads a state of its own (seeded by :meth:`fresh_seed`, made by
        Chip.sample_state), so the read loop runs over samples outermost."""
        return False

    def fresh_seed(self, sample: int, read_seed: int, hw: HardwareConfig) -> int:
        """The seed of sample ``sample``'s own state (for :meth:`fresh_per_sample` schemes)."""
        raise NotImplementedError(f"{self.name} keeps its states")

    def snaps_sample(self) -> bool:
        """A written sample lands on a quantized model's sample levels (write-verify, M2)."""
        return False

    def memoises_first_layer(self, hw: HardwareConfig) -> bool:
        """The samples of an input batch read kept states (one, or M3's R copies), so the first
        layer's rows, scales and DAC output can be computed once per batch, and its mean and
        variance once per batch and state (crossbar.tile.memoised_moments)."""
        return True

    def endurance(self, n_samples: int, hw: HardwareConfig) -> dict[str, Any] | None:
        return None

    def describe(self, hw: HardwareConfig) -> dict[str, Any]:
        return {"mapping": self.name, "clock": self.clock, "noise_law": self.noise_law,
                "devices_per_weight": self.devices_per_weight(hw) if self.has_devices else 0,
                "programmed_states": self.n_states(hw), "realised": self.realised}


class Exact(Scheme):
    """M0: exact N(μ, σ²), per read (the kept state is the target itself) or per sample."""

    @property
    def has_devices(self) -> bool:
        return False

    def devices_per_weight(self, hw: HardwareConfig) -> int:
        return 0

    def sampler_law(self, device: DeviceModel, hw: HardwareConfig) -> object | None:
        return None

    def frozen_law(self, device: DeviceModel, hw: HardwareConfig) -> object | None:
        return None

    def fresh_per_sample(self, hw: HardwareConfig) -> bool:
        return hw.m0_sampling == "per_sample"

    def fresh_seed(self, sample: int, read_seed: int, hw: HardwareConfig) -> int:
        return read_seed  # the weight draw of sample s: stream WEIGHT_DRAW, counter s

    def memoises_first_layer(self, hw: HardwareConfig) -> bool:
        return not self.fresh_per_sample(hw)


class PerRead(Scheme):
    """M1: one programmed pair, read again and again."""


class Summed(PerRead):
    """M4: n devices per side of a weight, their read currents summed."""

    def devices_per_side(self, hw: HardwareConfig) -> int:
        return hw.devices_per_weight


class Reprogram(Scheme):
    """M2: every sample re-programs the same devices."""

    def sampler_law(self, device: DeviceModel, hw: HardwareConfig) -> object | None:
        return _law(device, lambda g: _state(device, hw, g, d2d=False) + _read(device, hw, g))

    def frozen_law(self, device: DeviceModel, hw: HardwareConfig) -> object | None:
        if device.d2d_rel == 0:
            return None
        return _law(device, device.d2d_variance)

    def n_states(self, hw: HardwareConfig) -> int:
        return 0

    def fresh_per_sample(self, hw: HardwareConfig) -> bool:
        return True

    def fresh_seed(self, sample: int, read_seed: int, hw: HardwareConfig) -> int:
        """Sample s of a Monte-Carlo seed is a programming of its own (the devices stay)."""
        return sub_seed(hw.chip_seed, Stream.REPROGRAM, read_seed, sample)

    def snaps_sample(self) -> bool:
        return True

    def memoises_first_layer(self, hw: HardwareConfig) -> bool:
        return False

    def endurance(self, n_samples: int, hw: HardwareConfig) -> dict[str, Any] | None:
        return {"writes_per_device": n_samples, "endurance_cycles": hw.endurance_cycles,
                "fraction_of_budget": n_samples / hw.endurance_cycles,
                "samples_until_worn_out": hw.endurance_cycles}


class Copies(Scheme):
    """M3: R programmed copies on R sets of devices; sample s reads one of them."""

    def devices_per_weight(self, hw: HardwareConfig) -> int:
        return 2 * hw.copies

    def arrays(self, hw: HardwareConfig) -> int:
        return hw.copies

    def sampler_law(self, device: DeviceModel, hw: HardwareConfig) -> object | None:
        return _law(device, lambda g: _state(device, hw, g, d2d=True) + _read(device, hw, g))

    def frozen_law(self, device: DeviceModel, hw: HardwareConfig) -> object | None:
        return None

    def n_states(self, hw: HardwareConfig) -> int:
        return hw.copies

    def cycled_states(self, hw: HardwareConfig) -> int | None:
        return hw.copies

    def state_seeds(self, k: int, hw: HardwareConfig) -> tuple[int, int]:
        """Copy k is other devices, programmed apart: its own seed for both."""
        seed = sub_seed(hw.chip_seed, Stream.COPY, k)
        return seed, seed

    def state_of(self, sample: int, read_seed: int, hw: HardwareConfig) -> int:
        """Copy π_b(s mod R) of block b = ⌊s/R⌋, π_b a random permutation of the R copies keyed
        by (read seed, b): every complete block of R samples reads every copy once, and any
        sample, whatever S, reads a uniformly chosen copy, so the estimator weighs the copies
        equally in expectation even when S is not a multiple of R."""
        r = hw.copies
        block, position = divmod(sample, r)
        keys = draw(stream_key(read_seed, Stream.COPY_ORDER), r, "uniform", sample=block)
        return int(np.argsort(keys, kind="stable")[position])


SCHEMES: dict[str, Scheme] = {
    "M0": Exact("M0", "every read draws N(μ, σ²) (or one draw per sample: m0_sampling)",
                "exact Gaussian", realised="exact", frozen_error="none"),
    "M1": PerRead("M1", "every read of one programmed pair", "per-read noise"),
    "M2": Reprogram("M2", "every sample re-programs the pair",
                    "spread between programmings at the inference time", realised="measured",
                    frozen_error="the offset of the realised means (window spread, faults, "
                                 "clipping)"),
    "M3": Copies("M3", "every sample reads one of R programmed copies",
                 "spread between copies at the inference time", realised="copies",
                 frozen_error="the offset of the copies' mean (finite R, clipping)"),
    "M4": Summed("M4", "every read of n devices per side, currents summed",
                 "per-read noise of n devices"),
}


def scheme_for(hw: HardwareConfig) -> Scheme:
    return SCHEMES[hw.mapping]


def _state(device: DeviceModel, hw: HardwareConfig, g: np.ndarray, d2d: bool) -> np.ndarray:
    """Variance (µS²) of a device's state at the inference time (DeviceModel.state_variance)."""
    return device.state_variance(g, hw.drift_time, hw.drift, hw.drift_compensation, d2d)


def _read(device: DeviceModel, hw: HardwareConfig, g: np.ndarray) -> np.ndarray:
    """Per-read variance (µS²) at the inference time, in the same frame."""
    return np.square(device.read_sigma_at(g, hw.drift_time, hw.drift, hw.drift_compensation))


def _read_law(device: DeviceModel, hw: HardwareConfig) -> object | None:
    """The card's per-read law at the inference time: the law itself where nothing drifts (so
    that the mapping keeps its closed forms), else tabulated."""
    if device.read_law is None:
        return None
    if not (hw.drift and device.drift is not None):
        return device.read_law
    return _law(device, lambda g: _read(device, hw, g))


def _law(device: DeviceModel, variance) -> object:
    """A std law tabulated from a variance function of the target conductance (µS²), on the
    part of the window where the card is calibrated."""
    lo = max(device.g_min, device.calibrated_g[0])
    hi = min(device.g_max, device.calibrated_g[1])
    if device.allow_extrapolation:
        lo, hi = device.g_min, device.g_max
    return tabulate(lambda g: np.sqrt(np.maximum(variance(g), 0.0)), lo, hi)
