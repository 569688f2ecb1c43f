"""The chip's own draws against its realised-posterior report, on a trained model: for every
mapping M0–M4 on ``pcm_ibm_2020`` and ``rram_lin2023``, at t₀ and at 1 h, draw ``--draws``
weight samples of every layer (BayesianMachine.weight_draws) and count the weights whose draw
mean and draw std lie within 3 standard errors of the reported realised mean and std
(bayesim.machine.realised). The standard errors are the draws' (s/√n for the mean; the delta
method with the draws' own fourth moment for the std) plus, for M2, the report's own.

    python experiments/realised_check.py --checkpoint runs/lenet/model.safetensors \
        [--draws 1000] [--out runs/realised_check.json]

Prints one line per (card, mapping, time) with the fractions and the worst layer's verdict;
rram_lin2023 has no time data, so its 1 h rows run with allow_extrapolation (its laws do not
change with time).
"""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from bayesim.machine import BayesianMachine, ChipWarning, HardwareConfig
from bayesim.machine.realised import draws_within
from bayesim.pipeline import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", default="runs/realised_check.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ChipWarning)
    model, _ = load_model(args.checkpoint)  # no calibration: α by the assumed row statistics
    rows = []
    for card in ("pcm_ibm_2020", "rram_lin2023"):
        for mapping in ("M0", "M1", "M2", "M3", "M4"):
            for t in (0.0, 3600.0):
                hw = HardwareConfig(device=card, mapping=mapping, drift_time=t,
                                    allow_extrapolation=card == "rram_lin2023")
                machine = BayesianMachine(model, hw, warn=False)
                counts = np.zeros(3, dtype=np.int64)
                for index in range(len(machine.layers)):
                    draws = machine.weight_draws(index, args.draws, seed=1)
                    ok_m, ok_s = draws_within(draws, machine.realised_posterior(index))
                    counts += (draws[0].size, ok_m, ok_s)
                report = machine.realised()
                row = {"card": card, "mapping": mapping, "drift_time": t,
                       "weights": int(counts[0]), "mean_within_3se": counts[1] / counts[0],
                       "std_within_3se": counts[2] / counts[0],
                       "worst_layer": report["worst_layer"], "verdict": report["verdict"],
                       "w2_median_worst": report["w2_median_worst"]}
                rows.append(row)
                print(f"{card:14s} {mapping} t={t:6.0f} s: mean {row['mean_within_3se']:.4f}, "
                      f"std {row['std_within_3se']:.4f} of {row['weights']} weights within 3 SE; "
                      f"worst layer {row['worst_layer']} {row['verdict']} "
                      f"(W₂/σ {row['w2_median_worst']:.2f})", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"draws": args.draws, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
