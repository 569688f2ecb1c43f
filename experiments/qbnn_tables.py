"""The tables of the quantization grid (docs/results/qbnn.md) from its sweep directory.

    python experiments/qbnn_tables.py runs/seed_qbnn [--points points.csv]

Writes ``results.md`` into the sweep directory: one row per grid point (group, strategy, bits,
mode), mean ± sample standard deviation over the seeds. The group names the part of
experiments/seed_qbnn.toml a point belongs to: ``base`` (the fp32 reference), ``grid`` (strategy ×
bits × PTQ/QAT), ``uniform-sigma`` and ``uniform-sigma-vpq`` (the uniform σ quantizer under JQ and
VPQ), ``plain-relu`` (ReLU instead of ReLU6, with its own fp32 model). ``--points`` also writes one
row per point and seed in the same terms. Compression against fp32 is
bayesim.quant.memory.FP32_BITS_PER_WEIGHT (64: μ and σ in 32 bits) over the stored bits per weight.
"""

import argparse
import csv
import io
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from bayesim.atomic import write_text
from bayesim.errors import BayesimError, DataError
from bayesim.quant.memory import FP32_BITS_PER_WEIGHT
from bayesim.sweep.results import SweepResults

METRICS = ("accuracy", "nll", "ece", "auroc_aleatoric", "auroc_epistemic", "auroc_epistemic_pe",
           "mean_ee_clean", "mean_ee_ambiguous", "mean_ee_ood", "mean_mi_clean",
           "mean_mi_ambiguous", "mean_mi_ood", "bits_per_weight", "energy_per_inference_J",
           "compression_vs_fp32")
SHOWN = ("accuracy", "ece", "auroc_aleatoric", "auroc_epistemic", "auroc_epistemic_pe",
         "mean_mi_ood", "compression_vs_fp32")
GROUPS = ("base", "grid", "uniform-sigma", "uniform-sigma-vpq", "plain-relu")
STRATEGIES = ("fp32", "VPQ", "SPQ", "JQ")
KEYS = ("group", "strategy", "bits", "mode")


GROUP_OF = {  # (activation, σ quantizer, strategy) → group; None: any
    ("relu6", None, "fp32"): "base", ("relu6", "log", "VPQ"): "grid",
    ("relu6", "log", "SPQ"): "grid", ("relu6", "log", "JQ"): "grid",
    ("relu6", "uniform", "JQ"): "uniform-sigma", ("relu6", "uniform", "VPQ"): "uniform-sigma-vpq",
    ("relu", None, "fp32"): "plain-relu", ("relu", "log", "JQ"): "plain-relu",
}
"""The points experiments/seed_qbnn.toml makes; any other is not this grid's."""


def point_keys(row: dict[str, str]) -> dict[str, Any]:
    """A results.csv row in the grid's terms: group, strategy, bits, mode (PTQ: no fine-tuning
    epochs) and seed; an fp32 model reads as strategy fp32 at 32 bits. A point the grid does not
    make (another run, activation, σ quantizer or strategy) is a DataError naming it."""
    if row["config.run"] not in ("digital", "fp32"):
        raise DataError(f"point {row.get('point_id', '?')}: run {row['config.run']!r}; this table "
                        f"reads the digital sweep of experiments/seed_qbnn.toml")
    fp32 = row["config.run"] == "fp32" or row["config.quant.strategy"] == "fp"
    strategy = "fp32" if fp32 else row["config.quant.strategy"]
    activation = row["config.model.activation"]
    group = GROUP_OF.get((activation, None if fp32 else row["config.quant.sigma_quantizer"],
                          strategy))
    if group is None:
        raise DataError(f"point {row.get('point_id', '?')}: activation {activation}, σ quantizer "
                        f"{row['config.quant.sigma_quantizer']}, strategy {strategy} is not a "
                        f"point of experiments/seed_qbnn.toml")
    if fp32:
        return {"group": group, "strategy": "fp32", "bits": 32, "mode": "-",
                "seed": int(row["config.seed"])}
    return {"group": group, "strategy": row["config.quant.strategy"],
            "bits": int(row["config.quant.bits"]),
            "mode": "PTQ" if int(row["config.quant.qat_epochs"]) == 0 else "QAT",
            "seed": int(row["config.seed"])}


def points(results: SweepResults) -> list[dict[str, Any]]:
    """One row per point and seed (:data:`KEYS`, seed, :data:`METRICS`), in the grid's order."""
    out = []
    for row in results.rows:
        keys = point_keys(row)
        missing = [k for k in METRICS[:-1] if not row.get(f"metric.{k}")]
        if missing:
            raise DataError(f"point {row.get('point_id', '?')} has no {', '.join(missing)}")
        metrics = {k: float(row[f"metric.{k}"]) for k in METRICS[:-1]}
        metrics["compression_vs_fp32"] = FP32_BITS_PER_WEIGHT / metrics["bits_per_weight"]
        out.append({**keys, **metrics})
    return sorted(out, key=lambda r: (r["seed"], GROUPS.index(r["group"]),
                                      STRATEGIES.index(r["strategy"]), r["bits"], r["mode"]))


def table(rows: list[dict[str, Any]]) -> str:
    """Mean ± sample std over seeds of :data:`SHOWN`, one line per (group, strategy, bits, mode)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (GROUPS.index(r["group"]),
                                           STRATEGIES.index(r["strategy"]), r["bits"],
                                           r["mode"])):
        groups[tuple(row[k] for k in KEYS)].append(row)
    lines = ["| group | strategy | bits | mode | seeds | " + " | ".join(SHOWN) + " |",
             "|---|---|---|---|---|" + "---|" * len(SHOWN)]
    for (group, strategy, bits, mode), members in groups.items():
        cells = []
        for metric in SHOWN:
            values = [m[metric] for m in members]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.4f} ± {sd:.4f}")
        lines.append(f"| {group} | {strategy} | {bits} | {mode} | {len(members)} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def points_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*KEYS, "seed", *METRICS], restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="the --out directory of the seed_qbnn sweep")
    parser.add_argument("--points", type=Path, help="also write one row per point and seed here")
    args = parser.parse_args(argv)
    try:
        rows = points(SweepResults.load(args.sweep_dir))
    except BayesimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = Path(args.sweep_dir) / "results.md"
    write_text(path, table(rows))
    print(f"table: {path}")
    if args.points:
        write_text(args.points, points_csv(rows))
        print(f"points: {args.points}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
