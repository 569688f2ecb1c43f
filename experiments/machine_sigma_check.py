"""Per-weight standard deviation over repeated reads of one programmed chip vs the target σ.

    python experiments/machine_sigma_check.py --checkpoint runs/lenet/model.safetensors \\
        [--device pcm_ibm_2020] [--mapping M1] [--reads 2000]

Compiles the checkpoint (M1 or M4, common mode on, no DAC/ADC quantization and no output noise,
so that a read of a one-hot input returns one column of weights plus its read noise), reads every
layer ``--reads`` times with one-hot inputs and compares each weight's measured std with the
target σ of the posterior, for the weights the feasibility report calls feasible (the report of
this programmed chip: programming noise moves the conductances and with them the per-read σ).
The std of a std estimated from R reads has a relative standard error of 1/sqrt(2(R − 1)).
"""

import argparse
import json
import math

import numpy as np

from bayesim.machine import BayesianMachine, HardwareConfig
from bayesim.pipeline import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--device", default="pcm_ibm_2020")
    parser.add_argument("--mapping", default="M1", choices=["M1", "M4"])
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    model, _ = load_model(args.checkpoint)
    hw = HardwareConfig(device=args.device, mapping=args.mapping, dac_bits=0, adc_bits=0,
                        out_noise=0.0, periphery="aihwkit_default")
    machine = BayesianMachine.compile(model, hw)
    rows = []
    for layer in machine.layers:
        n_out, n_in = layer.shape
        eye = np.eye(n_in, dtype=np.float32)
        total = np.zeros((n_out, n_in))
        total_sq = np.zeros((n_out, n_in))
        for s in range(args.reads):
            y = machine._matrices(s, 12345)[layer.index].mvm(eye, sample=s).T.astype(np.float64)
            total += y
            total_sq += y * y
        mean = total / args.reads
        std = np.sqrt(np.maximum(total_sq - args.reads * mean * mean, 0) / (args.reads - 1))
        target = layer.sigma
        realised = machine.realised_sigma(layer)  # this programmed chip
        feasible = np.abs(realised / target - 1) <= 0.10
        exact = np.abs(realised / target - 1) <= 0.01
        rel = std[feasible] / target[feasible] - 1
        rel_exact = std[exact] / target[exact] - 1
        rel_chip = std[feasible] / realised[feasible] - 1
        rows.append({"layer": layer.index, "weights": int(target.size),
                     "feasible": float(feasible.mean()),
                     "within_5pct_of_target": float(np.mean(np.abs(rel) <= 0.05)),
                     "median_abs_rel_error": float(np.median(np.abs(rel))),
                     "realised_within_1pct": float(exact.mean()),
                     "those_within_5pct_of_target": float(np.mean(np.abs(rel_exact) <= 0.05)),
                     "within_5pct_of_reported_sigma": float(np.mean(np.abs(rel_chip) <= 0.05))})
        print(json.dumps(rows[-1]), flush=True)
    se = 1 / math.sqrt(2 * (args.reads - 1))
    print(f"relative standard error of one std estimate: {se:.4f}")


if __name__ == "__main__":
    main()
