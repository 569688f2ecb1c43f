"""Energy and latency of the demo's four predictors (docs/results/cost.md): the trained fp32
LeNet-5 and its digital JQ-4 copy of ``bayesim demo --out DIR``, priced by the cost model with
the default cards, S = the demo's eval.n_samples, one input per inference; the two analog chips
compiled as the demo compiles them (pipeline.DEMO_ANALOG, calibration inputs included).

    python experiments/demo_cost.py runs/demo
"""

import json
import sys
import warnings
from pathlib import Path

from bayesim.config import ExperimentConfig, validate
from bayesim.cost import digital_cost, machine_cost
from bayesim.data import build_benchmark
from bayesim.machine import BayesianMachine, ChipWarning
from bayesim.pipeline import DEMO_ANALOG, calibration_inputs, load_model


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
    warnings.simplefilter("ignore", ChipWarning)
    model, meta = load_model(run / "model.safetensors")
    digital, _ = load_model(run / "digital" / "model.safetensors")
    config = validate(ExperimentConfig, meta["experiment"], str(run))
    bench = build_benchmark(config.data, config.seed)
    x, n = bench.test["clean"].x, config.eval.n_samples
    rows = {"fp32": digital_cost(model, None, n, config.cost, x),
            "digital JQ-4": digital_cost(digital, 4, n, config.cost, x)}
    for name, change in DEMO_ANALOG.items():
        hw = config.hardware.model_copy(update=change)
        machine = BayesianMachine.compile(model, hw, calibration=calibration_inputs(bench))
        rows[name] = machine_cost(machine, n, config.cost, x)
    print(json.dumps({"S": n, **{k: {
        "energy_per_inference_J": v["energy_per_inference_J"],
        "latency_per_inference_s": v["latency_per_inference_s"],
        "by_component_per_sample_J": v["energy_per_sample_by_component_J"],
        "programming_once_J": v.get("programming_once_J")} for k, v in rows.items()}},
        indent=1))


if __name__ == "__main__":
    main()
