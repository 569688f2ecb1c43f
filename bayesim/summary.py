"""The headline of a report: the row that the run commands' table, their ``--json`` output and
`bayesim compare` show for one report.json (docs/reports.md names every key)."""

from typing import Any

from bayesim.reports import rounded

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
    hardware = report.get("hardware")
    realised = (hardware or {}).get("realised_posterior")
    cost = report.get("cost", {})
    energy = cost.get("energy_per_inference_J")
    energy_sample = cost.get("energy_per_sample_J")
    latency = cost.get("latency_per_inference_s")
    return rounded({
        "predictor": label(report["predictor"]),
        "kind": report["predictor"]["kind"],
        "n_samples": report["n_samples"],
        "seed": report["seed"],
        "devices_per_weight": (hardware["n_devices"] / hardware["n_weights"]
                               if hardware else None),
        "bits_per_weight": None if hardware else report["memory"]["bits_per_weight"],
        **headline(report),
        "w2_median_worst": realised["w2_median_worst"] if realised else None,
        "energy_per_inference_uJ": None if energy is None else energy * 1e6,
        "energy_per_sample_nJ": None if energy_sample is None else energy_sample * 1e9,
        "latency_per_inference_us": None if latency is None else latency * 1e6,
        "verdict": (report.get("verdict") or {}).get("status"),
    })
