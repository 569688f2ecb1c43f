"""The ``hardware`` section of a machine's report: the realised posterior (realised.py), the
feasibility of σ measured on the chip, device states, counters, endurance, and the statistics of
its Monte-Carlo samples (effective sample size, predictive variance and mutual information)."""

import math
from typing import Any

import numpy as np
import torch

from bayesim.crossbar.mapping import feasibility_report
from bayesim.crossbar.tile import split_sizes
from bayesim.machine.chip import Chip
from bayesim.machine.config import HardwareConfig, read_backend
from bayesim.machine.realised import alpha_summary
from bayesim.metrics import effective_sample_size, mutual_information


def feasibility(chip: Chip, realised: dict[str, Any]) -> dict[str, Any]:
    """How many σ the chip realises within ±10 %, measured (the realised std of each weight,
    realised.py): the headline is the **worst layer**; ``pooled`` counts all weights together
    and ``nominal`` is what the mapping's sampler law promises at the target conductances."""
    if not chip.scheme.has_devices:
        return {"mapping": chip.scheme.name, "fraction_feasible": 1.0, "as": "exact",
                "note": "M0 samples N(μ, σ²) exactly; every σ is realised"}
    per_layer, target, nominal = [], [], []
    for layer, report in zip(chip.layers, realised["layers"], strict=True):
        assert layer.pairs is not None
        entry = {"layer": layer.index, **alpha_summary(layer.pairs.alpha),
                 "fraction_feasible": report["fraction_sigma_within"],
                 "fraction_deficit": report["fraction_deficit"],
                 "fraction_excess": report["fraction_excess"],
                 "nominal_fraction_feasible": report["nominal_fraction_sigma_within"]}
        per_layer.append(entry)
        target.append(layer.sigma.reshape(-1))
        nominal.append(layer.pairs.sigma_realised.reshape(-1))
    worst = min(per_layer, key=lambda e: e["fraction_feasible"])
    result = {"mapping": chip.scheme.name, "noise_law": chip.scheme.noise_law,
              "as": "measured: the realised std of every weight on this chip (" +
                    realised["how"] + ")",
              "fraction_feasible": worst["fraction_feasible"], "worst_layer": worst["layer"],
              "layers": per_layer,
              "nominal": feasibility_report(np.concatenate(target), np.concatenate(nominal))}
    result["pooled_fraction_feasible"] = realised["pooled"]["fraction_sigma_within"]
    return result


def device_states(chip: Chip) -> dict[str, Any]:
    """How many distinct target states the chip is programmed to: (G⁺, G⁻) pairs and single
    conductance values, per layer and over the chip (targets rounded to 1e-6 µS), and the
    bits a level grid needs to hold every distinct conductance, ⌈log₂ n⌉."""
    if chip.device is None:
        return {"note": "M0 has no devices"}
    pairs, values, per_layer = [], [], []
    for layer in chip.layers:
        assert layer.pairs is not None
        gp = np.round(np.asarray(layer.pairs.g_plus, dtype=np.float64).reshape(-1), 6)
        gm = np.round(np.asarray(layer.pairs.g_minus, dtype=np.float64).reshape(-1), 6)
        pair = np.unique(np.stack([gp, gm], 1), axis=0)
        value = np.unique(np.concatenate([gp, gm]))
        pairs.append(pair)
        values.append(value)
        per_layer.append({"layer": layer.index, "pairs": int(pair.shape[0]),
                          "conductances": int(value.size)})
    n_values = int(np.unique(np.concatenate(values)).size)
    return {"pairs": int(np.unique(np.concatenate(pairs), axis=0).shape[0]),
            "conductances": n_values,
            "level_bits_needed": int(math.ceil(math.log2(max(n_values, 2)))),
            "device_levels": int(chip.device.levels) or None,
            "weights": int(sum(layer.mu.size for layer in chip.layers)),
            "layers": per_layer}


def hardware_report(chip: Chip, realised: dict[str, Any], n_samples: int,
                    config: dict[str, Any]) -> dict[str, Any]:
    """The ``hardware`` section (docs/machine.md) of a chip after ``n_samples`` samples."""
    hw = chip.hw
    n_weights = sum(layer.mu.size for layer in chip.layers)
    per_weight = chip.scheme.devices_per_weight(hw)
    n_tiles = sum(len(split_sizes(layer.shape[0], chip.tiling.max_out)) *
                  len(split_sizes(layer.shape[1], chip.tiling.max_in)) for layer in chip.layers)
    return {
        "config": config,
        "device": None if chip.device is None else chip.device.name,
        "scheme": chip.scheme.describe(hw),
        "periphery": chip.periphery.model_dump(mode="json"),
        "notes": list(chip.notes),
        "n_weights": n_weights,
        "n_devices": n_weights * per_weight,
        "n_tiles": n_tiles * chip.scheme.arrays(hw),
        "realised_posterior": realised,
        "feasibility": feasibility(chip, realised),
        "device_states": device_states(chip),
        "endurance": chip.scheme.endurance(n_samples, hw),
        "counters": dict(chip.counters),
        "read_backend": read_backend_name(hw),
        "counters_note": "mvms: one input vector on one tile; device_reads: devices read "
                         "(every device of every weight); random_draws: normals drawn per read "
                         "and for biases; adc_conversions: one output column of one tile per "
                         "input vector; dac_conversions: one input of one tile per input "
                         "vector; re-reads of bound management not counted",
    }


def sampling_report(probs: torch.Tensor, read_correlation: float,
                    distinct_states: int | None = None) -> dict[str, Any]:
    """Effective sample size of Monte-Carlo samples ``probs[S, N, C]`` of a machine with read
    correlation ρ: per input, Geyer's ESS of the sequence of the predicted class's probability
    (metrics.py), and the AR(1) value S·(1 − ρ)/(1 + ρ) for a statistic linear in the noise.

    Geyer's estimate exceeds S when the sample autocorrelations come out negative: for
    independent draws that is estimation noise of a short sequence (it shrinks as S grows); for
    M3, whose every block of R samples reads each programmed copy once, it is real
    anti-correlation, and an
    ESS above S then measures the precision of the mean over the chip's R copies, not over the
    posterior. So the estimates are reported as they are, with the fraction of inputs above S,
    and, where a chip holds a fixed number of programmed states that its samples take turns
    reading (``distinct_states``: Scheme.cycled_states, M3's R), ``posterior_draws`` =
    min(S, R): how many independent draws of the posterior the samples contain."""
    probs = probs.double()
    n_samples = probs.shape[0]
    top = probs.mean(0).argmax(-1)
    chains = probs.gather(2, top[None, :, None].expand(n_samples, -1, 1))[..., 0]
    ess = effective_sample_size(chains)
    rho = read_correlation
    return {"read_correlation": rho, "n_samples": n_samples, "n_inputs": int(probs.shape[1]),
            "ess_median": float(ess.median()), "ess_mean": float(ess.mean()),
            "ess_fraction_median": float(ess.median()) / n_samples,
            "ess_fraction_above_s": float((ess > n_samples).double().mean()),
            "ess_ar1_linear": n_samples * (1 - rho) / (1 + rho),
            "posterior_draws": (None if distinct_states is None
                                else min(n_samples, distinct_states)),
            "statistic": "probability of the mean-predicted class, per input (Geyer's initial "
                         "positive sequence); above S where the samples are anti-correlated "
                         "(estimation noise for independent draws; M3 reads each copy once "
                         "per block of R samples), see posterior_draws"}


def predictive_statistics(probs: torch.Tensor) -> dict[str, float]:
    """Mean over inputs of the predictive variance Σ_c Var_s[p_c] and of the mutual information
    (nats) of Monte-Carlo samples ``probs[S, N, C]``."""
    probs = probs.double()
    variance = probs.var(0, unbiased=True).sum(-1) if probs.shape[0] > 1 else \
        torch.zeros(probs.shape[1])
    return {"predictive_variance": float(variance.mean()),
            "mutual_information": float(mutual_information(probs).mean())}


def read_backend_name(hw: HardwareConfig) -> str:
    """What ran the read path: 'numba', or 'torch:' and the torch device (``hardware.backend``
    resolved)."""
    device = read_backend(hw)
    return "numba" if device is None else f"torch:{device}"
