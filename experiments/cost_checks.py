"""The cost model's numbers beside published ones (docs/cost.md, "Checks against published
figures"): energy per Gaussian sample, per image of a Bayesian MLP on MNIST, and the analog/digital
ratio per inference, for bayesim's MLP 784-512-512-10 and LeNet-5 (freshly initialised: the
energies depend on the shapes and on the mapped conductances, not on training quality).

    python experiments/cost_checks.py [S]
"""

import json
import sys
import warnings

import torch

from bayesim.bnn.models import ModelConfig, build_model
from bayesim.cost import CostConfig, digital_cost, load_cost_card, machine_cost
from bayesim.machine import BayesianMachine, ChipWarning, HardwareConfig
from bayesim.quant.strategies import QuantConfig, quantize_model


def main() -> None:
    n_samples = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    warnings.simplefilter("ignore", ChipWarning)
    x = torch.rand(1, 1, 28, 28)
    card = load_cost_card("digital_45nm", "digital")
    out: dict = {"S": n_samples, "gaussian_sample_J": card.get("energy.gaussian_sample")}
    for arch, cfg in (("mlp", ModelConfig(arch="mlp", hidden=[512, 512])),
                      ("lenet5", ModelConfig(arch="lenet5"))):
        model = build_model(cfg, 0).eval()
        jq4 = quantize_model(model, QuantConfig(strategy="JQ", bits=4))
        row = {"fp32": digital_cost(model, None, n_samples, CostConfig(), x),
               "digital JQ-4": digital_cost(jq4, 4, n_samples, CostConfig(), x)}
        for label, hw in (("PCM M3", HardwareConfig(mapping="M3")),
                          ("PCM M1", HardwareConfig(mapping="M1")),
                          ("RRAM M4", HardwareConfig(mapping="M4", device="rram_lin2023")),
                          ("PCM M2", HardwareConfig(mapping="M2"))):
            row[label] = machine_cost(BayesianMachine.compile(model, hw), n_samples,
                                      CostConfig(), x)
        out[arch] = {k: {"energy_per_inference_J": v["energy_per_inference_J"],
                         "latency_per_inference_s": v["latency_per_inference_s"],
                         "by_component_per_sample_J": v["energy_per_sample_by_component_J"]}
                     for k, v in row.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
