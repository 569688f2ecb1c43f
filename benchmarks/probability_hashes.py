"""Hashes of the machine's Monte-Carlo probabilities for bayesim's MLP and LeNet-5 under every
mapping, a quantized model, AR(1) reads, the explicit read path, calibration inputs and small
tiles: run it before and after a change to the read path and compare the two outputs line by line
(equal hashes = bit-identical probabilities). Not a test: bit patterns depend on the CPU's BLAS.

    python benchmarks/probability_hashes.py > before.txt   # on the old commit
    python benchmarks/probability_hashes.py > after.txt    # on the new one
    diff before.txt after.txt
"""

import hashlib
import warnings

import torch

from bayesim.bnn.layers import bayesian_layers
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.machine import BayesianMachine, ChipWarning, HardwareConfig
from bayesim.quant.strategies import QuantConfig, quantize_model

CASES: list[tuple[str, dict]] = [
    ("M0 per_read", {"mapping": "M0"}),
    ("M0 per_sample", {"mapping": "M0", "m0_sampling": "per_sample"}),
    ("M1", {"mapping": "M1"}),
    ("M1 AR(1) 0.5", {"mapping": "M1", "read_correlation": 0.5}),
    ("M2", {"mapping": "M2"}),
    ("M3", {"mapping": "M3", "copies": 4}),
    ("M4 AR(1) 0.3", {"mapping": "M4", "read_correlation": 0.3}),
    ("M1 aihwkit_default", {"mapping": "M1", "periphery": "aihwkit_default"}),
    ("M1 explicit", {"mapping": "M1", "read_path": "explicit"}),
    ("M3 tiles 64x32", {"mapping": "M3", "copies": 2, "max_in": 64, "max_out": 32}),
    ("M1 RRAM", {"mapping": "M1", "device": "rram_neurram_2022"}),
]


def model(arch: str) -> torch.nn.Module:
    m = build_model(ModelConfig(arch=arch, hidden=[64, 32]), seed=3)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in bayesian_layers(m):
            layer.weight_rho.copy_(torch.empty_like(layer.weight_rho).uniform_(-6, -3,
                                                                               generator=g))
    return m.eval()


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16]


def main() -> None:
    torch.manual_seed(0)
    x = torch.rand(24, 1, 28, 28)
    calibration = torch.rand(16, 1, 28, 28)
    warnings.simplefilter("ignore", ChipWarning)
    for arch in ("mlp", "lenet5"):
        models = {"fp": model(arch)}
        models["JQ-4"] = quantize_model(models["fp"], QuantConfig(strategy="JQ", bits=4))
        for quant, m in models.items():
            for name, fields in CASES:
                hw = HardwareConfig(**{"batch_size": 10, **fields})
                machine = BayesianMachine.compile(m, hw)
                probs = machine.sample_probs(x, 6, seed=11)
                later = machine.sample_probs(x, 3, seed=11, sample_offset=4)
                print(f"{arch:6s} {quant:4s} {name:20s} {digest(probs)} {digest(later)}")
        calibrated = BayesianMachine.compile(models["fp"], HardwareConfig(mapping="M1"),
                                             calibration=calibration)
        print(f"{arch:6s} fp   M1 calibrated        "
              f"{digest(calibrated.sample_probs(x, 4, seed=2))}")


if __name__ == "__main__":
    main()
