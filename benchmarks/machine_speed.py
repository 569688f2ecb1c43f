"""Monte-Carlo inference speed of the Bayesian machine against its floors and against aihwkit, on
equal work, measured side by side in one run (issues 7 and 19; docs/performance.md).

    python benchmarks/machine_speed.py [--out runs/bench] [--samples 10 100] [--repeats 3]

On an MLP 784-512-512-10, LeNet-5 and the ResNet-8 (16-32-64 channels) (``--models``;
mean-field, freshly initialised: timings do not depend on training), batch 256, for each S:

  (a)  floor: the noise-free fp32 forward (torch, μ weights) repeated S times — the Bayesian
       model's own layers at their mean, so it is what a user's model costs without noise;
  (a1) the floor that computes the first layer once per batch, as the machine does (its first
       layer's input is the same for every sample); it runs a copy with plain nn.Linear/Conv2d
       layers at μ (_Once needs a layer to wrap), not the Bayesian layers of (a);
  (b)  software: fp32 BNN sampling (SoftwarePredictor, S fresh weight samples);
  (c)  machine, numba backend: M1 per-read noise on ``pcm_ibm_2020``, 8-bit DAC and ADC
       (aihwkit_standard_io), 512 × 512 tiles, fast (output-referred) read path;
  (ct) the same machine on the torch backend (CPU here; the device with --torch-device);
  (d)  the numba machine with the explicit per-device read path (--explicit: slow);
  (e)  aihwkit 1.1.0 ``TorchInferenceRPUConfig`` with its PCMLikeNoiseModel, 8-bit DAC/ADC,
       512 × 512 tiles, one fresh weight sample per Monte-Carlo sample:
       ``program_analog_weights`` + ``drift_analog_weights`` + the forward;
  (f)  aihwkit's cheapest noisy inference on the same model and periphery: weights programmed
       once, then S forwards with output noise only (no fresh weight sample).

(e)/(c) compares the cost per fresh posterior sample; (c)/(f) is what drawing a posterior sample
on every read costs over aihwkit's fixed-weight noisy forward.

Compilation (mapping and programming of the chip) is done once before timing and reported apart.
Two phases, each ``--repeats`` rounds in turn per S; times are medians, ratios the medians of the
per-round ratios with their range over the rounds:
  first, every model before aihwkit is imported: (a), (a1), (b), (c) (after a warm-up round);
  then, every model with aihwkit loaded: (a), (c), (ct), (e), (f) (after a one-sample warm-up),
  so each ratio of (ct), (e) or (f) compares times taken under the same conditions (aihwkit's
  runtime, once loaded, slowed the numba machine by up to 40 % in earlier runs; both phases' (a)
  and (c) are in the JSON). (d) runs once per S. Throughput: images × samples per second of
  (a), (c) and (ct) on
``--throughput-images`` images at S = 10 (the batches of a test set, as evaluation runs them).
The JSON (``OUT/machine_speed.json``) holds every time and ratio; ``OUT/machine_speed.png``/
``.pdf`` draws the ratios to the floor, per model, backend and S. Peak memory against S is
measured by benchmarks/machine_memory.py (a fresh process per S).
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
from timing import interleaved, median_seconds, once_seconds
from torch import nn

from bayesim.bnn.layers import BayesConv2d, BayesLinear, sampling
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.evaluate import SoftwarePredictor
from bayesim.machine import BayesianMachine, HardwareConfig

MODELS = {"mlp": {"arch": "mlp", "hidden": [512, 512]}, "lenet5": {"arch": "lenet5"},
          "resnet": {"arch": "resnet"}}
LABELS = {"mlp": "MLP 784-512-512-10", "lenet5": "LeNet-5", "resnet": "ResNet-8"}


MAPPING: dict[str, str] = {}
"""``alpha_policy`` and ``tile_scaling`` of the machine (--alpha-policy, --tile-scaling); empty:
the machine's defaults."""


def machine_config(read_path: str = "fast", tile: int = 512, batch: int = 256,
                   backend: str = "numba", torch_device: str = "cpu") -> HardwareConfig:
    """The issue's machine (c)/(ct)/(d): M1, pcm_ibm_2020, 8-bit DAC/ADC, ``tile``² tiles. The
    α policy decides how much of the ADC's range the outputs use, and with it how often bound
    management re-reads a row: the same chip work needs the same policy (``--alpha-policy
    feasibility --tile-scaling per_tile`` is the mapping of the benchmark's runs before the
    trustworthy-chip issue)."""
    return HardwareConfig(device="pcm_ibm_2020", mapping="M1", periphery="aihwkit_standard_io",
                          dac_bits=8, adc_bits=8, max_in=tile, max_out=tile,
                          read_path=read_path, batch_size=batch, decomposition_inputs=0,
                          backend=backend, torch_device=torch_device, **MAPPING)


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


class _Once(nn.Module):
    """A layer whose output is computed on the first call and returned again afterwards (until
    :meth:`forget`): the first layer of floor (a1)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.kept: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kept is None:
            self.kept = self.layer(x)
        return self.kept

    def forget(self) -> None:
        self.kept = None


def first_layer_once(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, _Once]:
    """(a1)'s network: ``plain_copy(model)`` with the first Linear/Conv2d its forward calls
    wrapped in :class:`_Once`."""
    plain = plain_copy(model)
    called: list[str] = []
    names = {m: n for n, m in plain.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    hooks = [m.register_forward_pre_hook(lambda m, _: called.append(names[m])) for m in names]
    with torch.no_grad():
        plain(x[:1])
    for hook in hooks:
        hook.remove()
    parent_name, _, attr = called[0].rpartition(".")
    parent = plain.get_submodule(parent_name) if parent_name else plain
    once = _Once(getattr(parent, attr))
    setattr(parent, attr, once)
    return plain, once


def aihwkit_analog(model: nn.Module, tile: int) -> nn.Module:
    """The model converted by aihwkit 1.1.0 with the benchmark's periphery (8-bit DAC/ADC,
    output noise 0.04, out_bound 10, ``tile``² tiles) and its PCMLikeNoiseModel."""
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
    return convert_to_analog(plain_copy(model), config).eval()


def aihwkit_samplers(model: nn.Module, tile: int):
    """(e) S fresh aihwkit weight samples (program + drift + forward each) and (f) S forwards of
    one programming (output noise only)."""
    analog = aihwkit_analog(model, tile)

    def reprogrammed(x: torch.Tensor, n_samples: int) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for _ in range(n_samples):
                analog.program_analog_weights()
                analog.drift_analog_weights(20.0)  # t0 of the card: no drift, fresh 1/f draw
                out.append(torch.softmax(analog(x), dim=-1))
        return torch.stack(out)

    fixed_net = aihwkit_analog(model, tile)
    with torch.no_grad():
        fixed_net.program_analog_weights()
        fixed_net.drift_analog_weights(20.0)

    def fixed(x: torch.Tensor, n_samples: int) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([torch.softmax(fixed_net(x), dim=-1) for _ in range(n_samples)])

    return reprogrammed, fixed


def _ratio(num: list[float], den: list[float]) -> tuple[float, list[float]]:
    """The median of per-round ratios and their range (a single time against rounds: the range
    of the rounds of the other)."""
    if len(num) == 1:
        num = num * len(den)
    if len(den) == 1:
        den = den * len(num)
    ratios = [n / d for n, d in zip(num, den, strict=True)]
    return statistics.median(ratios), [min(ratios), max(ratios)]


def measure_rounds(name: str, samples: list[int], repeats: int, batch: int = 256) -> dict:
    """(a), (a1), (b), (c) on one model, in turn for ``repeats`` rounds per S: ratios are medians
    of per-round ratios."""
    model = build_model(ModelConfig(**MODELS[name]), seed=0).eval()
    x = torch.randn(batch, 1, 28, 28)
    software = SoftwarePredictor(model, batch_size=batch)
    start = time.perf_counter()
    fast = BayesianMachine.compile(model, machine_config("fast", batch=batch))
    compile_s = time.perf_counter() - start
    once_net, once = first_layer_once(model, x)

    def floor_first_once(n: int) -> None:
        once.forget()
        with torch.no_grad():
            for _ in range(n):
                torch.softmax(once_net(x), dim=-1)

    rows = []
    for n in samples:
        row: dict = {"model": name, "batch": batch, "samples": n, "compile_s": compile_s}
        times = interleaved({"a": lambda n=n: _floor(model, x, n),
                             "a1": lambda n=n: floor_first_once(n),
                             "b": lambda n=n: software.sample_probs(x, n, 0),
                             "c": lambda n=n: fast.sample_probs(x, n, 0)}, repeats)
        row["rounds_s"] = times
        for key, field in (("a", "a_floor_s"), ("a1", "a1_floor_first_once_s"),
                           ("b", "b_software_s"), ("c", "c_machine_numba_s")):
            row[field] = statistics.median(times[key])
        for num, den in (("c", "a"), ("c", "a1"), ("c", "b"), ("a", "a1")):
            row[f"{num}_over_{den}"], row[f"{num}_over_{den}_range"] = _ratio(times[num],
                                                                            times[den])
        rows.append(row)
    return {"rows": rows, "model": model, "x": x, "machine": fast}


def measure_late(result: dict, backends: list[str], torch_device: str, with_explicit: bool,
                 with_aihwkit: bool, repeats: int, throughput_images: int) -> None:
    """After every model's first rounds: (a), (c), (ct), (e), (f) in turn for ``repeats``
    rounds per S — all five under the same conditions, aihwkit's runtime loaded — then (d) once
    and the throughput. The ratios of (ct), (e) and (f) come from these rounds."""
    model, x, numba_machine = result.pop("model"), result.pop("x"), result.pop("machine")
    batch = x.shape[0]
    fns = {"a": lambda n: _floor(model, x, n), "c": lambda n: numba_machine.sample_probs(x, n, 0)}
    if "torch" in backends:
        torch_machine = BayesianMachine.compile(model, machine_config(
            batch=batch, backend="torch", torch_device=torch_device))
        fns["ct"] = lambda n: torch_machine.sample_probs(x, n, 0)
    if with_aihwkit:
        reprogrammed, fixed = aihwkit_samplers(model, 512)
        fns["e"] = lambda n: reprogrammed(x, n)
        fns["f"] = lambda n: fixed(x, n)
    explicit = (BayesianMachine.compile(model, machine_config("explicit", batch=batch))
                if with_explicit else None)
    for fn in fns.values():  # warm-up on one sample (JIT, caches, aihwkit's first call)
        fn(1)
    for row in result["rows"]:
        n = row["samples"]
        late = interleaved({k: (lambda fn=fn, n=n: fn(n)) for k, fn in fns.items()}, repeats,
                           warm_up=False)
        row["late_rounds_s"] = late
        row["a_floor_late_s"] = statistics.median(late["a"])
        row["c_machine_numba_late_s"] = statistics.median(late["c"])
        row["c_over_a_late"], row["c_over_a_late_range"] = _ratio(late["c"], late["a"])
        if "ct" in late:
            row["ct_machine_torch_s"] = statistics.median(late["ct"])
            row["ct_over_a"], row["ct_over_a_range"] = _ratio(late["ct"], late["a"])
            row["ct_over_c"], row["ct_over_c_range"] = _ratio(late["ct"], late["c"])
        if "e" in late:
            row["e_aihwkit_reprogram_s"] = statistics.median(late["e"])
            row["f_aihwkit_fixed_s"] = statistics.median(late["f"])
            row["e_over_c"], row["e_over_c_range"] = _ratio(late["e"], late["c"])
            row["c_over_f"], row["c_over_f_range"] = _ratio(late["c"], late["f"])
            row["f_over_a"], row["f_over_a_range"] = _ratio(late["f"], late["a"])
            row["e_over_a"], row["e_over_a_range"] = _ratio(late["e"], late["a"])
        if explicit is not None:
            row["d_machine_explicit_s"] = median_seconds(
                lambda n=n: explicit.sample_probs(x, n, 0), 1)
            row["d_over_a"] = row["d_machine_explicit_s"] / row["a_floor_late_s"]
        print(_line(row), flush=True)
    if throughput_images > 0:
        result["throughput"] = throughput(model, throughput_images, backends, torch_device,
                                          batch)
        print(f"{result['rows'][0]['model']:7s} throughput (images x samples / s, "
              f"{throughput_images} images, S = {THROUGHPUT_SAMPLES}): "
              + ", ".join(f"{k} {v:,.0f}" for k, v in result["throughput"].items()
                          if k not in ("images", "samples")), flush=True)


def _floor(model: nn.Module, x: torch.Tensor, n: int) -> None:
    """Floor (a): the noise-free forward of the Bayesian model's own layers at μ (``sampling
    'mean'``), ``n`` times."""
    with torch.no_grad(), sampling(model, "mean"):
        for _ in range(n):
            torch.softmax(model(x), dim=-1)


THROUGHPUT_SAMPLES = 10


def throughput(model: nn.Module, images: int, backends: list[str], torch_device: str,
               batch: int) -> dict:
    """Images × samples per second of the floor and of the machine on each backend, over
    ``images`` inputs in batches of ``batch`` at S = :data:`THROUGHPUT_SAMPLES`."""
    x = torch.randn(images, 1, 28, 28)
    out: dict = {"images": images, "samples": THROUGHPUT_SAMPLES}
    work = images * THROUGHPUT_SAMPLES

    def floor() -> None:
        for a in range(0, images, batch):
            _floor(model, x[a:a + batch], THROUGHPUT_SAMPLES)

    _floor(model, x[:batch], 1)  # warm-up (BLAS threads, allocator)
    out["floor"] = work / once_seconds(floor)
    for backend in backends:
        machine = BayesianMachine.compile(model, machine_config(
            batch=batch, backend=backend, torch_device=torch_device))
        machine.sample_probs(x[:batch], 1, 0)  # warm-up (JIT, caches)
        out[f"machine_{backend}"] = work / once_seconds(
            lambda m=machine: m.sample_probs(x, THROUGHPUT_SAMPLES, 0))
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms"


def _line(row: dict) -> str:
    parts = [f"{row['model']:7s} S={row['samples']:4d}", f"(a) {_ms(row['a_floor_s'])}",
             f"(a1) {_ms(row['a1_floor_first_once_s'])}", f"(b) {_ms(row['b_software_s'])}",
             f"(c) {_ms(row['c_machine_numba_s'])}"]
    for key, label in (("a_floor_late_s", "a late"), ("c_machine_numba_late_s", "c late"),
                       ("ct_machine_torch_s", "ct"), ("d_machine_explicit_s", "d"),
                       ("e_aihwkit_reprogram_s", "e"), ("f_aihwkit_fixed_s", "f")):
        if key in row:
            parts.append(f"({label}) {_ms(row[key])}")
    for key in ("c_over_a", "c_over_a1", "c_over_b", "c_over_a_late", "ct_over_a", "ct_over_c",
                "e_over_c", "c_over_f"):
        if key in row:
            low, high = row[f"{key}_range"] if f"{key}_range" in row else (row[key], row[key])
            parts.append(f"{key.replace('_over_', '/')} {row[key]:5.2f} ({low:.2f}-{high:.2f})")
    if "d_over_a" in row:
        parts.append(f"d/a {row['d_over_a']:5.1f}")
    return "  ".join(parts)


def plot_ratios(result: dict, stem: Path) -> list[Path]:
    """Ratios to the noise-free floor (a) per model, S and backend, with their ranges, and the
    target line 3.0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(result["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), squeeze=False)
    series = [("c_over_a", "machine, numba / (a)"), ("c_over_a1", "machine, numba / (a1)"),
              ("ct_over_a", f"machine, torch ({result['torch_device']}) / (a)"),
              ("b_over_a", "software / (a)")]
    for ax, name in zip(axes[0], models, strict=True):
        rows = result["models"][name]["rows"]
        s_values = [r["samples"] for r in rows]
        for offset, (key, label) in enumerate(series):
            if key == "b_over_a":
                values = [r["b_software_s"] / r["a_floor_s"] for r in rows]
                ranges = [(v, v) for v in values]
            elif key in rows[0]:
                values = [r[key] for r in rows]
                ranges = [tuple(r.get(f"{key}_range", (r[key], r[key]))) for r in rows]
            else:
                continue
            xs = [s * (1.08 ** (offset - 1.5)) for s in s_values]
            low = [v - lo for v, (lo, _) in zip(values, ranges, strict=True)]
            high = [hi - v for v, (_, hi) in zip(values, ranges, strict=True)]
            ax.errorbar(xs, values, yerr=[low, high], marker="o", capsize=3, label=label)
        ax.axhline(3.0, color="grey", linestyle="--", linewidth=1, label="target 3.0 at S = 100")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(s_values, [str(s) for s in s_values])
        ax.minorticks_off()
        ax.set_xlabel("Monte-Carlo samples S (batch 256)")
        ax.set_ylabel("wall time / floor (a)")
        ax.set_title(LABELS[name], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"M1 pcm_ibm_2020, 8-bit DAC/ADC, 512² tiles; {result['cpu']}, "
                 f"{result['cores']} cores; bars: range over rounds", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem)


def _save(fig, stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = []
    for suffix in (".png", ".pdf"):
        path = stem.with_suffix(suffix)
        fig.savefig(path, dpi=130)
        paths.append(path)
    plt.close(fig)
    return paths


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
    specs = [("samples", "Monte-Carlo samples S (batch 256, 512² tiles)"),
             ("batch", "batch (S = 30, 512² tiles)"),
             ("tile", "tile size (inputs = outputs; S = 30, batch 256)")]
    for ax, (key, label) in zip(axes, specs, strict=True):
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
    return _save(fig, stem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--samples", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--backends", nargs="+", default=["numba", "torch"],
                        choices=["numba", "torch"],
                        help="machine backends for (ct) and the throughput ((c) always runs)")
    parser.add_argument("--torch-device", default="cpu", help="the torch backend's device")
    parser.add_argument("--throughput-images", type=int, default=1000,
                        help="images of the throughput runs (0: skip)")
    parser.add_argument("--no-aihwkit", action="store_true", help="skip (e) and (f)")
    parser.add_argument("--explicit", action="store_true", help="also (d), the slow path")
    parser.add_argument("--scaling", action="store_true",
                        help="also (c) on the MLP against S, batch and tile size")
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
              "cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
              "cuda": torch.cuda.is_available(), "torch_device": args.torch_device,
              "machine": machine_config().model_dump(mode="json"), "models": {}}
    for name in args.models:
        result["models"][name] = measure_rounds(name, args.samples, args.repeats)
        for row in result["models"][name]["rows"]:
            row["b_over_a"] = row["b_software_s"] / row["a_floor_s"]
    if args.scaling:  # before aihwkit is loaded
        result["scaling_mlp"] = scaling(max(1, args.repeats // 2), args.quick)
    for name in args.models:
        measure_late(result["models"][name], args.backends, args.torch_device, args.explicit,
                     not args.no_aihwkit, args.repeats, args.throughput_images)
    for path in plot_ratios(result, out / "machine_speed"):
        print(f"plot: {path}")
    if args.scaling:
        for path in plot_scaling(result["scaling_mlp"], out / "machine_scaling"):
            print(f"plot: {path}")
    (out / "machine_speed.json").write_text(json.dumps(result, indent=1))
    print(f"json: {out / 'machine_speed.json'}")


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
