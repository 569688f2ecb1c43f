"""Variance decomposition: how much of the predictive variance and of the mutual information each
noise source of the chip carries, measured by switching it off **on the same chip** — the same
targets, the same α, the same chip seed — and sampling again with the same seeds. (A chip mapped
anew without the source would choose another α and compare different chips.)"""

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bayesim.machine.config import HardwareConfig
from bayesim.machine.machine import BayesianMachine
from bayesim.machine.report import predictive_statistics
from bayesim.machine.schemes import scheme_for

SOURCES: dict[str, dict[str, Any]] = {
    "read_noise": {"read_noise_scale": 0.0},
    "programming_noise": {"program_noise_scale": 0.0},
    "drift": {"drift": False},
}
"""Each source and the hardware change that switches it off."""
SOURCE_NOTES = {
    "read_noise": "the devices' per-read noise (read_noise_scale = 0)",
    "programming_noise": "programming noise, at every fitted time (program_noise_scale = 0)",
    "drift": "drift and everything that evolves after programming: the accumulated 1/f noise, "
             "relaxation, the growth of timed spreads (drift = false); at t₀ on PCM that is the "
             "1/f noise, part of M3's sampler",
}


def variance_decomposition(model: nn.Module, hw: HardwareConfig,
                           inputs: dict[str, torch.Tensor], n_samples: int, seed: int,
                           on_step: Callable[[], None] | None = None,
                           reference: dict[str, torch.Tensor] | None = None,
                           machine: BayesianMachine | None = None) -> dict[str, Any]:
    """Share of the predictive variance and of the mean MI carried by each of :data:`SOURCES` on
    each input set: 1 − (statistic without the source)/(statistic with all). ``machine``: the
    chip compiled from ``model`` and ``hw`` if the caller has it; ``reference``: its samples of
    ``inputs``."""
    if not scheme_for(hw).has_devices:
        return {"note": f"{hw.mapping} has no device noise to decompose"}
    full = machine if machine is not None else BayesianMachine(model, hw, warn=False)
    result: dict[str, Any] = {"n_samples": n_samples,
                              "inputs": {k: int(v.shape[0]) for k, v in inputs.items()},
                              "method": "each source switched off on the same chip (same "
                                        "targets, α and seeds)", "sources": SOURCE_NOTES}
    stats = {}
    for name in ("all", *SOURCES):
        if name == "all":
            samples = reference if reference is not None else \
                {k: full.sample_probs(x, n_samples, seed) for k, x in inputs.items()}
        else:
            ablated = BayesianMachine(model, hw.model_copy(update=SOURCES[name]),
                                      mapping_of=full, warn=False, sigmas=full.sigmas,
                                      digital=full.digital)
            samples = {k: ablated.sample_probs(x, n_samples, seed) for k, x in inputs.items()}
        stats[name] = {k: predictive_statistics(p) for k, p in samples.items()}
        if on_step:
            on_step()
    for subset in inputs:
        everything = stats["all"][subset]
        entry: dict[str, Any] = {"all_sources": everything}
        for name in SOURCES:
            off = stats[name][subset]
            entry[name] = {
                "without": off,
                "share_of_variance": _share(everything["predictive_variance"],
                                            off["predictive_variance"]),
                "share_of_mi": _share(everything["mutual_information"],
                                      off["mutual_information"]),
            }
        result[subset] = entry
    return result


def _share(full: float, without: float) -> float | None:
    """1 − without/full: the part that disappears when a source is switched off."""
    return None if full <= 0 or not math.isfinite(full) else 1.0 - without / full
