"""Tables of the stochastic-weight-sharing sweeps (docs/results/sharing.md).

    python experiments/sharing_table.py runs/seed_sharing [runs/seed_sharing_quant ...]

One row per predictor configuration (run, gradient variant, τ_w, quantization, chip), mean ± std
over the sweep's seeds; Δ columns are per-seed differences against the mean-field BNN (the fp32
reference of the same seed), and "pass" says whether every seed meets the issue's bars
(accuracy within 1.5 pp, AUROC MI within 0.03, ≥ 20× fewer trainable parameters, ≥ 70 % smaller).
"""

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from guideline_tables import mean_std  # experiments/, on the path when run as a script

KEYS = ("config.run", "config.sharing.gradient", "config.sharing.tau_w", "config.quant.strategy",
        "config.quant.bits", "config.hardware.device", "config.hardware.common_mode")


def _label(row: dict[str, str]) -> str:
    run = row["config.run"]
    if run == "fp32":
        return "mean-field BNN (fp32)"
    if run == "digital":
        return f"mean-field {row['config.quant.strategy']}-{row['config.quant.bits']} (QAT)"
    if run == "analog":
        return f"mean-field on {row['config.hardware.device']}"
    variant = "gradient" if row["config.sharing.gradient"] == "True" else "detached"
    label = f"shared, {variant}, τ_w {row['config.sharing.tau_w']}"
    if run == "shared_digital":
        label += f", {row['config.quant.strategy']}-{row['config.quant.bits']}"
    if run == "shared_analog":
        mode = "M5" if row["config.hardware.common_mode"] == "True" else "M1, G- at g_min"
        label += f", {row['config.hardware.device']} {mode}"
    return label


def table(out_dir: str) -> str:
    rows = [r for r in csv.DictReader((Path(out_dir) / "results.csv").open())
            if r["status"] == "done"]
    reference = {r["config.seed"]: r for r in rows if r["config.run"] == "fp32"}
    groups: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k, "") for k in KEYS)].append(r)

    def metric(r: dict[str, str], name: str) -> float | None:
        value = r.get(f"metric.{name}", "")
        return float(value) if value not in ("", "None") else None

    header = ("| predictor | seeds | trainable params | × fewer than MF | stored KB | "
              "smaller than MF | accuracy | Δacc (pp) | AUROC MI | ΔAUROC MI | AUROC EE | ECE | "
              "devices states | pass |")
    lines = [f"### {Path(out_dir).name}", "", header, "|---" * 14 + "|"]
    for _, members in sorted(groups.items(), key=lambda kv: _label(kv[1][0])):
        cells: dict[str, list[float]] = defaultdict(list)
        passes = []
        for r in members:
            ref = reference.get(r["config.seed"])
            for name in ("trainable_parameters", "stored_bytes", "accuracy", "auroc_epistemic",
                         "auroc_aleatoric", "ece", "device_state_pairs"):
                value = metric(r, name)
                if value is not None:
                    cells[name].append(value)
            if ref is None or r is ref:
                continue
            d_acc = metric(r, "accuracy") - metric(ref, "accuracy")
            d_mi = metric(r, "auroc_epistemic") - metric(ref, "auroc_epistemic")
            cells["d_acc"].append(100 * d_acc)
            cells["d_mi"].append(d_mi)
            fewer = size = None
            if metric(r, "trainable_parameters") and metric(ref, "trainable_parameters"):
                fewer = metric(ref, "trainable_parameters") / metric(r, "trainable_parameters")
                size = 1 - metric(r, "stored_bytes") / metric(ref, "stored_bytes")
                cells["fewer"].append(fewer)
                cells["size"].append(100 * size)
            passes.append(abs(d_acc) <= 0.015 and abs(d_mi) <= 0.03 and
                          (fewer is None or fewer >= 20) and (size is None or size >= 0.70))
        verdict = "–" if not passes else ("yes" if all(passes) else
                                          f"no ({sum(passes)}/{len(passes)} seeds)")
        lines.append(
            f"| {_label(members[0])} | {len(members)} | "
            f"{mean_std(cells['trainable_parameters'], 0)} | {mean_std(cells['fewer'], 1)} | "
            f"{mean_std([b / 1000 for b in cells['stored_bytes']], 1)} | "
            f"{mean_std(cells['size'], 1)} % | {mean_std(cells['accuracy'], 4)} | "
            f"{mean_std(cells['d_acc'], 2)} | {mean_std(cells['auroc_epistemic'])} | "
            f"{mean_std(cells['d_mi'])} | {mean_std(cells['auroc_aleatoric'])} | "
            f"{mean_std(cells['ece'])} | "
            f"{mean_std(cells['device_state_pairs'], 0)} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dirs", nargs="+")
    for out_dir in parser.parse_args().out_dirs:
        print(table(out_dir), end="\n\n")


if __name__ == "__main__":
    main()
