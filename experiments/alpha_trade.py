"""The α trade of the mapping, measured on the chip (docs/machine.md, "Choosing α").

For one checkpoint and one chip, every layer is compiled with α = f × (the largest α at which its
μ fit) for a log-spaced set of fractions f; for each f the chip's realised posterior is measured
(bayesim.machine.realised: median bias |m − μ|/σ, median s/σ, median W₂/σ per layer) and the
chip is evaluated (accuracy and AUROC MI, S samples). The α that each policy chooses is marked.

    python experiments/alpha_trade.py --checkpoint runs/lenet/model.safetensors \
        --out docs/alpha_trade.png [--set hardware.mapping=M1] [--samples 10] [--images 500]
"""

import argparse
import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from bayesim.config import ExperimentConfig, apply_overrides  # noqa: E402
from bayesim.crossbar.mapping import alpha_limit  # noqa: E402
from bayesim.data.dirty import build_benchmark  # noqa: E402
from bayesim.evaluate import SoftwarePredictor  # noqa: E402
from bayesim.machine import BayesianMachine, ChipWarning, HardwareConfig  # noqa: E402
from bayesim.metrics import mutual_information  # noqa: E402
from bayesim.pipeline import calibration_inputs, load_model  # noqa: E402


def evaluate(predictor, x, y, ood, samples: int) -> tuple[float, float]:
    p = predictor.sample_probs(x, samples, 0).double()
    q = predictor.sample_probs(ood, samples, 0).double()
    accuracy = float((p.mean(0).argmax(-1) == y).double().mean())
    scores = torch.cat([mutual_information(p), mutual_information(q)]).numpy()
    auroc = roc_auc_score(np.r_[np.zeros(len(x)), np.ones(len(ood))], scores)
    return accuracy, float(auroc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--points", type=int, default=11)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ChipWarning)
    model, metadata = load_model(args.checkpoint)
    experiment = apply_overrides(dict(metadata["experiment"]), args.overrides)
    config = ExperimentConfig.model_validate(experiment)
    bench = build_benchmark(config.data, config.seed)
    x, y = bench.test["clean"].x[:args.images], bench.test["clean"].y[:args.images]
    ood = bench.test["ood"].x[:args.images]
    hw = config.hardware.model_copy(update={"decomposition_inputs": 0})
    calibration = calibration_inputs(bench)  # as bayesim simulate compiles
    reference = BayesianMachine(model, hw, warn=False, calibration=calibration)
    device = reference.device
    limits = [alpha_limit(layer.mu, device.g_min, device.g_max, reference.n_devices)
              for layer in reference.layers]
    fractions = np.logspace(-2.0, 0.0, args.points)
    rows = []
    for f in fractions:
        machine = BayesianMachine(model, hw.model_copy(update={
            "alpha": [float(f * lim) for lim in limits]}), warn=False, calibration=calibration)
        layers = machine.realised()["layers"]
        accuracy, auroc = evaluate(machine, x, y, ood, args.samples)
        rows.append({"fraction": float(f), "accuracy": accuracy, "auroc_epistemic": auroc,
                     "layers": [{k: layer[k] for k in ("bias_median", "std_ratio_median",
                                                       "w2_median")} for layer in layers]})
        print(f"f = {f:.3g}: accuracy {accuracy:.3f}, AUROC MI {auroc:.3f}, W2/σ "
              f"{[round(layer['w2_median'], 2) for layer in layers]}", flush=True)
    chosen = {}
    for policy in ("distance", "feasibility", "max"):
        machine = BayesianMachine(model, hw.model_copy(update={"alpha_policy": policy}),
                                  warn=False, calibration=calibration)
        chosen[policy] = [float(np.asarray(layer.pairs.alpha).mean() / lim)
                          for layer, lim in zip(machine.layers, limits, strict=True)]
    software = evaluate(SoftwarePredictor(model), x, y, ood, args.samples)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"hardware": hw.model_dump(mode="json"), "rows": rows, "chosen_fraction": chosen,
         "software": {"accuracy": software[0], "auroc_epistemic": software[1]},
         "samples": args.samples, "images": args.images}, indent=1))
    plot(rows, chosen, software, hw, out)


def plot(rows, chosen, software, hw: HardwareConfig, out: Path) -> None:
    f = np.array([r["fraction"] for r in rows])
    n_layers = len(rows[0]["layers"])
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), constrained_layout=True)
    panels = (("bias_median", "median bias |m − μ|/σ"), ("std_ratio_median", "median s/σ"),
              ("w2_median", "median W₂/σ"))
    colours = plt.cm.viridis(np.linspace(0, 0.9, n_layers))
    for ax, (key, label) in zip(axes, panels, strict=False):
        for k in range(n_layers):
            ax.plot(f, [r["layers"][k][key] for r in rows], "o-", ms=3, color=colours[k],
                    label=f"layer {k}")
        ax.set_xscale("log")
        ax.set_yscale("log" if key != "std_ratio_median" else "linear")
        ax.set_xlabel("α / largest α that fits μ")
        ax.set_ylabel(label)
        if key == "std_ratio_median":
            ax.axhline(1.0, color="k", lw=0.8, ls=":")
    axes[0].legend(fontsize=7)
    ax = axes[3]
    ax.plot(f, [r["accuracy"] for r in rows], "o-", ms=3, label="accuracy")
    ax.plot(f, [r["auroc_epistemic"] for r in rows], "s-", ms=3, label="AUROC MI")
    ax.axhline(software[0], color="C0", lw=0.8, ls=":")
    ax.axhline(software[1], color="C1", lw=0.8, ls=":", label="software")
    ax.set_xscale("log")
    ax.set_xlabel("α / largest α that fits μ")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    styles = {"distance": "-", "feasibility": "--", "max": ":"}
    for ax in axes:
        for policy, fractions in chosen.items():
            ax.axvline(float(np.median(fractions)), color="grey", lw=1.0, ls=styles[policy])
    fig.suptitle(f"{hw.device}, {hw.mapping}: the α trade (vertical lines: median α chosen by "
                 f"the 'distance' —, 'feasibility' – – and 'max' ··· policies)", fontsize=9)
    fig.savefig(out, dpi=130)


if __name__ == "__main__":
    main()
