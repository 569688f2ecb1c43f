"""The machine on a fitted card against the card its data came from (docs/devices_fit.md, "The
machine on a fitted card"), from the sweep of experiments/devices_fit_sweep.toml.

    python experiments/devices_fit_sweep_table.py runs/devices_fit_sweep [--reference CARD] \
        [--json FILE]

For each card other than the reference (default pcm_ibm_2020, the original), mapping and metric:
the mean ± sample standard deviation over chip seeds on it and on the reference, and the
difference card − reference. Its Monte-Carlo standard error is sqrt(s_a²/n_a + s_b²/n_b), the
chips of one card being independent draws whose spread is the Monte-Carlo error of a chip's
metric, and z is the difference over that error. The chips of two cards with the same chip seed
draw the same random numbers (counter-based streams), so the test is on the paired differences:
their mean, their standard deviation, t = mean / (sd / √n) and its two-sided p-value with n − 1
degrees of freedom. A difference with p < 0.01 is one the chips tell apart (with 4 chips, |t|
> 5.84). Prints a Markdown table; ``--json`` also writes the numbers.
"""

import argparse
import math
import statistics
import sys
from pathlib import Path

from bayesim.atomic import write_json
from bayesim.errors import BayesimError, DataError
from bayesim.sweep.results import SweepResults

ORIGINAL = "pcm_ibm_2020"
METRICS = ("accuracy", "nll", "ece", "auroc_aleatoric", "auroc_epistemic", "mean_mi_ood",
           "std_ratio_median_pooled", "w2_median_worst", "fraction_feasible_pooled")
P_LIMIT = 0.01


def card_label(device: str) -> str:
    return Path(device).stem if device.endswith(".toml") else device


def compare(results: SweepResults, reference: str = ORIGINAL) -> list[dict]:
    """One row per (card other than ``reference``, mapping, metric): both cards' means and
    spreads, the difference, its standard error, z, and the paired differences' mean, spread,
    t and p."""
    from scipy import stats

    by: dict[tuple[str, str], dict[int, dict[str, str]]] = {}
    for row in results.rows:
        if row["config.run"] != "analog":
            continue
        by.setdefault((row["config.hardware.mapping"], card_label(row["config.hardware.device"])),
                      {})[int(row["config.hardware.chip_seed"])] = row
    out = []
    cards = sorted({c for _, c in by if c != reference})
    for card in cards:
        for mapping in sorted({m for m, _ in by}):
            original, fitted = by.get((mapping, reference)), by.get((mapping, card))
            if not original or not fitted or len(original) < 2 or len(fitted) < 2:
                raise DataError(f"mapping {mapping}: need at least two chips on {reference} "
                                f"and on {card}")
            for metric in METRICS:
                a = [float(r[f"metric.{metric}"]) for r in original.values()]
                b = [float(r[f"metric.{metric}"]) for r in fitted.values()]
                se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
                diff = statistics.mean(b) - statistics.mean(a)
                paired = [float(fitted[s][f"metric.{metric}"])
                          - float(original[s][f"metric.{metric}"])
                          for s in sorted(set(original) & set(fitted))]
                spread = statistics.stdev(paired) if len(paired) > 1 else 0.0
                mean = statistics.mean(paired)
                t = mean / (spread / math.sqrt(len(paired))) if spread > 0 else (
                    0.0 if mean == 0 else math.inf)
                p = float(2 * stats.t.sf(abs(t), len(paired) - 1)) if len(paired) > 1 else 1.0
                out.append({"card": card, "reference": reference, "mapping": mapping,
                            "metric": metric,
                            "chips": [len(a), len(b)],
                            "original_mean": statistics.mean(a),
                            "original_std": statistics.stdev(a),
                            "card_mean": statistics.mean(b), "card_std": statistics.stdev(b),
                            "difference": diff, "standard_error": se,
                            "z": diff / se if se > 0 else (0.0 if diff == 0 else math.inf),
                            "paired_mean": mean, "paired_std": spread, "paired_t": t,
                            "paired_p": p})
    return out


def markdown(rows: list[dict]) -> str:
    reference = rows[0]["reference"] if rows else ORIGINAL
    lines = [f"| card | mapping | metric | {reference} (mean ± std) | card (mean ± std) | card − "
             f"{reference} (± MC s.e.) | z | paired Δ (mean ± std) | paired t | p |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['card']} | {r['mapping']} | {r['metric']} | {r['original_mean']:.4f} "
                     f"± {r['original_std']:.4f} | {r['card_mean']:.4f} ± {r['card_std']:.4f} | "
                     f"{r['difference']:+.4f} ± {r['standard_error']:.4f} | {r['z']:+.1f} | "
                     f"{r['paired_mean']:+.4f} ± {r['paired_std']:.4f} | {r['paired_t']:+.1f} "
                     f"| {r['paired_p']:.2g} |")
    lines.append("")
    for card in dict.fromkeys(r["card"] for r in rows):
        beyond = [f"{r['mapping']} {r['metric']}" for r in rows
                  if r["card"] == card and r["paired_p"] < P_LIMIT]
        lines.append(f"{card} against {reference}, paired p < {P_LIMIT:g}: "
                     + (", ".join(beyond) if beyond else "none"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir")
    parser.add_argument("--reference", default=ORIGINAL,
                        help="the card the others are compared with (a name or a card's stem)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    try:
        rows = compare(SweepResults.load(args.sweep_dir), args.reference)
    except BayesimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(markdown(rows), end="")
    if args.json:
        write_json(args.json, {"sweep": str(args.sweep_dir), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
