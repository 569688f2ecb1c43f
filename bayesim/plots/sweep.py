"""Plots of a sweep's results (``DIR/results.csv`` of ``bayesim sweep``): a heatmap of a metric
over two swept parameters, and a metric against one parameter with a line per value of another.
Each figure is written as PNG and PDF; cells and points are means over seeds (and over any
parameter not on an axis), error bars the standard deviation over seeds."""

import csv
import math
import os
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bayesim.atomic import write_with
from bayesim.errors import ConfigError, DataError

UNITS = {
    "accuracy": "accuracy (fraction)", "ece": "ECE (fraction)", "mce": "MCE (fraction)",
    "nll": "NLL (nats)", "brier": "Brier score", "auroc_aleatoric": "AUROC aleatoric (EE)",
    "auroc_epistemic": "AUROC epistemic (MI)", "auroc_epistemic_pe": "AUROC epistemic (PE)",
    "fraction_feasible": "σ feasible (fraction)", "bits_per_weight": "bits per weight",
    "hardware.adc_bits": "ADC bits", "hardware.dac_bits": "DAC bits",
    "hardware.levels_bits": "conductance levels (bits)",
    "hardware.read_noise_scale": "read-noise scale (× card)",
    "hardware.program_noise_scale": "programming-noise scale (× card)",
    "hardware.drift_time": "time after programming (s)", "hardware.mapping": "mapping",
    "quant.bits": "bits", "quant.strategy": "strategy", "eval.n_samples": "samples S",
}


def read_results(out_dir: str | os.PathLike[str]) -> list[dict[str, str]]:
    path = Path(out_dir) / "results.csv"
    if not path.is_file():
        raise DataError(f"{out_dir} holds no results.csv; run 'bayesim sweep SPEC --out "
                        f"{out_dir}' first")
    return [row for row in csv.DictReader(path.open()) if row.get("status") == "done"]


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _column(rows: list[dict[str, str]], name: str, kind: str) -> str:
    column = f"{kind}.{name}"
    if rows and column not in rows[0]:
        choices = sorted(k.split(".", 1)[1] for k in rows[0] if k.startswith(kind + "."))
        raise ConfigError(f"no {kind} '{name}' in the results; choose one of "
                          f"{', '.join(choices)}")
    return column


def _label(name: str) -> str:
    return UNITS.get(name, name)


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    paths = []
    for suffix in (".png", ".pdf"):
        path = stem.with_suffix(suffix)
        write_with(path, lambda tmp, s=suffix: fig.savefig(tmp, format=s[1:], dpi=130,
                                                           bbox_inches="tight"))
        paths.append(path)
    plt.close(fig)
    return paths


def _sorted(values: set) -> list:
    return sorted(values, key=lambda v: (isinstance(v, str), v))


def heatmap(out_dir: str | os.PathLike[str], x: str, y: str, metric: str) -> list[Path]:
    """Mean ``metric`` over the grid of swept parameters ``x`` × ``y`` (dotted config paths)."""
    rows = read_results(out_dir)
    if not rows:
        raise DataError(f"{out_dir}/results.csv has no finished point to plot")
    cx, cy, cm = (_column(rows, x, "config"), _column(rows, y, "config"),
                  _column(rows, metric, "metric"))
    cells: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        if row[cm] != "":
            cells[(_value(row[cx]), _value(row[cy]))].append(float(row[cm]))
    xs = _sorted({k[0] for k in cells})
    ys = _sorted({k[1] for k in cells})
    grid = np.full((len(ys), len(xs)), np.nan)
    for (vx, vy), values in cells.items():
        grid[ys.index(vy), xs.index(vx)] = float(np.mean(values))
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(xs), 1.2 + 0.6 * len(ys)))
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < np.nanmean(grid) else "black")
    ax.set_xticks(range(len(xs)), [f"{v:g}" if isinstance(v, float) else v for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" if isinstance(v, float) else v for v in ys])
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(y))
    fig.colorbar(image, ax=ax, label=_label(metric))
    ax.set_title(f"{_label(metric)} (mean over seeds)", fontsize=10)
    return _save(fig, Path(out_dir) / f"heatmap_{metric}_{x}_{y}".replace(".", "-"))


def lines(out_dir: str | os.PathLike[str], x: str, metric: str,
          by: str | None = None) -> list[Path]:
    """``metric`` against swept parameter ``x``, one line per value of ``by``; mean ± std over
    seeds."""
    rows = read_results(out_dir)
    if not rows:
        raise DataError(f"{out_dir}/results.csv has no finished point to plot")
    cx, cm = _column(rows, x, "config"), _column(rows, metric, "metric")
    cb = _column(rows, by, "config") if by else None
    groups: dict[object, dict[object, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row[cm] != "":
            groups[_value(row[cb]) if cb else ""][_value(row[cx])].append(float(row[cm]))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key in _sorted(set(groups)):
        xs = _sorted(set(groups[key]))
        means = [float(np.mean(groups[key][v])) for v in xs]
        stds = [float(np.std(groups[key][v])) for v in xs]
        positions = xs if all(isinstance(v, float) for v in xs) else list(range(len(xs)))
        label = f"{_label(by)} = {key:g}" if isinstance(key, float) else \
            (f"{_label(by)} = {key}" if by else None)
        ax.errorbar(positions, means, yerr=stds, marker="o", capsize=3, label=label)
        if positions != xs:
            ax.set_xticks(positions, xs)
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(metric))
    if by:
        ax.legend(fontsize=8)
    name = f"lines_{metric}_{x}" + (f"_by_{by}" if by else "")
    return _save(fig, Path(out_dir) / name.replace(".", "-"))
