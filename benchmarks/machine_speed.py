"""Monte-Carlo inference speed of the Bayesian machine against its floor and against aihwkit,
measured side by side in one run (issue 7; docs/performance.md).

    python benchmarks/machine_speed.py [--out runs/bench] [--samples 10 100] [--quick]

On an MLP 784-512-512-10 and LeNet-5 (and the ResNet-8 with --models resnet; mean-field, freshly
initialised: timings do not depend on training), batch 256, for each S:

  (a) floor: the noise-free fp32 forward (torch, μ weights) repeated S times;
  (b) software: fp32 BNN sampling (SoftwarePredictor, S fresh weight samples);
  (c) machine: M1 per-read noise on ``pcm_ibm_2020``, 8-bit DAC and ADC (aihwkit_standard_io),
      512 × 512 tiles, fast (output-referred) read path;
  (d) the same machine with the explicit per-device read path;
  (e) aihwkit 1.1.0 ``TorchInferenceRPUConfig`` with its PCMLikeNoiseModel, 8-bit DAC/ADC,
      512 × 512 tiles: ``program_analog_weights`` + ``drift_analog_weights`` per fresh sample,
      then the forward.

Compilation (mapping and programming of the chip) is done once before timing and reported apart.
(a), (b) and (c) run in turn for ``--repeats`` rounds after a warm-up round; times are medians,
ratios the medians of the per-round ratios (with their range). (d) and (e) run once each.
The JSON (``OUT/machine_speed.json``) holds the times, the ratios (c)/(a), (c)/(b), (d)/(a),
(e)/(c), and the scaling of (c) with S, batch and tile size on the MLP, drawn in
``OUT/machine_speed.png``/``.pdf``. Peak memory against S is measured by
benchmarks/machine_memory.py (a fresh process per S).
Timings are never asserted in tests; run this on the machine you want numbers for.
"""

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numba
import torch
from timing import interleaved, median_seconds
from torch import nn

from bayesim.bnn.layers import BayesConv2d, BayesLinear, sampling
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.evaluate import SoftwarePredictor
from bayesim.machine import BayesianMachine, HardwareConfig

MODELS = {"mlp": {"arch": "mlp", "hidden": [512, 512]}, "lenet5": {"arch": "lenet5"},
          "resnet": {"arch": "resnet"}}
"""The residual network (ResNet-8, 16-32-64 channels) is not in the default run (--models)."""


MAPPING: dict[str, str] = {}
"""``alpha_policy`` and ``tile_scaling`` of the machine (--alpha-policy, --tile-scaling); empty:
the machine's defaults."""


def machine_config(read_path: str = "fast", tile: int = 512, batch: int = 256) -> HardwareConfig:
    """The issue's machine (c)/(d): M1, pcm_ibm_2020, 8-bit DAC/ADC, ``tile``² tiles. The α
    policy decides how much of the ADC's range the outputs use, and with it how often bound
    management re-reads a row: the same chip work needs the same policy (``--alpha-policy
    feasibility --tile-scaling per_tile`` is the mapping of the benchmark's runs before the
    trustworthy-chip issue)."""
    return HardwareConfig(device="pcm_ibm_2020", mapping="M1", periphery="aihwkit_standard_io",
                          dac_bits=8, adc_bits=8, max_in=tile, max_out=tile,
                          read_path=read_path, batch_size=batch, decomposition_inputs=0,
                          **MAPPING)


def plain_copy(model: nn.Module) -> nn.Module:
    """A copy of the model (its own forward kept) with each Bayesian layer replaced by its torch
    layer holding μ."""
    memo: dict[int, nn.Module] = {}
    for module in model.modules():
        if isinstance(module, BayesConv2d):
            out_c, in_c, k, _ = module.weight_mu.shape
            plain: nn.Module = nn.Conv2d(in_c, out_c, k, stride=module.stride,
                                         padding=module.padding, bias=module.bias_mu is not None)
        elif isinstance(module, BayesLinear):
            out_f, in_f = module.weight_mu.shape
            plain = nn.Linear(in_f, out_f, bias=module.bias_mu is not None)
        else:
            continue
        with torch.no_grad():
            plain.weight.copy_(module.weight_mu)
            if module.bias_mu is not None:
                plain.bias.copy_(module.bias_mu)
        memo[id(module)] = plain
    return copy.deepcopy(model, memo).eval()


def aihwkit_sampler(model: nn.Module, tile: int):
    """(e): a function drawing S fresh aihwkit weight samples (program + drift + forward)."""
    from aihwkit.inference import PCMLikeNoiseModel
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    config = TorchInferenceRPUConfig()
    config.noise_model = PCMLikeNoiseModel()
    config.forward.inp_res = 1.0 / (2 ** 8 - 2)
    config.forward.out_res = 1.0 / (2 ** 8 - 2)
    config.forward.out_bound = 10.0
    config.forward.out_noise = 0.04
    config.mapping.max_input_size = tile
    config.mapping.max_output_size = tile
    analog = convert_to_analog(plain_copy(model), config).eval()

    def run(x: torch.Tensor, n_samples: int) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for _ in range(n_samples):
                analog.program_analog_weights()
                analog.drift_analog_weights(20.0)  # t0 of the card: no drift, fresh 1/f draw
                out.append(torch.softmax(analog(x), dim=-1))
        return torch.stack(out)

    return run


def measure_rounds(name: str, samples: list[int], repeats: int, batch: int = 256) -> dict:
    """(a), (b), (c) on one model, in turn for ``repeats`` rounds per S: ratios are medians of
    per-round ratios."""
    model = build_model(ModelConfig(**MODELS[name]), seed=0).eval()
    x = torch.randn(batch, 1, 28, 28)
    software = SoftwarePredictor(model, batch_size=batch)
    start = time.perf_counter()
    fast = BayesianMachine.compile(model, machine_config("fast", batch=batch))
    compile_s = time.perf_counter() - start

    def floor(n: int) -> None:
        with torch.no_grad(), sampling(model, "mean"):
            for _ in range(n):
                torch.softmax(model(x), dim=-1)

    rows = []
    for n in samples:
        row = {"model": name, "batch": batch, "samples": n, "compile_s": compile_s}
        times = interleaved({"a": lambda n=n: floor(n),
                             "b": lambda n=n: software.sample_probs(x, n, 0),
                             "c": lambda n=n: fast.sample_probs(x, n, 0)}, repeats)
        row["a_floor_s"] = statistics.median(times["a"])
        row["b_software_s"] = statistics.median(times["b"])
        row["c_machine_fast_s"] = statistics.median(times["c"])
        c_over_a = [c / a for a, c in zip(times["a"], times["c"], strict=True)]
        row["c_over_a"] = statistics.median(c_over_a)
        row["c_over_a_range"] = [min(c_over_a), max(c_over_a)]
        row["c_over_b"] = statistics.median(
            [c / b for b, c in zip(times["b"], times["c"], strict=True)])
        rows.append(row)
    return {"rows": rows, "model": model, "x": x}


def measure_slow(result: dict, with_explicit: bool, with_aihwkit: bool) -> None:
    """(d) and (e), once each per S, after every model's rounds: importing aihwkit loads its
    own C++ runtime, whose threads slowed the machine by up to 40 % when it was loaded before."""
    model, x = result.pop("model"), result.pop("x")
    batch = x.shape[0]
    explicit = (BayesianMachine.compile(model, machine_config("explicit", batch=batch))
                if with_explicit else None)
    aihwkit = aihwkit_sampler(model, 512) if with_aihwkit else None
    for row in result["rows"]:
        n = row["samples"]
        if explicit is not None:
            row["d_machine_explicit_s"] = median_seconds(
                lambda n=n: explicit.sample_probs(x, n, 0), 1)
            row["d_over_a"] = row["d_machine_explicit_s"] / row["a_floor_s"]
        if aihwkit is not None:
            row["e_aihwkit_s"] = median_seconds(lambda n=n: aihwkit(x, n), 1)
            row["e_over_c"] = row["e_aihwkit_s"] / row["c_machine_fast_s"]
        print(_line(row), flush=True)


def _line(row: dict) -> str:
    parts = [f"{row['model']:7s} S={row['samples']:4d}",
             f"(a) {row['a_floor_s'] * 1e3:8.1f} ms", f"(b) {row['b_software_s'] * 1e3:8.1f} ms",
             f"(c) {row['c_machine_fast_s'] * 1e3:8.1f} ms"]
    if "d_machine_explicit_s" in row:
        parts.append(f"(d) {row['d_machine_explicit_s'] * 1e3:8.1f} ms")
    if "e_aihwkit_s" in row:
        parts.append(f"(e) {row['e_aihwkit_s'] * 1e3:9.1f} ms")
    low, high = row["c_over_a_range"]
    parts += [f"c/a {row['c_over_a']:5.2f} ({low:.2f}-{high:.2f})", f"c/b {row['c_over_b']:5.2f}"]
    if "d_over_a" in row:
        parts.append(f"d/a {row['d_over_a']:5.1f}")
    if "e_over_c" in row:
        parts.append(f"e/c {row['e_over_c']:6.1f}")
    return "  ".join(parts)


def scaling(repeats: int, quick: bool) -> dict:
    """(c) on the MLP against S, batch and tile size (one varied, the others at 100/256/512)."""
    model = build_model(ModelConfig(**MODELS["mlp"]), seed=0).eval()
    out: dict[str, list] = {"samples": [], "batch": [], "tile": []}
    s_values = [10, 30, 100] if quick else [10, 30, 100, 300]
    machine = BayesianMachine.compile(model, machine_config())
    x = torch.randn(256, 1, 28, 28)
    for n in s_values:
        out["samples"].append((n, median_seconds(lambda n=n: machine.sample_probs(x, n, 0),
                                                 repeats)))
    for batch in ([64, 256, 1024] if quick else [32, 64, 128, 256, 512, 1024]):
        m = BayesianMachine.compile(model, machine_config(batch=batch))
        xb = torch.randn(batch, 1, 28, 28)
        out["batch"].append((batch, median_seconds(lambda m=m, xb=xb: m.sample_probs(xb, 30, 0),
                                                   repeats)))
    for tile in ([128, 256, 512] if quick else [64, 128, 256, 512]):
        m = BayesianMachine.compile(model, machine_config(tile=tile))
        out["tile"].append((tile, median_seconds(lambda m=m: m.sample_probs(x, 30, 0), repeats)))
    return out


def plot_scaling(result: dict, stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    specs = [("samples", "Monte-Carlo samples S (batch 256, 512² tiles)", "per sample"),
             ("batch", "batch (S = 30, 512² tiles)", "per image and sample"),
             ("tile", "tile size (inputs = outputs; S = 30, batch 256)", "per sample")]
    for ax, (key, label, _) in zip(axes, specs, strict=True):
        xs = [p[0] for p in result[key]]
        ys = [p[1] for p in result[key]]
        ax.plot(xs, ys, marker="o")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log" if max(ys) / min(ys) >= 10 else "linear")
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.minorticks_off()
        ax.set_xlabel(label)
        ax.set_ylabel("wall time (s)")
        ax.grid(alpha=0.3)
    fig.suptitle("Machine (c): MLP 784-512-512-10, M1 pcm_ibm_2020, 8-bit DAC/ADC, fast path",
                 fontsize=10)
    fig.tight_layout()
    paths = []
    for suffix in (".png", ".pdf"):
        path = stem.with_suffix(suffix)
        fig.savefig(path, dpi=130)
        paths.append(path)
    plt.close(fig)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--samples", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet5"], choices=list(MODELS))
    parser.add_argument("--no-aihwkit", action="store_true")
    parser.add_argument("--no-explicit", action="store_true", help="skip (d), the slow path")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling plot")
    parser.add_argument("--quick", action="store_true", help="fewer scaling points")
    parser.add_argument("--alpha-policy", choices=["distance", "feasibility", "max"])
    parser.add_argument("--tile-scaling", choices=["physical", "per_tile"])
    args = parser.parse_args()
    if args.alpha_policy:
        MAPPING["alpha_policy"] = args.alpha_policy
    if args.tile_scaling:
        MAPPING["tile_scaling"] = args.tile_scaling
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"threads": {"torch": torch.get_num_threads(), "numba": numba.get_num_threads()},
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "torch": torch.__version__, "machine": machine_config().model_dump(mode="json"),
              "models": {}}
    for name in args.models:
        result["models"][name] = measure_rounds(name, args.samples, args.repeats)
    if not args.no_scaling:  # before aihwkit is loaded
        result["scaling_mlp"] = scaling(max(1, args.repeats // 2), args.quick)
    for name in args.models:
        measure_slow(result["models"][name], not args.no_explicit, not args.no_aihwkit)
    if not args.no_scaling:
        for path in plot_scaling(result["scaling_mlp"], out / "machine_speed"):
            print(f"plot: {path}")
    (out / "machine_speed.json").write_text(json.dumps(result, indent=1))
    print(f"json: {out / 'machine_speed.json'}")


if __name__ == "__main__":
    main()
