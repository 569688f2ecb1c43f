"""The shipped chips on a posterior bayesim did not train: the wide-σ LeNet-5 of tests/foreign.py
(σ over three decades in every layer, σ > |μ| for 75 % of the 400 → 120 layer, biases of ±10),
against software sampling of the same posterior.

    python experiments/foreign_check.py [--samples 100] [--out runs/foreign_check.json]

For software, the shipped configs (experiments/machine_rram.toml, machine_pcm.toml) and, for
contrast, the same cards under the α policy that ignored the frozen programming error (the old
default, 'feasibility'): accuracy and NLL on the 200 held-out bar images ("digits": horizontal
bars), and the AUROC of mutual information separating them from 200 out-of-distribution images
(vertical bars, tests/conftest.py "garments"), plus the realised-posterior verdict of the worst
layer. Runs in about a minute on 2 cores.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayesim.config import load_config  # noqa: E402
from bayesim.evaluate import SoftwarePredictor  # noqa: E402
from bayesim.machine import BayesianMachine, ChipWarning, HardwareConfig  # noqa: E402
from bayesim.metrics import auroc, mutual_information  # noqa: E402
from tests.conftest import synthetic_images  # noqa: E402
from tests.foreign import posterior_facts, wide_posterior_lenet  # noqa: E402


def _shipped(name: str, **overrides) -> HardwareConfig:
    return load_config(ROOT / "experiments" / name).hardware.model_copy(update=overrides)


def _scores(predictor, x, y, x_ood, samples: int) -> dict[str, float]:
    probs = predictor.sample_probs(x, samples, seed=0)
    probs_ood = predictor.sample_probs(x_ood, samples, seed=1)
    mean = probs.mean(0)
    nll = -torch.log(mean[torch.arange(len(y)), y].clamp_min(1e-12)).mean()
    return {"accuracy": float((mean.argmax(-1) == y).double().mean()), "nll": float(nll),
            "auroc_mi": auroc(mutual_information(probs), mutual_information(probs_ood)),
            "mi_in": float(mutual_information(probs).mean()),
            "mi_ood": float(mutual_information(probs_ood).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--out", default="runs/foreign_check.json")
    args = parser.parse_args()
    model, x, y = wide_posterior_lenet()
    images, _ = synthetic_images(200, "garments", 99)
    x_ood = torch.from_numpy(images).float().div(255).unsqueeze(1)
    chips = {"machine_rram.toml (M4, distance α)": _shipped("machine_rram.toml"),
             "machine_pcm.toml (M3, distance α)": _shipped("machine_pcm.toml"),
             "RRAM M4, feasibility α (old default)":
                 _shipped("machine_rram.toml", alpha_policy="feasibility"),
             "PCM M1, feasibility α (old default)":
                 _shipped("machine_pcm_m1.toml", alpha_policy="feasibility")}
    rows = [{"predictor": "software", **_scores(SoftwarePredictor(model), x, y, x_ood,
                                                args.samples)}]
    for name, hw in chips.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChipWarning)
            machine = BayesianMachine.compile(model, hw)
        report = machine.realised()
        rows.append({"predictor": name, **_scores(machine, x, y, x_ood, args.samples),
                     "verdict": report["verdict"], "worst_layer": report["worst_layer"],
                     "w2_median_worst": report["w2_median_worst"]})
    print(f"{'predictor':40s} {'acc':>6s} {'NLL':>6s} {'AUROC MI':>8s} {'MI in':>7s} "
          f"{'MI OOD':>7s}  worst layer")
    for row in rows:
        tail = (f"  {row['worst_layer']} {row['verdict']} (W₂/σ {row['w2_median_worst']:.2f})"
                if "verdict" in row else "")
        print(f"{row['predictor']:40s} {row['accuracy']:6.3f} {row['nll']:6.3f} "
              f"{row['auroc_mi']:8.3f} {row['mi_in']:7.4f} {row['mi_ood']:7.4f}{tail}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"samples": args.samples, "posterior": posterior_facts(model),
                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
