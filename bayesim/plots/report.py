"""Figures of one evaluation report: reliability diagram, EE/MI histograms per subset and, for the
analog machine, realised vs target σ."""

import json
import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from bayesim.errors import DataError
from bayesim.plots.figures import save_figure
from bayesim.reports import REPORT_NAME, SCORES_NAME
from bayesim.reports import label as predictor_label

SUBSET_COLOURS = {"clean": "tab:blue", "ambiguous": "tab:orange", "ood": "tab:red"}
RELIABILITY_NAME = "reliability.png"
HISTOGRAM_NAME = "uncertainty_hist.png"
SIGMA_NAME = "sigma_realised.png"
COST_NAME = "cost_breakdown.png"


def plot_reliability(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Accuracy vs confidence per bin (top-label, clean test split), each bar shaded by the
    examples it holds (a bin of one example is a pale bar, not a full-height claim), with the
    bin counts below and the legend outside the bars."""
    cal = report["calibration"]
    edges = np.asarray(cal["edges"])
    acc = np.asarray(cal["accuracy"], dtype=float)
    conf = np.asarray(cal["confidence"], dtype=float)
    count = np.asarray(cal["count"], dtype=float)
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5, 6.4), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    # opacity ∝ log count: the fullest bin opaque, a bin of one example at 0.15
    weight = np.log1p(count) / max(float(np.log1p(count.max())), 1e-12)
    colours = [(0.12, 0.47, 0.71, 0.15 + 0.85 * w) for w in weight]
    ax.bar(centres, np.nan_to_num(acc), width=width, edgecolor="black", linewidth=0.5,
           color=colours, label="accuracy (shade: examples in bin, log)")
    ax.vlines(centres, np.fmin(acc, conf), np.fmax(acc, conf), color="tab:red", lw=2)
    ax.plot(centres, conf, "o", color="tab:red", ms=4, label="mean confidence (gap in red)")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ind = report["in_distribution"]
    name = predictor_label(report["predictor"])
    fig.suptitle(f"{name}, S = {report['n_samples']}: ECE = {ind['ece']:.3f}, accuracy = "
                 f"{ind['accuracy']:.3f} ({ind['n']} clean test images)", fontsize=9)
    ax.set_ylabel("accuracy in bin (fraction)")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
    ax_n.bar(centres, count, width=width, color="grey", edgecolor="black")
    ax_n.set_yscale("log")
    ax_n.set_xlabel("confidence max p̄ (fraction)")
    ax_n.set_ylabel("examples")
    ax_n.set_xlim(0, 1)
    fig.tight_layout()
    save_figure(fig, Path(path))
    return Path(path)


def plot_uncertainty_histograms(scores: dict[str, np.ndarray], report: dict[str, Any],
                                path: str | os.PathLike[str]) -> Path:
    """Histograms of expected entropy (aleatoric) and mutual information (epistemic) per subset."""
    unc = report["uncertainty"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label, auc in (
        (axes[0], "ee", "expected entropy EE (nats)", unc["auroc_aleatoric"]),
        (axes[1], "mi", "mutual information MI (nats)", unc["auroc_epistemic"]),
    ):
        names = [name for name in SUBSET_COLOURS if f"{name}_{key}" in scores]  # OOD optional
        values = [scores[f"{name}_{key}"] for name in names]
        top = max(float(np.max(v)) for v in values) or 1e-6
        bins = np.linspace(0, top, 41)
        for name, v in zip(names, values, strict=True):
            ax.hist(v, bins=bins, density=True, histtype="step", lw=1.6,
                    color=SUBSET_COLOURS[name], label=f"{name} (mean {v.mean():.3f})")
        kind = "aleatoric: clean vs ambiguous" if key == "ee" else "epistemic: clean vs OOD"
        ax.set_title(f"{kind}, AUROC = " + ("– (no OOD data)" if auc is None else f"{auc:.3f}"),
                     fontsize=10)
        ax.set_xlabel(label)
        ax.set_ylabel("density (1/nat)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    save_figure(fig, Path(path))
    return Path(path)


def plot_sigma_realised(target: np.ndarray, realised: np.ndarray, report: dict[str, Any],
                        path: str | os.PathLike[str]) -> Path:
    """Realised vs target posterior σ of the mapped weights (log-log), with the ±10 % band; the
    title names the device and the measured fraction within ±10 % (worst layer and pooled)."""
    feas = report.get("hardware", {}).get("feasibility", {})
    fig, ax = plt.subplots(figsize=(5, 4.5))
    positive = (target > 0) & (realised > 0)
    ax.loglog(target[positive], realised[positive], ".", ms=2, alpha=0.4, color="tab:blue",
              label=f"{positive.sum()} weights (random subset)")
    if positive.any():
        lo, hi = float(target[positive].min()), float(target[positive].max())
        line = np.geomspace(lo, hi, 50)
        ax.plot(line, line, "k-", lw=1, label="realised = target")
        ax.fill_between(line, 0.9 * line, 1.1 * line, color="grey", alpha=0.3, label="±10 %")
    zero = int((realised[target > 0] == 0).sum())
    hardware = report.get("hardware", {})
    device = hardware.get("device") or "exact"
    worst = feas.get("worst_layer")
    title = (f"{device}, {feas.get('mapping', '')}: realised σ within ±10 % of the target for "
             f"{feas.get('fraction_feasible', float('nan')):.1%}\nof the weights of the worst "
             f"layer" + (f" ({worst})" if worst is not None else "") +
             f", {feas.get('pooled_fraction_feasible', float('nan')):.1%} of all (measured)")
    if zero:
        title += f"; {zero} with no noise, not shown"
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("target σ (weight units)")
    ax.set_ylabel("realised σ (weight units)")
    ax.legend(fontsize=8)
    save_figure(fig, Path(path))
    return Path(path)


def plot_cost_breakdown(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Energy of one posterior sample by component (the report's ``cost`` section; log axis);
    the title gives the energy per inference and how many card constants are assumed."""
    cost = report["cost"]
    parts = {k: v for k, v in cost["energy_per_sample_by_component_J"].items() if v > 0}
    names = sorted(parts, key=parts.get)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(names) + 1.4))
    ax.barh(names, [parts[n] * 1e9 for n in names], color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("energy per posterior sample (nJ; one input)")
    name = predictor_label(report["predictor"])
    total = cost["energy_per_inference_J"] * 1e6
    assumed = len(cost.get("assumed_constants", []))
    ax.set_title(f"{name}: {total:.3g} µJ per inference (S = {report.get('n_samples')}); "
                 f"{assumed} assumed card constant(s)", fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    save_figure(fig, Path(path))
    return Path(path)


def render_report_plots(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw the figures of ``out_dir/report.json`` and ``out_dir/scores.npz`` next to them."""
    out = Path(out_dir)
    report_path, scores_path = out / REPORT_NAME, out / SCORES_NAME
    if not report_path.is_file() or not scores_path.is_file():
        raise DataError(f"{out} holds no {REPORT_NAME} and {SCORES_NAME}; run 'bayesim evaluate' "
                        f"first")
    report = json.loads(report_path.read_text())
    with np.load(scores_path) as data:
        scores = {k: data[k] for k in data.files}
    paths = [plot_reliability(report, out / RELIABILITY_NAME),
             plot_uncertainty_histograms(scores, report, out / HISTOGRAM_NAME)]
    if "sigma_target" in scores and "sigma_realised" in scores:
        paths.append(plot_sigma_realised(scores["sigma_target"], scores["sigma_realised"], report,
                                         out / SIGMA_NAME))
    if report.get("cost", {}).get("energy_per_sample_by_component_J"):
        paths.append(plot_cost_breakdown(report, out / COST_NAME))
    return paths
