"""How the Bayesian machine's accuracy, calibration and uncertainty move with device and periphery
parameters, against the fp32 and digital 4-bit software predictors (docs/results/machine.md).

    python experiments/machine_study.py --checkpoint runs/lenet/model.safetensors \\
        --digital runs/lenet_jq4/model.safetensors --out runs/machine_study

One parameter is varied at a time around each card's baseline (the default chip: 8 programmed
copies (M3), α by the 'distance' policy, 8-bit DAC/ADC, analog levels, read-noise scale 1, t = 0).
The table gives, beside the metrics, what the chip realises, measured from its own states
(bayesim.machine.realised): the median W₂/σ of its worst layer and the fraction of σ within ±10 %
(worst layer / all weights). Finished points are appended to OUT/points.jsonl and skipped when the
script is run again; OUT/results.md and OUT/machine_study.png are rewritten at the end.
"""

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bayesim.data.dirty import build_benchmark  # noqa: E402
from bayesim.pipeline import (  # noqa: E402
    SIMULATE_SECTIONS,
    evaluate_model,
    evaluation_config,
    load_model,
    simulate_model,
)
from bayesim.reports import sweep_row  # noqa: E402

CARDS = {"pcm_ibm_2020": "PCM (IBM 2020)", "rram_neurram_2022": "RRAM (NeuRRAM 2022)"}
SWEEPS: dict[str, list] = {
    "adc_bits": [4, 6, 8, 10],
    "levels_bits": [3, 4, 6],
    "read_noise_scale": [0.25, 0.5, 1.0, 2.0, 4.0],
    "program_noise_scale": [0.0, 0.25, 0.5, 1.0],
    "mapping": ["M1", "M2", "M3"],
    "alpha_policy": ["distance", "feasibility", "max"],
    "drift_time": [0.0, 3600.0, 86400.0, 2.6e6, 3.15e7],
}
BASELINE = {"adc_bits": 8, "read_noise_scale": 1.0, "program_noise_scale": 1.0,
            "mapping": "M3", "alpha_policy": "distance", "drift_time": 0.0}
"""The baseline's value of each swept parameter: that point is the baseline's run."""
ONLY = {("rram_neurram_2022", "drift_time"): [0.0, 86400.0, 172800.0]}
"""NeuRRAM's spread is measured 1 s, 1 day and 2 days after programming; no drift law beyond."""
METRICS = {"accuracy": "accuracy", "ece": "ECE", "auroc_aleatoric": "AUROC aleatoric (EE)",
           "auroc_epistemic": "AUROC epistemic (MI)"}


EXTRA = [("rram_lin2023", "mapping", "M4"), ("rram_lin2023", "mapping", "M1"),
         ("exact", "m0_sampling", "per_read"), ("exact", "m0_sampling", "per_sample")]
"""Lin et al. 2023's RRAM with its own scheme (three devices per side summed, M4) and with one
pair; and the exact machine M0 on an ideal periphery with a weight draw per read (every output
position of a convolution its own) or per sample (software sampling)."""
EXACT = {"mapping": "M0", "periphery": "ideal"}


def table_points() -> list[tuple[str, str, object]]:
    """Every row of the table: the baselines, every swept value (the baseline's value stands
    for the baseline's run), EXTRA."""
    swept = [(card, param, v) for card in CARDS for param, values in SWEEPS.items()
             for v in ONLY.get((card, param), values)]
    return [(card, "baseline", None) for card in CARDS] + swept + EXTRA


def points() -> list[tuple[str, str, object]]:
    """Every point to run: the table's, less the swept values that are the baseline's run."""
    return [(card, param, v) for card, param, v in table_points()
            if BASELINE.get(param, "none") != v]


def entry(done: dict, card: str, param: str, value: object) -> dict | None:
    """The stored result of a point; a swept parameter at the baseline's value is the
    baseline."""
    if BASELINE.get(param, "none") == value:
        return done.get((card, "baseline", "null"))
    return done.get((card, param, json.dumps(value)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--digital", required=True, help="the JQ-4 checkpoint (bayesim quantize)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--ood-limit", type=int, default=2000)
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite results.md and the plot from the stored points")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "points.jsonl"
    done = {}
    if store.exists():
        for line in store.read_text().splitlines():
            entry = json.loads(line)
            done[(entry["card"], entry["param"], json.dumps(entry["value"]))] = entry
    if args.report_only:
        write_results(done, args)
        return
    model, metadata = load_model(args.checkpoint)
    common = [f"eval.n_samples={args.samples}", f"data.ood_limit={args.ood_limit}",
              "hardware.decomposition_inputs=0"]
    base = evaluation_config(metadata["experiment"], None, common, SIMULATE_SECTIONS)
    benchmark = build_benchmark(base.data, base.seed)

    def record(entry: dict) -> None:
        done[(entry["card"], entry["param"], json.dumps(entry["value"]))] = entry
        with store.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    for name, path in (("fp32", args.checkpoint), ("digital JQ-4", args.digital)):
        if (name, "reference", "null") not in done:
            ref_model, _ = load_model(path)
            start = time.perf_counter()
            result = evaluate_model(ref_model, benchmark, base, progress=False)
            record({"card": name, "param": "reference", "value": None,
                    "seconds": time.perf_counter() - start, **sweep_row(result.report)})
    for card, param, value in points():
        if (card, param, json.dumps(value)) in done:
            continue
        config = evaluation_config(metadata["experiment"], None,
                                   [*common, *_hardware(card, param, value)], SIMULATE_SECTIONS)
        start = time.perf_counter()
        result = simulate_model(model, benchmark, config, progress=False)
        entry = {"card": card, "param": param, "value": value,
                 "seconds": time.perf_counter() - start, **sweep_row(result.report)}
        record(entry)
        print(json.dumps(entry), flush=True)
    write_results(done, args)


def _hardware(card: str, param: str, value: object) -> list[str]:
    """The --set overrides of one point."""
    if card == "exact":
        return [f"hardware.{k}={json.dumps(v)}" for k, v in EXACT.items()] + \
            [f"hardware.{param}={json.dumps(value)}"]
    overrides = [f"hardware.device={json.dumps(card)}"]
    if param != "baseline":
        overrides.append(f"hardware.{param}={json.dumps(value)}")
    return overrides


def write_results(done: dict, args: argparse.Namespace) -> None:
    entries = list(done.values())
    refs = {e["card"]: e for e in entries if e["param"] == "reference"}
    lines = [f"S = {args.samples}, OOD limited to {args.ood_limit} images; one parameter varied "
             f"at a time around the baseline (M3 with 8 copies, 'distance' α, 8-bit DAC/ADC, "
             f"analog levels, read-noise ×1, t = 0).", ""]
    header = "| card | parameter | value | accuracy | ECE | NLL | AUROC EE | AUROC MI | " \
             "W₂/σ worst layer | σ within ±10 % (worst / all) | s |"
    lines += [header, "|" + "---|" * 11]
    for name, e in refs.items():
        lines.append(f"| {name} | reference | – | {e['accuracy']:.4f} | {e['ece']:.4f} | "
                     f"{e['nll']:.3f} | {e['auroc_aleatoric']:.3f} | {e['auroc_epistemic']:.3f} "
                     f"| – | – | {e['seconds']:.0f} |")
    for card, param, value in table_points():
        e = entry(done, card, param, value)
        if e is None:
            continue
        w2 = e.get("w2_median_worst")
        lines.append(f"| {card} | {param} | {value if value is not None else '–'} | "
                     f"{e['accuracy']:.4f} | {e['ece']:.4f} | {e['nll']:.3f} | "
                     f"{e['auroc_aleatoric']:.3f} | {e['auroc_epistemic']:.3f} | "
                     f"{'–' if w2 is None else f'{w2:.2f}'} | "
                     f"{e['fraction_feasible']:.1%} / "
                     f"{e.get('fraction_feasible_pooled', e['fraction_feasible']):.1%} | "
                     f"{e['seconds']:.0f} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    plot(done, refs, args.out / "machine_study.png")


def plot(done: dict, refs: dict, path: Path) -> None:
    params = list(SWEEPS)
    fig, axes = plt.subplots(len(METRICS), len(params), figsize=(3.2 * len(params), 9),
                             squeeze=False)
    for col, param in enumerate(params):
        values = SWEEPS[param]
        for row, (metric, label) in enumerate(METRICS.items()):
            ax = axes[row][col]
            for card, card_label in CARDS.items():
                ys = [(entry(done, card, param, v) or {}).get(metric) for v in values]
                xs = [i for i, y in enumerate(ys) if y is not None]
                if xs:
                    ax.plot(xs, [ys[i] for i in xs], "o-", label=card_label)
            for (name, e), style in zip(refs.items(), ("k--", "k:"), strict=False):
                ax.axhline(e[metric], color="k", ls=style[1:], lw=1, label=name)
            ax.set_xticks(range(len(values)), [_tick(param, v) for v in values], fontsize=7)
            if row == len(METRICS) - 1:
                ax.set_xlabel(_axis(param))
            if col == 0:
                ax.set_ylabel(label)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _tick(param: str, value: object) -> str:
    if param == "drift_time":
        seconds = float(value)  # type: ignore[arg-type]
        for unit, size in (("y", 3.15e7), ("mo", 2.6e6), ("d", 86400), ("h", 3600), ("s", 1)):
            if seconds >= size:
                return f"{seconds / size:g} {unit}"
    return str(value)


def _axis(param: str) -> str:
    return {"adc_bits": "ADC bits", "levels_bits": "conductance levels (bits)",
            "read_noise_scale": "read-noise scale (×card)", "mapping": "mapping",
            "program_noise_scale": "programming-noise scale (×card)",
            "drift_time": "time after programming", "alpha_policy": "choice of α",
            "m0_sampling": "M0 weight draw"}[param]


if __name__ == "__main__":
    main()
