"""The cost axis of a guideline sweep (docs/results/guidelines.md): every configuration, averaged
over the sweep's seeds, with AUROC MI, accuracy and the cost model's energy and latency per
inference, sorted by energy. It marks the configurations within ``--within`` (0.02) AUROC MI of the
best chip configuration, and names the cheapest of them.

    python experiments/guideline_cost.py runs/guideline_pcm [--within 0.02]
"""

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from bayesim.config import ExperimentConfig, validate
from bayesim.sweep.results import parse_cell, read_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--within", type=float, default=0.02)
    args = parser.parse_args()
    spec = read_spec(args.out).model_dump(mode="json")
    base = spec["base"]
    swept = sorted({key for grid in spec["grid"] for key in grid})
    with open(Path(args.out) / "results.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "done"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["config.run"], *(r[f"config.{k}"] for k in swept))].append(r)

    resolved = validate(ExperimentConfig, base, "the spec's base").model_dump(mode="json")

    def label(key: tuple) -> str:
        if key[0] != "analog":
            return f"{key[0]} (reference)"
        changed = []
        for k, v in zip(swept, key[1:], strict=True):
            section, name = k.split(".", 1)
            default = resolved[section][name]
            if parse_cell(v) != parse_cell("" if default is None else str(default)):
                changed.append(f"{name}={v}")
        return ", ".join(changed) or "base"

    table = []
    for key, members in groups.items():
        means = [float(np.mean([float(m[f"metric.{metric}"]) for m in members])) for metric in (
            "auroc_epistemic", "accuracy", "energy_per_inference_J", "latency_per_inference_s")]
        table.append((label(key), key[0], *means, len(members)))
    chips = [t for t in table if t[1] == "analog"]
    best = max(t[2] for t in chips)
    near = [t for t in chips if t[2] >= best - args.within]
    cheapest = min(near, key=lambda t: t[4])
    print("| configuration | AUROC MI | accuracy | µJ / inference | ms / inference | seeds |")
    print("|---|---|---|---|---|---|")
    for t in sorted(table, key=lambda t: t[4]):
        mark = " ✓" if t in near else ""
        print(f"| {t[0]}{mark} | {t[2]:.3f} | {t[3]:.3f} | {t[4] * 1e6:.3g} | {t[5] * 1e3:.3g} "
              f"| {t[6]} |")
    print(f"\nbest chip AUROC MI {best:.3f}; ✓: within {args.within}; cheapest of those: "
          f"{cheapest[0]} ({cheapest[2]:.3f}, {cheapest[4] * 1e6:.3g} µJ per inference)")


if __name__ == "__main__":
    main()
