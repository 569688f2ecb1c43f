"""A trained checkpoint on the exact chip (M0, one weight draw per sample, ideal periphery)
against software sampling: the fraction of mean class probabilities within 4 standard errors of
their difference (the bring-your-own-BNN criterion: ≥ 99 %).

    python experiments/exact_chip_check.py runs/resnet/model.safetensors [N_IMAGES] [S]
"""

import json
import sys
import warnings

import torch

from bayesim.config import ExperimentConfig, validate
from bayesim.data import build_benchmark
from bayesim.evaluate import SoftwarePredictor
from bayesim.machine import BayesianMachine, ChipWarning, HardwareConfig
from bayesim.pipeline import load_model


def main() -> None:
    path = sys.argv[1]
    n_images = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    n_samples = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    model, meta = load_model(path)
    config = validate(ExperimentConfig, meta["experiment"], path)
    x = build_benchmark(config.data, config.seed).test["clean"].x[:n_images]
    software = SoftwarePredictor(model).sample_probs(x, n_samples, seed=1)
    warnings.simplefilter("ignore", ChipWarning)
    exact = HardwareConfig(mapping="M0", m0_sampling="per_sample", periphery="ideal")
    chip = BayesianMachine.compile(model, exact).sample_probs(x, n_samples, seed=2)
    se = torch.sqrt(software.var(0) / n_samples + chip.var(0) / n_samples).clamp_min(1e-7)
    z = (software.mean(0) - chip.mean(0)).abs() / se
    print(json.dumps({"checkpoint": path, "images": n_images, "samples": n_samples,
                      "outputs": int(z.numel()),
                      "fraction_within_4se": float((z <= 4).float().mean()),
                      "max_z": float(z.max())}))


if __name__ == "__main__":
    main()
