"""Plots of the quantization grid: metrics vs bits per strategy, and mean EE/MI per subset."""

import contextlib
import csv
import os
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt

from bayesim.plots.figures import save_figure

STRATEGY_COLOURS = {"VPQ": "tab:blue", "SPQ": "tab:orange", "JQ": "tab:green"}
METRIC_LABELS = {
    "accuracy": "clean accuracy (fraction)",
    "ece": "ECE (fraction, 15 bins)",
    "auroc_aleatoric": "AUROC aleatoric (EE, clean vs ambiguous)",
    "auroc_epistemic": "AUROC epistemic (MI, clean vs OOD)",
}


def _read(path: Path) -> list[dict]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            with contextlib.suppress(TypeError, ValueError):
                row[key] = float(value)
    return rows


def _mean_std(rows: list[dict], key: str) -> tuple[float, float]:
    values = [r[key] for r in rows]
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def plot_grid(results_csv: str | os.PathLike[str]) -> list[Path]:
    """``metrics_vs_bits.png`` and ``uncertainty_vs_bits.png`` next to ``results.csv``."""
    path = Path(results_csv)
    rows = [r for r in _read(path) if r["group"] in ("grid", "base")]
    fp32 = [r for r in rows if r["strategy"] == "fp32"]
    series: dict[tuple[str, str], dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["group"] == "grid":
            series[(r["strategy"], r["mode"])][r["bits"]].append(r)

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, (metric, label) in zip(axes.flat, METRIC_LABELS.items(), strict=True):
        for (strategy, mode), by_bits in sorted(series.items()):
            bits = sorted(by_bits)
            stats = [_mean_std(by_bits[b], metric) for b in bits]
            ax.errorbar(bits, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o",
                        ms=4, capsize=2, color=STRATEGY_COLOURS.get(strategy, "k"),
                        ls="-" if mode == "QAT" else "--", label=f"{strategy} {mode}")
        if fp32:
            ax.axhline(_mean_std(fp32, metric)[0], color="k", lw=1, ls=":", label="fp32")
        ax.set_xlabel("bits (μ, σ and samples)")
        ax.set_ylabel(label)
        ax.set_xticks(sorted({b for s in series.values() for b in s}))
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle("digital b-bit BNN vs fp32 (mean ± std over seeds; dashed PTQ, solid QAT)")
    out = [save_figure(fig, path.parent / "metrics_vs_bits.png")]

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    for row, quantity in enumerate(("ee", "mi")):
        for col, subset in enumerate(("clean", "ambiguous", "ood")):
            ax = axes[row, col]
            key = f"mean_{quantity}_{subset}"
            for (strategy, mode), by_bits in sorted(series.items()):
                if mode != "QAT":
                    continue
                bits = sorted(by_bits)
                ax.plot(bits, [_mean_std(by_bits[b], key)[0] for b in bits], marker="o", ms=4,
                        color=STRATEGY_COLOURS.get(strategy, "k"), label=f"{strategy} QAT")
            if fp32:
                ax.axhline(_mean_std(fp32, key)[0], color="k", lw=1, ls=":", label="fp32")
            ax.set_title(f"mean {quantity.upper()}, {subset}", fontsize=10)
            ax.set_ylabel("nats")
            if row == 1:
                ax.set_xlabel("bits")
    axes[0, 0].legend(fontsize=7)
    out.append(save_figure(fig, path.parent / "uncertainty_vs_bits.png"))
    return out
