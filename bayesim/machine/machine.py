"""The Bayesian machine: a mean-field BNN compiled onto virtual analog hardware whose device noise
draws the posterior samples (docs/machine.md, "Mappings"; bayesim.rng for the clocks of randomness).

:meth:`BayesianMachine.compile` converts any ``nn.Module`` (modules.py: the layers adapters.py
maps become analog modules, the model's own forward runs the rest), maps every weight N(μ, σ²) of
its (possibly quantized) layers to conductances and programs a chip instance (chip.py, keyed by
``chip_seed``), then measures what
that chip realises (realised.py) and warns, before any inference, about every layer whose realised
posterior is not the target's. :meth:`BayesianMachine.sample_probs` runs Monte-Carlo inference on
that chip (read.py); :meth:`BayesianMachine.weight_draws` returns the weight samples the chip
draws.

Quantization strategies (docs/machine.md): VPQ/JQ compile their quantized distribution (Q(μ) on
the uniform grid, Q_log(σ): a log-spaced set of common-mode states); the sample quantizer of
SPQ/JQ snaps every re-programmed weight of M2 to its b-bit levels, while under M1/M3/M4 the analog
sample is quantized only by the ADC.
"""

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

import bayesim.machine.realised as realised_mod
from bayesim.errors import MappingError
from bayesim.machine.adapters import digital_parameters, find_layers
from bayesim.machine.chip import AnalogLayer, Chip
from bayesim.machine.config import HardwareConfig, read_backend
from bayesim.machine.read import ReadLoop, calibration_rows, read_seed_of
from bayesim.machine.report import device_states, feasibility, hardware_report
from bayesim.quant.strategies import model_memory, quantization_of


class ChipWarning(UserWarning):
    """A layer the chip does not realise (its samples are not the posterior's)."""


class BayesianMachine:
    """A programmed chip that implements the Predictor protocol (``kind = "analog"``).

    ``mapping_of``: a machine whose targets and α this one reuses (variance decomposition: the same
    chip with one noise source switched off). ``warn``: emit a :class:`ChipWarning` at compile
    time for every layer the chip does not realise. ``sigmas``, ``digital``: posteriors of plain
    layers and plain layers kept digital (adapters.find_layers)."""

    kind = "analog"

    def __init__(self, model: nn.Module, hw: HardwareConfig,
                 mapping_of: "BayesianMachine | None" = None, warn: bool = True,
                 calibration: torch.Tensor | None = None,
                 sigmas: Mapping[str, Any] | None = None,
                 digital: tuple[str, ...] | list[str] = ()) -> None:
        if not isinstance(model, nn.Module):
            raise MappingError(f"the machine compiles a torch nn.Module, got "
                               f"{type(model).__name__}")
        read_backend(hw)  # an unusable backend is refused before any mapping work
        self.model = model.eval()
        self.sigmas, self.digital = sigmas, tuple(digital)
        self.adapters = find_layers(model, sigmas, digital)
        self.hw = hw
        self.quant = quantization_of(model)
        self.counters = {"mvms": 0, "device_reads": 0, "random_draws": 0, "device_writes": 0,
                         "programming_events": 0, "adc_conversions": 0, "dac_conversions": 0}
        rows = None
        if mapping_of is None and calibration is not None:
            rows = calibration_rows(self.model, self.adapters, calibration)
        self.calibration_inputs = 0 if calibration is None else int(calibration.shape[0])
        if mapping_of is not None:
            self.calibration_inputs = mapping_of.calibration_inputs
        self.chip = Chip(self.adapters, hw, self.counters,
                         None if mapping_of is None else mapping_of.chip, rows)
        self._loop = ReadLoop(self.model, self.adapters, self.chip)
        self._realised: dict[str, Any] | None = None
        self._posteriors: dict[int, realised_mod.Realised] = {}
        if warn:
            for line in self.realised()["not_realised"]:
                warnings.warn(f"the chip does not realise {line}", ChipWarning, stacklevel=3)

    @classmethod
    def compile(cls, model: nn.Module, hw: HardwareConfig,
                calibration: torch.Tensor | None = None,
                sigmas: Mapping[str, Any] | None = None,
                digital: tuple[str, ...] | list[str] = ()) -> "BayesianMachine":
        """Convert ``model`` — any ``nn.Module`` whose Bayesian layers are bayesim's,
        bayesian-torch's, or plain ``nn.Linear``/``nn.Conv2d`` given a σ per parameter in
        ``sigmas`` (by state-dict name) — and map and program its layers (fp32 or quantized) on
        the chip described by ``hw``; the model's own ``forward`` runs everything else
        digitally. ``digital``: paths of plain linear/convolution layers that stay digital.
        ``calibration``: a batch of inputs whose rows' statistics tell the α choice how much the
        periphery's output noise weighs against each layer's weights (Chip.periphery_referred;
        without it a mean square of 0.1 is assumed)."""
        return cls(model, hw, calibration=calibration, sigmas=sigmas, digital=digital)

    @property
    def converted(self) -> nn.Module:
        """The user's model with each mapped layer replaced by its analog module (modules.py)."""
        return self._loop.converted

    def digital_parameters(self) -> dict[str, int]:
        """Tensors that stay digital, per module (adapters.digital_parameters)."""
        return digital_parameters(self.model, self.adapters)

    # ---- the chip ----
    @property
    def layers(self) -> list[AnalogLayer]:
        return self.chip.layers

    @property
    def device(self):
        return self.chip.device

    @property
    def periphery(self):
        return self.chip.periphery

    @property
    def tiling(self):
        return self.chip.tiling

    @property
    def n_devices(self) -> int:
        """Devices per side of a weight."""
        return self.chip.n

    # ---- Predictor ----
    def sample_probs(self, x: torch.Tensor, n_samples: int, seed: int, *,
                     sample_offset: int = 0) -> torch.Tensor:
        """``[n_samples, B, C]`` class probabilities of samples ``sample_offset …``: each sample
        a fresh read of the chip (M2: a fresh programming; M3: one of the copies)."""
        return self._loop.sample_probs(x, n_samples, seed, sample_offset=sample_offset)

    def matrices(self, sample: int, seed: int):
        """The tiles every layer reads in sample ``sample`` of Monte-Carlo seed ``seed``."""
        return self._loop.matrices(sample, read_seed_of(seed))

    # ---- what the chip realises ----
    def weight_draws(self, layer: int, n: int, seed: int) -> np.ndarray:
        """``[n, out, in]`` weight-space draws of Bayesian layer ``layer`` exactly as the chip
        realises them: draw i is Monte-Carlo sample i of ``seed`` (its state plus one read of
        the devices; realised.py)."""
        if not 0 <= layer < len(self.layers):
            raise MappingError(f"the chip has Bayesian layers 0–{len(self.layers) - 1}, "
                               f"not {layer}")
        return realised_mod.weight_draws(self.chip, self.layers[layer], n, read_seed_of(seed))

    def realised_posterior(self, layer: int) -> realised_mod.Realised:
        """Per-weight realised mean and std of Bayesian layer ``layer`` (realised.py), computed
        once."""
        if layer not in self._posteriors:
            self._posteriors[layer] = realised_mod.realised_posterior(self.chip,
                                                                      self.layers[layer])
        return self._posteriors[layer]

    def realised(self) -> dict[str, Any]:
        """The realised-posterior report of the chip (realised.chip_report), computed once."""
        if self._realised is None:
            self._realised = realised_mod.chip_report(
                self.chip, [self.realised_posterior(i) for i in range(len(self.layers))])
            self._realised["calibration"] = (
                f"row statistics measured on {self.calibration_inputs} calibration inputs"
                if self.chip.row_mean_square is not None else
                "row statistics assumed (no calibration inputs)")
        return self._realised

    def feasibility(self) -> dict[str, Any]:
        return feasibility(self.chip, self.realised())

    def device_states(self) -> dict[str, Any]:
        return device_states(self.chip)

    def sigma_pairs(self, limit: int = 5000) -> tuple[np.ndarray, np.ndarray]:
        """(target σ, realised σ on this chip) of up to ``limit`` weights (a fixed random
        subset)."""
        target = np.concatenate([layer.sigma.reshape(-1) for layer in self.layers])
        realised = np.concatenate([self.realised_posterior(i).std.reshape(-1)
                                   for i in range(len(self.layers))])
        if target.size > limit:
            pick = np.random.default_rng(0).choice(target.size, limit, replace=False)
            target, realised = target[pick], realised[pick]
        return target, realised

    def realised_arrays(self) -> dict[str, np.ndarray]:
        """Every weight's target and realised posterior, flattened layer after layer (float32;
        ``realised_layer`` the Bayesian layer index): what ``scores.npz`` of a simulation keeps
        per weight beside the report's summaries."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in (
            "realised_layer", "target_mu", "target_sigma", "realised_mean", "realised_std")}
        for i, layer in enumerate(self.layers):
            r = self.realised_posterior(i)
            parts["realised_layer"].append(np.full(layer.mu.size, i, dtype=np.float32))
            for key, values in (("target_mu", layer.mu), ("target_sigma", layer.sigma),
                                ("realised_mean", r.mean), ("realised_std", r.std)):
                parts[key].append(values.reshape(-1).astype(np.float32))
        return {k: np.concatenate(v) for k, v in parts.items()}

    def endurance(self, n_samples: int) -> dict[str, Any] | None:
        return self.chip.scheme.endurance(n_samples, self.hw)

    def hardware_report(self, n_samples: int) -> dict[str, Any]:
        return hardware_report(self.chip, self.realised(), n_samples,
                               self.hw.model_dump(mode="json"))

    def describe(self) -> dict[str, Any]:
        label = f"analog {self.hw.mapping} {self.hw.device if self.device else 'exact'}"
        if self.quant is not None and self.quant.strategy != "fp":
            label += f" {self.quant.label}"
        # the whole hardware config is the report's hardware.config (one copy)
        return {"kind": self.kind, "label": label, "device": self.hw.device if self.device else
                None, "mapping": self.hw.mapping}

    def memory(self) -> dict[str, Any]:
        return model_memory(self.model, self.quant)
