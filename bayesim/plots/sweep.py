"""Design-guideline plots of a sweep's results (``DIR/results.csv`` and ``DIR/spec.json`` of
``bayesim sweep``), each written as PNG and PDF with units on every axis:

- ``heatmap``: a metric over two swept parameters (e.g. ADC bits × read-noise scale);
- ``lines``: a metric against one parameter, a line per value of another;
- ``bits``: a metric against ``quant.bits``, a line per ``quant.strategy``;
- ``drift``: against ``hardware.drift_time`` (log time axis);
- ``samples``: against ``eval.n_samples`` (S, log axis);
- ``feasibility``: the fraction of weights whose σ the chip realises within ±10 % against the
  mapping's ``hardware.alpha`` (µS per unit weight);
- ``pareto``: every configuration's memory (``bits_per_weight`` or ``devices_per_weight``) against
  a metric, with the Pareto front of the configurations no other beats on both.

The line kinds draw the spec's ``references`` (fp32 and digital software predictors) as dashed
horizontal lines. Values are means over seeds, error bars one standard deviation. A swept
parameter that is not on a plot's axes is held at the spec's base value when the sweep has points
there (a spec of several ``[[grid]]`` tables varies one group of parameters at a time around the
base), at the value ``where`` gives, or else averaged over (the figure says so).
"""

import math
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from bayesim.errors import ConfigError, DataError
from bayesim.plots.figures import save_figure
from bayesim.sweep.results import (
    SweepResults,
    format_value,
    parse_cell,
    read_spec,
    sorted_values,
)

UNITS = {
    "accuracy": "accuracy (fraction)", "ece": "ECE (fraction)", "mce": "MCE (fraction)",
    "nll": "NLL (nats per image)", "brier": "Brier score (per image)",
    "auroc_aleatoric": "AUROC aleatoric (EE; clean vs ambiguous)",
    "auroc_epistemic": "AUROC epistemic (MI; clean vs OOD)",
    "auroc_epistemic_pe": "AUROC epistemic (PE; clean vs OOD)",
    "fraction_feasible": "σ realised within ±10 % (worst layer, measured)",
    "fraction_feasible_pooled": "σ realised within ±10 % (all weights, measured)",
    "w2_median_worst": "median W₂/σ of the worst layer",
    "bits_per_weight": "stored bits per weight", "devices_per_weight": "devices per weight",
    "n_devices": "devices", "hardware.adc_bits": "ADC bits", "hardware.dac_bits": "DAC bits",
    "hardware.levels_bits": "conductance levels (bits)",
    "hardware.read_noise_scale": "read-noise scale (× device card)",
    "hardware.program_noise_scale": "programming-noise scale (× device card)",
    "hardware.drift_time": "time after programming (s)", "hardware.mapping": "mapping",
    "hardware.alpha": "α (µS per unit weight)", "hardware.copies": "programmed copies R",
    "hardware.devices_per_weight": "devices per side n", "quant.bits": "bits (μ and σ)",
    "quant.strategy": "strategy", "eval.n_samples": "Monte-Carlo samples S",
    "energy_per_inference_J": "energy per inference (J; S samples, one input; cost model)",
    "latency_per_inference_s": "latency per inference (s; cost model)",
}
LOWER_IS_BETTER = {"ece", "mce", "nll", "brier", "bits_per_weight", "devices_per_weight",
                   "n_devices", "energy_per_inference_J", "latency_per_inference_s"}
PRESETS: dict[str, dict[str, str]] = {
    "bits": {"x": "quant.bits", "by": "quant.strategy"},
    "drift": {"x": "hardware.drift_time"},
    "samples": {"x": "eval.n_samples"},
    "feasibility": {"x": "hardware.alpha", "metric": "fraction_feasible"},
    "pareto": {"x": "bits_per_weight"},
    "energy": {"x": "energy_per_inference_J"},
}
KINDS = ("heatmap", "lines", *PRESETS)
COST_COLUMNS = ("energy_per_inference_J", "latency_per_inference_s")
DEFAULT_METRIC = "auroc_epistemic"


def _label(name: str) -> str:
    return UNITS.get(name, name)


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    png = save_figure(fig, stem.with_suffix(".png"))
    return [png, png.with_suffix(".pdf")]


def _stem(results: SweepResults, *parts: str | None,
          where: dict[str, Any] | None = None) -> Path:
    """The figure's path without suffix: its kind, metric and axes, then each held value (two
    figures that differ only in ``where`` do not overwrite each other); every character but
    letters, digits, ``_`` and ``-`` becomes ``-`` (a held card path stays one file name)."""
    held = [f"{path}_{value}" for path, value in (where or {}).items()]
    return results.out_dir / re.sub(r"[^A-Za-z0-9_-]", "-",
                                    "_".join(p for p in (*parts, *held) if p))


def _title(ax: plt.Axes, text: str, note: str) -> None:
    ax.set_title(text + (f"\n({note})" if note else ""), fontsize=9)


def _numeric_scale(ax: plt.Axes, values: list) -> None:
    """A log axis for positive values spanning ≥ 50×, symlog when 0 is among them."""
    if not values or not all(isinstance(v, float) for v in values):
        return
    positive = [v for v in values if v > 0]
    if not positive or max(positive) / min(positive) < 50:
        return
    if min(values) > 0:
        ax.set_xscale("log")
    elif min(values) == 0:
        ax.set_xscale("symlog", linthresh=min(positive))


def heatmap(out_dir: str | os.PathLike[str], x: str, y: str, metric: str = DEFAULT_METRIC,
            where: dict[str, Any] | None = None) -> list[Path]:
    """Mean ``metric`` over the grid of swept parameters ``x`` × ``y`` (dotted config paths)."""
    results = SweepResults.load(out_dir)
    cx, cy = results.column(x, "config"), results.column(y, "config")
    cm = results.column(metric, "metric")
    rows, note = results.select([cx, cy], where)
    cells: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        if row[cm] != "":
            cells[(parse_cell(row[cx]), parse_cell(row[cy]))].append(float(row[cm]))
    if not cells:
        raise DataError(f"no finished point has {metric} for {x} × {y}")
    xs = sorted_values({k[0] for k in cells})
    ys = sorted_values({k[1] for k in cells})
    grid = np.full((len(ys), len(xs)), np.nan)
    for (vx, vy), values in cells.items():
        grid[ys.index(vy), xs.index(vx)] = float(np.mean(values))
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * len(xs), 1.4 + 0.6 * len(ys)))
    cmap = "viridis_r" if metric in LOWER_IS_BETTER else "viridis"
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap)
    middle = np.nanmean(grid)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not math.isnan(grid[i, j]):
                dark = (grid[i, j] < middle) != (metric in LOWER_IS_BETTER)
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    ax.set_xticks(range(len(xs)), [format_value(v, x) for v in xs])
    ax.set_yticks(range(len(ys)), [format_value(v, y) for v in ys])
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(y))
    fig.colorbar(image, ax=ax, label=_label(metric))
    references = results.references(cm)
    text = f"{_label(metric)}, mean over seeds"
    if references:
        text += "; " + ", ".join(f"{label} {mean:.3f}" for label, mean, _ in references)
    _title(ax, text, note)
    return _save(fig, _stem(results, "heatmap", metric, x, y, where=where))


def lines(out_dir: str | os.PathLike[str], x: str, metric: str = DEFAULT_METRIC,
          by: str | None = None, where: dict[str, Any] | None = None,
          kind: str = "lines") -> list[Path]:
    """``metric`` against swept parameter ``x``, one line per value of ``by``, mean ± std over
    seeds, with the sweep's reference predictors as dashed lines."""
    results = SweepResults.load(out_dir)
    cx, cm = results.column(x, "config"), results.column(metric, "metric")
    cb = results.column(by, "config") if by else None
    rows, note = results.select([cx] + ([cb] if cb else []), where)
    groups: dict[object, dict[object, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row[cm] != "":
            groups[parse_cell(row[cb]) if cb else ""][parse_cell(row[cx])].append(float(row[cm]))
    if not groups:
        raise DataError(f"no finished point has {metric} against {x}")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    all_x = sorted_values({v for group in groups.values() for v in group})
    numeric = all(isinstance(v, float) for v in all_x)
    for key in sorted_values(set(groups)):
        xs = sorted_values(set(groups[key]))
        means = [float(np.mean(groups[key][v])) for v in xs]
        stds = [float(np.std(groups[key][v])) for v in xs]
        positions = xs if numeric else [all_x.index(v) for v in xs]
        label = f"{_label(by)} = {format_value(key, by)}" if by else None
        ax.errorbar(positions, means, yerr=stds, marker="o", capsize=3, label=label)
    if numeric:
        _numeric_scale(ax, all_x)
        if len(all_x) <= 8:
            ax.set_xticks(all_x, [format_value(v, x) for v in all_x])
            ax.minorticks_off()
            if ax.get_xscale() != "linear":
                ax.tick_params(axis="x", labelrotation=35)
    else:
        ax.set_xticks(range(len(all_x)), [format_value(v, x) for v in all_x])
    for (label, mean, _), style in zip(results.references(cm), ("--", ":"), strict=False):
        ax.axhline(mean, color="black", linestyle=style, linewidth=1, label=label)
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(metric))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    _title(ax, f"{_label(metric)} vs {_label(x)} (mean ± std over seeds)", note)
    return _save(fig, _stem(results, kind, metric, x, f"by_{by}" if by else None,
                                  where=where))


def pareto_front(points: list[tuple[float, float, Any]],
                 lower_is_better: bool = False) -> list[tuple[float, float, Any]]:
    """The points ``(memory, metric, key)`` that no other point beats, i.e. none has less or
    equal memory and a better or equal metric with one of the two strictly better; sorted by
    memory."""
    sign = -1.0 if lower_is_better else 1.0
    front: list[tuple[float, float, Any]] = []
    best = -math.inf
    for point in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if sign * point[1] > best:
            front.append(point)
            best = sign * point[1]
    return front


def pareto(out_dir: str | os.PathLike[str], x: str = "bits_per_weight",
           metric: str = DEFAULT_METRIC, by: str | None = None,
           where: dict[str, Any] | None = None, over: list[str] | None = None) -> list[Path]:
    """Configurations of the sweep (mean over seeds) as memory ``x`` (a metric such as
    ``bits_per_weight`` or ``devices_per_weight``, lower is better) against ``metric``, and the
    Pareto front: the configurations no other one beats in both. ``over`` names the swept
    parameters whose configurations compete (the others held at the base); default: all."""
    results = SweepResults.load(out_dir)
    cx, cm = results.column(x, "metric"), results.column(metric, "metric")
    cb = results.column(by, "config") if by else None
    axes = [results.column(path, "config") for path in over or []]
    rows, _ = results.select(axes, where, hold_base=bool(over))
    swept = results.swept(rows)
    if cb and cb not in swept:  # colours by a parameter the selection holds constant
        swept.append(cb)
    configs: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        if row[cm] != "" and row[cx] != "":
            configs[tuple(row[c] for c in swept)].append((float(row[cx]), float(row[cm])))
    if not configs:
        raise DataError(f"no finished point has both {x} and {metric}")
    points = [(float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])), key)
              for key, vals in configs.items()]
    front = pareto_front(points, metric in LOWER_IS_BETTER)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    colours = {}
    if cb:
        values = sorted_values({parse_cell(r[cb]) for r in rows})
        colours = {v: f"C{i % 10}" for i, v in enumerate(values)}
    for px, py, key in points:
        colour = colours.get(parse_cell(key[swept.index(cb)]), "C0") if cb else "C0"
        ax.scatter(px, py, color=colour, s=22, alpha=0.7)
    for value, colour in colours.items():
        ax.scatter([], [], color=colour, label=f"{_label(by)} = {format_value(value, by)}")
    fx = [p[0] for p in front]
    fy = [p[1] for p in front]
    ax.step(fx, fy, where="post", color="black", linewidth=1.2, label="Pareto front")
    for px, py, key in front:
        text = ", ".join(f"{c.rsplit('.', 1)[1]}={format_value(parse_cell(v))}"
                         for c, v in zip(swept, key, strict=True)
                         if c != cb and v != results.base.get(c))
        ax.annotate(text or "base", (px, py), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    for label, reference in results.reference_rows(cm):
        memory = [float(r[cx]) for r in reference if r.get(cx, "") != ""]
        if memory:
            point = (float(np.mean(memory)), float(np.mean([float(r[cm]) for r in reference])))
            ax.scatter(*point, marker="*", s=120, color="black", zorder=3)
            ax.annotate(label, point, fontsize=7, xytext=(4, -9), textcoords="offset points")
    if len({p[0] for p in points}) > 1 and max(p[0] for p in points) / max(
            min(p[0] for p in points), 1e-300) >= 8:
        ax.set_xscale("log", base=10 if x in COST_COLUMNS else 2)
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    axis = "cost" if x in COST_COLUMNS else "memory"
    _title(ax, f"{_label(metric)} vs {axis}: less {_label(x)}, {better} {metric} is better",
           "")
    return _save(fig, _stem(results, "pareto", metric, x, f"by_{by}" if by else None,
                                  where=where))


def plot(out_dir: str | os.PathLike[str], kind: str, x: str | None = None,
         y: str | None = None, by: str | None = None, metric: str | None = None,
         where: dict[str, Any] | None = None, over: list[str] | None = None) -> list[Path]:
    """One figure of :data:`KINDS` (module docstring); presets fill what is not given."""
    if kind not in KINDS:
        raise ConfigError(f"plot kind must be one of {', '.join(KINDS)}, got {kind!r}")
    preset = PRESETS.get(kind, {})
    x = x or preset.get("x")
    by = by or preset.get("by")
    metric = metric or preset.get("metric", DEFAULT_METRIC)
    if x is None:
        raise ConfigError(f"--kind {kind} needs --x, the swept parameter on the x axis")
    if kind == "heatmap":
        if y is None:
            raise ConfigError("--kind heatmap needs --y, the second swept parameter")
        return heatmap(out_dir, x, y, metric, where)
    if kind in ("pareto", "energy"):
        return pareto(out_dir, x, metric, by, where, over)
    return lines(out_dir, x, metric, by, where, kind)


def plot_spec(out_dir: str | os.PathLike[str]) -> tuple[list[Path], list[str]]:
    """Every figure the sweep's spec lists under ``[[plots]]`` that its results can draw (a
    sweep still running may lack some points): the files written and, for each figure that
    could not be drawn, why."""
    SweepResults.load(out_dir)  # a clear error when there is nothing to plot
    spec = read_spec(out_dir)
    if spec is None or not spec.plots:
        raise ConfigError(f"the sweep in {out_dir} lists no [[plots]]; give --kind "
                          f"({', '.join(KINDS)})")
    paths, skipped = [], []
    for figure in spec.plots:
        try:
            paths += plot(out_dir, figure.kind, figure.x, figure.y, figure.by, figure.metric,
                          figure.where, figure.over)
        except (ConfigError, DataError) as exc:
            skipped.append(f"{figure.kind} {figure.x or ''} {figure.metric or ''}: {exc}")
    if not paths:
        raise DataError(f"none of the spec's plots can be drawn yet; first: {skipped[0]}")
    return paths, skipped
