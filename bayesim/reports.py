"""The report's schema: its file names, the rows it turns into, and the last step before it is
written (its provenance stamped in, its measured floats rounded). docs/reports.md names every key.

The rows: :func:`summary_row`, the headline of one run (the run commands' table, their --json,
`bayesim compare`, the README's demo table); :func:`sweep_row`, the metrics a sweep keeps
(results.csv); :func:`headline`, the metrics a verdict compares.

Every measured float of a report is written with :data:`SIGNIFICANT` significant digits, whatever
section it comes from, so that a report reads consistently and does not pretend to a precision
that no Monte-Carlo estimate in it has (docs/reports.md). The inputs the run was given stay as
given (:data:`AS_GIVEN`: the configs, the data's description, the provenance), and integers,
strings and None pass unchanged.
"""

import dataclasses
import datetime
import math
from pathlib import Path
from typing import Any

import numpy as np

from bayesim.provenance import provenance

REPORT_NAME = "report.json"
SCORES_NAME = "scores.npz"
"""The two files of a run directory: the report and the per-example scores (PE, EE, MI per
subset, the clean split's confidence and correctness, and a chip's σ pairs)."""

SIGNIFICANT = 6
"""Significant digits of every float in report.json. The finest quantities a report compares
are probabilities and W₂ distances whose Monte-Carlo standard errors are ≥ 1e-4 at the test
sets' sizes, so six digits keep two guard digits below any difference that means something."""


AS_GIVEN = ("config", "predictor", "periphery", "data", "provenance")
"""Keys whose values are inputs, not measurements: never rounded (a drift_time of 31557601 s
stays 31557601)."""


def rounded(value: Any, digits: int = SIGNIFICANT) -> Any:
    """``value`` with every float (in any dict or list inside it, except under the keys of
    :data:`AS_GIVEN`) rounded to ``digits`` significant digits; NaN and ±inf unchanged."""
    if isinstance(value, float):
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: v if k in AS_GIVEN else rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def finished(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` rounded (:func:`rounded`) with its ``provenance`` section: the bayesim version,
    the git commit and whether the checkout had uncommitted changes (None outside a git
    checkout), and when it was written (UTC, ISO 8601)."""
    stamp = {**provenance(),
             "written_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    return rounded({**report, "provenance": stamp})


HEADLINE = (("accuracy", "in_distribution"), ("nll", "in_distribution"),
            ("ece", "in_distribution"), ("auroc_aleatoric", "uncertainty"),
            ("auroc_epistemic", "uncertainty"), ("auroc_epistemic_pe", "uncertainty"))
"""The metrics of a headline and of a verdict: (key, report section)."""


def headline(report: dict[str, Any]) -> dict[str, float | None]:
    """The :data:`HEADLINE` metrics of a report (None where it has none, e.g. no OOD set)."""
    return {key: report[section].get(key) for key, section in HEADLINE}


def label(predictor: dict[str, Any]) -> str:
    """A predictor's short name: its label (JQ-4, analog M3 pcm_ibm_2020) or its kind."""
    return str(predictor.get("label", predictor["kind"]))


def summary_row(report: dict[str, Any]) -> dict[str, Any]:
    """One report's row: predictor, storage per weight, the headline metrics, the worst layer's
    median W₂/σ (chips), the cost per inference and per sample, and the verdict's status."""
    metrics = sweep_row(report)
    chip = "hardware" in report

    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    return rounded({
        "predictor": label(report["predictor"]),
        "kind": report["predictor"]["kind"],
        "n_samples": report["n_samples"],
        "seed": report["seed"],
        "devices_per_weight": metrics.get("devices_per_weight"),
        "bits_per_weight": None if chip else metrics["bits_per_weight"],
        **headline(report),
        "w2_median_worst": metrics.get("w2_median_worst"),
        "energy_per_inference_uJ": scaled(metrics["energy_per_inference_J"], 1e6),
        "energy_per_sample_nJ": scaled(report.get("cost", {}).get("energy_per_sample_J"), 1e9),
        "latency_per_inference_us": scaled(metrics["latency_per_inference_s"], 1e6),
        "verdict": (report.get("verdict") or {}).get("status"),
    })


def sweep_row(report: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a report that a sweep keeps (the metric columns of results.csv)."""
    ind, unc = report["in_distribution"], report["uncertainty"]
    row = {k: ind[k] for k in ("accuracy", "nll", "brier", "ece", "mce")}
    row.update({k: unc[k] for k in ("auroc_aleatoric", "auroc_epistemic", "auroc_epistemic_pe")})
    for name, means in unc["subsets"].items():
        row.update({f"mean_{k}_{name}": means[k] for k in ("pe", "ee", "mi")})
    cost = report.get("cost", {})
    row["energy_per_inference_J"] = cost.get("energy_per_inference_J")
    row["latency_per_inference_s"] = cost.get("latency_per_inference_s")
    memory = report["memory"]
    row["bits_per_weight"] = memory["bits_per_weight"]
    row["stored_bytes"] = memory.get("total_bytes")
    row["trainable_parameters"] = memory.get("trainable_parameters")
    hardware = report.get("hardware")
    if hardware:
        row["fraction_feasible"] = hardware["feasibility"]["fraction_feasible"]
        realised = hardware.get("realised_posterior")
        if realised:  # measured on the chip: the worst layer, and all weights pooled
            row["fraction_feasible_pooled"] = realised["pooled"]["fraction_sigma_within"]
            row["w2_median_worst"] = realised["w2_median_worst"]
            row["w2_median_worst_with_periphery"] = realised.get("w2_median_worst_with_periphery")
            row["bias_median_pooled"] = realised["pooled"]["bias_median"]
            row["std_ratio_median_pooled"] = realised["pooled"]["std_ratio_median"]
        row["n_devices"] = hardware["n_devices"]
        row["devices_per_weight"] = hardware["n_devices"] / hardware["n_weights"]
        states = hardware.get("device_states", {})
        if "pairs" in states:
            row["device_state_pairs"] = states["pairs"]
            row["device_conductances"] = states["conductances"]
    return row


@dataclasses.dataclass
class Run:
    """One run directory: its report, its per-example scores (None if it has none) and the name
    it goes by in the table and the legends (its predictor, made unique by its directory)."""

    directory: Path
    report: dict[str, Any]
    scores: dict[str, np.ndarray] | None
    name: str
