"""Markdown tables of a guideline sweep, one per [[grid]] of its spec (docs/results/guidelines.md).

    python experiments/guideline_tables.py runs/guideline_pcm [runs/guideline_rram ...]

Each table holds the grid's parameters at their values and every other swept parameter at the
spec's base (bayesim.sweep.results.SweepResults.select), with mean ± standard deviation over the
sweep's seeds, and the reference predictors' rows first. Wall time: the sum of the points'
seconds (one thread each).
"""

import argparse
from collections import defaultdict

import numpy as np

from bayesim.sweep.results import SweepResults, format_value, parse_cell, read_spec

METRICS = {"accuracy": "accuracy", "ece": "ECE", "auroc_aleatoric": "AUROC EE",
           "auroc_epistemic": "AUROC MI", "w2_median_worst": "W₂/σ worst layer",
           "fraction_feasible_pooled": "σ within ±10 % (all)"}


def _cells(rows: list[dict[str, str]]) -> list[str]:
    """Mean ± std of every metric of METRICS over ``rows``."""
    return [mean_std([float(r[f"metric.{k}"]) for r in rows if r.get(f"metric.{k}")])
            for k in METRICS]


def mean_std(values: list[float], digits: int = 3) -> str:
    """``mean ± std`` of ``values`` (the value alone for one, a dash for none)."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def tables(out_dir: str) -> str:
    results = SweepResults.load(out_dir)
    spec = read_spec(out_dir)
    if spec is None:
        raise SystemExit(f"{out_dir} has no spec.json")
    seconds = sum(float(r["seconds"]) for r in results.rows if r.get("seconds"))
    lines = [f"## {spec.name} ({len(results.rows)} points, {seconds / 60:.0f} CPU-minutes)", ""]
    header = "| | " + " | ".join(METRICS.values()) + " |"
    rule = "|---" * (len(METRICS) + 1) + "|"
    reference = ["**references**", "", header, rule]
    for run in ("fp32", "digital"):
        rows = [r for r in results.rows if r.get("config.run") == run]
        if rows:
            reference.append(f"| {run} | " + " | ".join(_cells(rows)) + " |")
    lines += reference + [""]
    base_rows, _ = results.select([])
    lines += ["**base**", "", header, rule, "| base | " + " | ".join(_cells(base_rows)) + " |",
              ""]
    for axes in spec.grids:
        columns = [f"config.{p}" for p in axes]
        rows, note = results.select(columns)
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for row in rows:
            groups[tuple(parse_cell(row[c]) for c in columns)].append(row)
        title = " × ".join(axes)
        lines += [f"**{title}**" + (f" ({note})" if note else ""), "",
                  "| " + " | ".join(axes) + " | " + " | ".join(METRICS.values()) + " |",
                  "|---" * (len(axes) + len(METRICS)) + "|"]
        for key in sorted(groups, key=lambda k: tuple((isinstance(v, str), v) for v in k)):
            values = [format_value(v, p) for v, p in zip(key, axes, strict=True)]
            lines.append("| " + " | ".join(values) + " | " + " | ".join(_cells(groups[key]))
                         + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    for out_dir in args.dirs:
        print(tables(out_dir))


if __name__ == "__main__":
    main()
