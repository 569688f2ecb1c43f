"""The figure of `bayesim compare`: reliability diagrams and EE/MI histograms of several runs
overlaid, one colour per run."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bayesim.plots.figures import save_figure
from bayesim.reports import Run

MIN_BIN_COUNT = 10
"""Reliability points of bins holding fewer clean test images are drawn hollow: their accuracy
has a standard error above 0.15 (binomial, p = 0.5)."""


def plot_comparison(runs: list[Run], path: Path) -> Path:
    """Three panels: accuracy vs confidence per calibration bin (marker area ∝ examples in the
    bin); EE of the clean (solid) and ambiguous (dashed) test images; MI of the clean (solid)
    and OOD (dashed) test images. Histograms share bins across runs so their shapes compare."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax = axes[0]
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for i, run in enumerate(runs):
        colour = colours[i % len(colours)]
        cal = run.report.get("calibration", {})
        conf = np.asarray(cal.get("confidence", []), dtype=float)
        acc = np.asarray(cal.get("accuracy", []), dtype=float)
        count = np.asarray(cal.get("count", []), dtype=float)
        filled = np.isfinite(conf) & np.isfinite(acc) & (count > 0)
        order = np.argsort(conf[filled])
        ece = run.report["in_distribution"]["ece"]
        ax.plot(conf[filled][order], acc[filled][order], "-", color=colour, lw=1.2,
                label=f"{run.name} (ECE {ece:.3f})")
        size = 12 + 160 * count / max(count.max(), 1)
        solid = filled & (count >= MIN_BIN_COUNT)
        sparse = filled & (count < MIN_BIN_COUNT)
        ax.scatter(conf[solid], acc[solid], s=size[solid], color=colour, alpha=0.7)
        ax.scatter(conf[sparse], acc[sparse], s=size[sparse], facecolors="none",
                   edgecolors=colour)
    ax.set(xlim=(0, 1), ylim=(0, 1.03), xlabel="mean confidence in bin (fraction)",
           ylabel="accuracy in bin (fraction)",
           title=f"reliability, clean test (area ∝ examples; hollow: < {MIN_BIN_COUNT})")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7, loc="upper left")
    for ax, key, other, xlabel in ((axes[1], "ee", "ambiguous", "expected entropy EE (nats)"),
                                   (axes[2], "mi", "ood", "mutual information MI (nats)")):
        values = [run.scores[f"{name}_{key}"] for run in runs if run.scores is not None
                  for name in ("clean", other) if f"{name}_{key}" in run.scores]
        if not values:
            ax.text(0.5, 0.5, "no scores.npz in these runs", ha="center", transform=ax.transAxes)
            continue
        bins = np.linspace(0, max(float(np.max(v)) for v in values) or 1e-6, 41)
        for i, run in enumerate(runs):
            if run.scores is None:
                continue
            for name, style in (("clean", "-"), (other, "--")):
                if f"{name}_{key}" in run.scores:
                    ax.hist(run.scores[f"{name}_{key}"], bins=bins, density=True,
                            histtype="step", ls=style, lw=1.4, color=colours[i % len(colours)],
                            label=f"{run.name}, {name}")
        auroc = "auroc_aleatoric" if key == "ee" else "auroc_epistemic"
        ax.set(xlabel=xlabel, ylabel="density (1/nat)", yscale="log",
               title=f"{'aleatoric' if key == 'ee' else 'epistemic'}: clean (solid) vs {other} "
                     f"(dashed); AUROC " + ", ".join(
                         "–" if run.report["uncertainty"].get(auroc) is None
                         else f"{run.report['uncertainty'][auroc]:.3f}" for run in runs))
        ax.title.set_fontsize(8)
        ax.legend(fontsize=6)
    fig.suptitle("runs compared: " + "; ".join(
        f"{run.name} S = {run.report['n_samples']}" for run in runs), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
