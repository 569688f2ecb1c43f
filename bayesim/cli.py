"""The ``bayesim`` command.

Bad input of any kind ends with one line ``bayesim: error: …`` on stderr and exit code 2, without a
traceback and without output files (every command validates before it writes, and writes
atomically).
"""

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pydantic
import typer
from rich.console import Console
from rich.table import Table

from bayesim.errors import BayesimError, ConfigError
from bayesim.verdict import HEADLINE, REALISED_FAILS, headline

app = typer.Typer(name="bayesim", add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="Simulate analog Bayesian machines: train, quantize, simulate, evaluate.")
data_app = typer.Typer(no_args_is_help=True, help="Find, inspect and fetch the data sets.")
app.add_typer(data_app, name="data")
devices_app = typer.Typer(no_args_is_help=True, help="List, show and plot the device cards.")
app.add_typer(devices_app, name="devices")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (see experiments/).")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set train.epochs=5 (repeatable).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _writable_under(path: Path) -> None:
    """Refuse, before any work, a ``path`` that a file already blocks: ``path`` itself or the
    first of its parents that exists."""
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise typer.BadParameter(f"{ancestor} is a file, so nothing can be written under "
                                         f"it; choose another path")
            return


def output_directory(path: Path) -> Path:
    """``--out`` of a command that writes a directory: it may exist (as a directory) or not."""
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file; give a directory (it is created if missing)")
    _writable_under(path)
    return path


def output_file(path: Path) -> Path:
    """``--out`` of a command that writes one file: not a directory, not under a file."""
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a directory; give the file's name")
    _writable_under(path)
    return path


OutOption = Annotated[Path, typer.Option("--out", help="Output directory.",
                                         callback=output_directory)]
CheckpointOption = Annotated[Path, typer.Option(
    "--checkpoint", help="A model.safetensors file (or shared.safetensors of `bayesim share`).")]
DataOption = Annotated[Path | None, typer.Option(
    "--data", help="Your own data: an .npz (x_test, y_test, optional x_ood, x_ambiguous, "
                   "x_train/y_train) or a directory of IDX test files; see "
                   "docs/bring_your_own.md. Same as --set data.file=FILE.")]

out_console = Console()
EXIT_BAD_INPUT = 2


def print_table(table: Table) -> None:
    """Print ``table`` to stdout: at the terminal's width on a terminal; at the table's natural
    width when stdout is a file or a pipe (a log, CI), where rich would otherwise cut every table to
    80 columns and its cells to "predic…"."""
    if out_console.is_terminal:
        out_console.print(table)
        return
    natural = out_console.measure(table, options=out_console.options.update(
        max_width=10_000)).maximum
    width = out_console.width
    out_console.width = max(width, natural)
    try:
        out_console.print(table)
    finally:
        out_console.width = width


def _print_report_summary(*report_paths: Path) -> None:
    """One table row per report (fp32, digital, …); under a chip's row its software reference
    (unless the table already holds it) and the differences; then each chip's verdict."""
    reports = [json.loads(p.read_text()) for p in report_paths]
    table = Table(title=f"S = {reports[0]['n_samples']}, seed {reports[0]['seed']}; AUROC EE: "
                        f"aleatoric (clean vs ambiguous), MI and PE: epistemic (clean vs OOD)")
    for column in ("predictor", "bits/w or devices/w", "acc", "NLL", "ECE", "AUROC EE", "AUROC MI",
                   "AUROC PE", "W₂/σ worst layer", "µJ/inference"):
        table.add_column(column, justify="right")
    shown = [(r["predictor"], r["n_samples"]) for r in reports]
    for report in reports:
        hardware = report.get("hardware")
        size = (f"{hardware['n_devices'] / hardware['n_weights']:g} dev" if hardware
                else f"{report['memory']['bits_per_weight']:g}")
        realised = (hardware or {}).get("realised_posterior")
        distance = f"{realised['w2_median_worst']:.2f}" if realised else "–"
        table.add_row(_label(report["predictor"]), size,
                      *_cells(headline(report), "{:.4f}"), distance, _energy(report))
        reference = report.get("reference")
        if reference is None:
            continue
        if (reference["predictor"], reference["n_samples"]) not in shown:
            table.add_row(f"  software ({_label(reference['predictor'])})", "", *_cells(
                {key: reference.get(key) for key, _ in HEADLINE}, "{:.4f}"), "", "")
        table.add_row("  Δ chip − software", "",
                      *_cells(report["verdict"]["differences"], "{:+.4f}"), "", "")
    print_table(table)
    for report, path in zip(reports, report_paths, strict=True):
        if "verdict" in report:
            label = _label(report["predictor"])
            judged = report["verdict"]
            out_console.print(f"verdict: {label}: {judged['status']}: {judged['summary']} "
                              f"(software: same checkpoint, S, data and seed)", soft_wrap=True)
            for line in judged["warnings"]:
                if not line.startswith(REALISED_FAILS):  # the machine warned of those already
                    print(f"bayesim: warning: {label}: {line}", file=sys.stderr)
        out_console.print(f"report: {path}", soft_wrap=True)


def _label(predictor: dict) -> str:
    return str(predictor.get("label", predictor["kind"]))


def _cells(values: dict, template: str) -> list[str]:
    """The :data:`~bayesim.verdict.HEADLINE` metrics of ``values`` formatted, "–" for None."""
    return ["–" if values.get(key) is None else template.format(values[key])
            for key, _ in HEADLINE]


def _energy(report: dict) -> str:
    """Energy per inference (S samples of one input) of a report's cost section, in µJ."""
    energy = report.get("cost", {}).get("energy_per_inference_J")
    return "–" if energy is None else f"{energy * 1e6:.3g}"


def _render_plots(out_dir: Path) -> None:
    from bayesim.plots.report import render_report_plots

    for path in render_report_plots(out_dir):
        out_console.print(f"plot:   {path}")


def _report_on_checkpoint(command: Callable[..., Path], checkpoint: Path, out: Path,
                          config: Path | None, overrides: list[str], quiet: bool) -> None:
    """Run a checkpoint → report command of the pipeline, then draw and summarise its report."""
    report = command(checkpoint, out, str(config) if config else None, overrides,
                     progress=not quiet)
    _render_plots(out)
    _print_report_summary(report)


def _with_samples(overrides: list[str] | None, samples: int | None,
                  data: Path | None = None) -> list[str]:
    """The --set overrides plus eval.n_samples from --samples (checked) and data.file from
    --data."""
    result = list(overrides or [])
    if data is not None:
        result.append(f"data.file={json.dumps(str(data))}")
    if samples is not None:
        if samples < 1:
            raise ConfigError(f"--samples must be a positive number of Monte-Carlo samples, "
                              f"got {samples}")
        result.append(f"eval.n_samples={samples}")
    return result


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output directory.",
                                      callback=output_directory)] = Path("runs/demo"),
    config: ConfigOption = None,
    set_: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """Train the fp32 mean-field LeNet-5 on dirty-mnist, quantize it (digital JQ 4-bit), run it
    on analog PCM and RRAM machines, and write the four uncertainty reports and one table
    (S = 30 samples unless eval.n_samples is set: about 4 min on 2 cores)."""
    from bayesim.config import load_config
    from bayesim.pipeline import DEMO_SAMPLES, demo_config, run_demo

    experiment = load_config(config, set_ or [])
    chosen = demo_config(experiment)
    if chosen is not experiment:
        out_console.print(f"demo: S = {DEMO_SAMPLES} Monte-Carlo samples per prediction (other "
                          f"commands use {experiment.eval.n_samples}; the guideline sweeps found "
                          f"S = 10–30 enough, docs/results/guidelines.md); --set "
                          f"eval.n_samples={experiment.eval.n_samples} for the full run",
                          soft_wrap=True)
    reports = run_demo(chosen, out, progress=not quiet)
    for report in reports:
        _render_plots(report.parent)
    _print_report_summary(*reports)


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", help="TOML experiment config.")],
    out: OutOption,
    set_: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """Train a mean-field BNN; writes OUT/model.safetensors."""
    from bayesim.config import load_config
    from bayesim.pipeline import train_experiment

    experiment = load_config(config, set_ or [])
    trained = train_experiment(experiment, out, progress=not quiet)
    last = trained.history[-1]
    out_console.print(f"epoch {last.epoch}: loss {last.loss:.4f}, train accuracy "
                      f"{last.accuracy:.4f}")
    out_console.print(f"checkpoint: {trained.checkpoint}")


@app.command()
def evaluate(
    checkpoint: CheckpointOption,
    out: OutOption,
    samples: Annotated[int | None, typer.Option(
        "--samples", help="Monte-Carlo samples S (default: the checkpoint's eval.n_samples).")]
    = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    data: DataOption = None,
    quiet: QuietOption = False,
) -> None:
    """Monte-Carlo evaluation of a checkpoint; writes report.json, scores.npz and plots."""
    from bayesim.pipeline import evaluate_checkpoint

    _report_on_checkpoint(evaluate_checkpoint, checkpoint, out, config,
                          _with_samples(set_, samples, data), quiet)


@app.command()
def quantize(
    checkpoint: CheckpointOption,
    out: OutOption,
    strategy: Annotated[str | None, typer.Option(
        "--strategy", help="fp, VPQ, SPQ or JQ (default: the config's quant.strategy, JQ).")]
    = None,
    bits: Annotated[int | None, typer.Option("--bits", help="Bits of μ, σ and samples (1–16).")]
    = None,
    sigma_quantizer: Annotated[str | None, typer.Option(
        "--sigma-quantizer", help="log (default) or uniform (the ablation).")] = None,
    qat_epochs: Annotated[int | None, typer.Option(
        "--qat-epochs", help="Epochs of quantization-aware fine-tuning (0: PTQ only).")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """Quantize a trained BNN (VPQ/SPQ/JQ, PTQ or QAT); writes the quantized checkpoint, the
    digital predictor's report and plots."""
    from bayesim.pipeline import quantize_checkpoint

    flags = {"strategy": strategy, "bits": bits, "sigma_quantizer": sigma_quantizer,
             "qat_epochs": qat_epochs}
    overrides = list(set_ or []) + [f"quant.{k}={json.dumps(v)}" for k, v in flags.items()
                                    if v is not None]
    _report_on_checkpoint(quantize_checkpoint, checkpoint, out, config, overrides, quiet)


@app.command()
def share(
    out: OutOption,
    config: ConfigOption = None,
    set_: SetOption = None,
    samples: Annotated[int | None, typer.Option(
        "--samples", help="Monte-Carlo samples S (default: the config's eval.n_samples).")]
    = None,
    quiet: QuietOption = False,
) -> None:
    """Stochastic weight sharing: pre-train, fine-tune, cluster every weight's (μ, σ) into a
    codebook of 2D Gaussians, train it (ELBO, Wasserstein merges); writes shared.safetensors,
    report.json and plots. `bayesim evaluate`/`simulate --checkpoint OUT/shared.safetensors`
    re-evaluate it or compile it onto a chip."""
    from bayesim.config import load_config
    from bayesim.pipeline import SHARED_CHECKPOINT_NAME, run_sharing
    from bayesim.plots.sharing import CODEBOOK_NAME, plot_codebook
    from bayesim.sharing.storage import load_shared

    experiment = load_config(config, _with_samples(set_, samples))
    report = run_sharing(experiment, out, progress=not quiet)
    _render_plots(out)
    codebook = plot_codebook(load_shared(out / SHARED_CHECKPOINT_NAME).net, out / CODEBOOK_NAME)
    out_console.print(f"plot:   {codebook}")
    _print_report_summary(report)


@app.command()
def simulate(
    checkpoint: CheckpointOption,
    out: OutOption,
    samples: Annotated[int | None, typer.Option(
        "--samples", help="Monte-Carlo samples S (default: the config's eval.n_samples).")]
    = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="TOML with [hardware] (and optionally [eval], [data], [cost]); see "
                         "experiments/machine_pcm.toml.")] = None,
    set_: SetOption = None,
    train_constrained: Annotated[int, typer.Option(
        "--train-constrained", help="First fine-tune this many epochs with σ tied to the "
                                    "device law (M1/M4), then compile without re-mapping.")] = 0,
    data: DataOption = None,
    quiet: QuietOption = False,
) -> None:
    """Compile a (quantized) BNN onto virtual analog hardware and run Monte-Carlo inference on
    it; writes report.json (with its hardware section), scores.npz and plots."""
    from functools import partial

    from bayesim.pipeline import simulate_checkpoint

    overrides = _with_samples(set_, samples, data)
    if train_constrained < 0:
        raise ConfigError(f"--train-constrained must be a number of epochs ≥ 0, got "
                          f"{train_constrained}")
    _report_on_checkpoint(partial(simulate_checkpoint, constrained_epochs=train_constrained),
                          checkpoint, out, config, overrides, quiet)


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="The file to import.")],
    from_: Annotated[str, typer.Option(
        "--from", help="pyro (a param store of an AutoNormal-family guide), bayesian-torch (a "
                       "state dict) or tensors (safetensors of μ and σ or ρ).")],
    arch: Annotated[str, typer.Option("--arch", help="bayesim architecture: mlp, lenet5, "
                                                     "resnet.")],
    out: Annotated[Path, typer.Option("--out", help="The checkpoint to write (.safetensors).")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Architecture settings, e.g. --set model.hidden=[256,256].")] = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="SOURCE=TARGET: put source module SOURCE on the architecture's layer "
                      "TARGET (module path or Bayesian-layer index), where order and shape do "
                      "not decide (repeatable).")] = None,
    guide: Annotated[str | None, typer.Option(
        "--guide", help="Pyro: the guide to import when the store holds several.")] = None,
) -> None:
    """Import a BNN posterior trained elsewhere into a signed bayesim checkpoint (see
    docs/bring_your_own.md); `evaluate`/`simulate --checkpoint` then run it."""
    from bayesim.pipeline import import_checkpoint

    mapping = {}
    for item in map_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"--map {item!r} is not SOURCE=TARGET")
        mapping[key] = value
    path = import_checkpoint(from_, source, arch, list(set_ or []), out, mapping, guide)
    out_console.print(f"checkpoint: {path}")


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (e.g. experiments/seed_qbnn.toml).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (resumed if it exists).",
                                      callback=output_directory)],
    set_: SetOption = None,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (general specs).")]
    = 1,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run on the Dask cluster of this scheduler (tcp://HOST:PORT).")]
    = None,
    dask_local: Annotated[int | None, typer.Option(
        "--dask-local", help="Run on a local Dask cluster of N one-thread workers.")] = None,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="Model cache shared between sweeps (default: OUT/cache).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Run a sweep spec (docs/sweeps.md) or the quantization reproduction grid; finished points
    are skipped, so an interrupted sweep resumes."""
    from bayesim.config import read_toml

    if "strategies" not in read_toml(spec):  # a general sweep spec
        _general_sweep(spec, out, set_ or [], workers, quiet, scheduler, dask_local, cache)
        return
    from bayesim.plots.qbnn import plot_grid
    from bayesim.sweep.qbnn import load_grid, run_grid

    grid = load_grid(spec, set_ or [])
    results = run_grid(grid, out, progress=not quiet, log=out_console.print)
    for path in plot_grid(results):
        out_console.print(f"plot:   {path}")
    out_console.print(f"results: {results} and {results.with_suffix('.md')}")


def _general_sweep(spec: Path, out: Path, overrides: list[str], workers: int, quiet: bool,
                   scheduler: str | None, dask_local: int | None,
                   cache: Path | None = None) -> None:
    from bayesim.progress import progress_bar
    from bayesim.sweep.runner import CSV_NAME, run_sweep
    from bayesim.sweep.spec import load_spec

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if scheduler is not None and dask_local is not None:
        raise ConfigError("give either --scheduler or --dask-local, not both")
    if dask_local is not None and dask_local < 1:
        raise ConfigError(f"--dask-local must be at least 1 worker, got {dask_local}")
    sweep_spec = load_spec(spec, overrides)
    with progress_bar(f"sweep {sweep_spec.name}", not quiet) as update:
        store = run_sweep(sweep_spec, out, workers, on_progress=update, scheduler=scheduler,
                          dask_local=dask_local, cache=cache)
    failed = store.rows("failed")
    done = len(store.rows("done"))
    store.close()
    out_console.print(f"{done} points done, {len(failed)} failed; results: {out / CSV_NAME}")
    for row in failed[:5]:
        out_console.print(f"failed: {row['point_id'][:12]} {row['error']}")


@app.command()
def plot(
    out: Annotated[Path, typer.Argument(help="A sweep directory (holding results.csv).")],
    kind: Annotated[str | None, typer.Option(
        "--kind", help="heatmap, lines, bits, pareto, drift, samples or feasibility; default: "
                       "every figure of the spec's [[plots]].")] = None,
    x: Annotated[str | None, typer.Option(
        "--x", help="x axis: a swept parameter (dotted path; pareto: a metric).")] = None,
    y: Annotated[str | None, typer.Option("--y", help="heatmap: the second parameter.")] = None,
    by: Annotated[str | None, typer.Option(
        "--by", help="One line (pareto: colour) per value of this parameter.")] = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", help="e.g. auroc_epistemic (default), accuracy, ece.")] = None,
    where: Annotated[list[str] | None, typer.Option(
        "--where", help="Hold a swept parameter at a value, e.g. hardware.mapping=M3 "
                        "(repeatable; default: the spec's base value).")] = None,
    over: Annotated[list[str] | None, typer.Option(
        "--over", help="pareto: a swept parameter whose configurations compete (repeatable; "
                       "default: every configuration).")] = None,
) -> None:
    """Plot a sweep's results as PNG and PDF next to them (docs/sweeps.md): the figures its spec
    lists, or the one --kind names."""
    from bayesim.config import parse_override
    from bayesim.plots.sweep import plot as plot_one
    from bayesim.plots.sweep import plot_spec

    held = {}
    for text in where or []:
        keys, value = parse_override(text)
        held[".".join(keys)] = value
    skipped: list[str] = []
    if kind is None:
        paths, skipped = plot_spec(out)
    else:
        paths = plot_one(out, kind, x, y, by, metric, held, over)
    for path in paths:
        out_console.print(f"plot:   {path}")
    for reason in skipped:
        out_console.print(f"skipped: {reason}")


@data_app.command("info")
def data_info() -> None:
    """Show where each data set was found (or why not)."""
    from bayesim.data.sources import data_home, describe_sources

    table = Table(title=f"data sets (data home: {data_home()})")
    for column in ("dataset", "found", "kind", "path / reason"):
        table.add_column(column)
    for row in describe_sources():
        table.add_row(row["dataset"], row["found"], row["kind"], row["path"] or row["origin"])
    print_table(table)


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="mnist or fashion-mnist")],
    dest: Annotated[Path | None, typer.Option(
        "--dest", help="Target directory (default: $BAYESIM_DATA/NAME).")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="Download from this mirror instead of the official ones.")] = None,
) -> None:
    """Download the official IDX files of NAME and check their MD5 sums (needs internet)."""
    from bayesim.data.sources import fetch

    target = fetch(name, dest, base_url=base_url,
                   on_file=lambda f, status: out_console.print(f"{f}: {status}"))
    out_console.print(f"{name}: {target}")


DeviceArgument = Annotated[str, typer.Argument(
    help="A card name from 'bayesim devices list' or the path of a card file (.toml).")]


@devices_app.command("list")
def devices_list() -> None:
    """The shipped device cards: technology, conductance range and status."""
    from bayesim.devices.presets import list_presets, read_card

    table = Table(title="device cards (device_models/)")
    for column in ("name", "technology", "status", "G range (µS)"):
        table.add_column(column)
    for name in list_presets():
        card = read_card(name)
        rng = card.get("range", {})
        span = (f"{rng['g_min']['value']:g} – {rng['g_max']['value']:g}"
                if "g_min" in rng and "g_max" in rng else "—")
        table.add_row(name, str(card.get("technology", "")), str(card.get("status", "measured")),
                      span)
    print_table(table)


@devices_app.command("show")
def devices_show(name: DeviceArgument) -> None:
    """Every parameter of one card with its value, unit and source."""
    from bayesim.devices.presets import card_path, load_preset, read_card

    card = read_card(name)
    if card.get("status", "measured") != "template":
        load_preset(name)  # validate: a broken card is an error, not a listing
    out_console.print(f"[bold]{card.get('name', name)}[/bold] ({card_path(name)})")
    out_console.print(str(card.get("summary", "")))
    table = Table()
    for column in ("parameter", "value", "unit", "source"):
        table.add_column(column)

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict) and "value" in node and "unit" in node:
            table.add_row(path, str(node["value"]), str(node["unit"]), str(node.get("source", "")))
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")
        elif path.endswith(("law", "shape", "relative")):
            table.add_row(path, str(node), "", "")

    walk({k: v for k, v in card.items() if k not in ("name", "summary", "sources")}, "")
    print_table(table)
    for key, citation in card.get("sources", {}).items():
        out_console.print(f"[{key}] {citation}")


@devices_app.command("plot")
def devices_plot(
    name: DeviceArgument,
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.",
                                      callback=output_file)] = Path("device.png"),
) -> None:
    """σ_prog(G), σ_read(G), accumulated σ(G, t), ν(G) and the drift of G over time as a PNG."""
    from bayesim.devices.presets import load_preset
    from bayesim.plots.devices import plot_device

    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must name a .png file, got {out}")
    out_console.print(f"plot: {plot_device(load_preset(name), out)}")


def _fail(message: str) -> int:
    print(f"bayesim: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"bayesim: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the app and maps every user error to one line and exit code 2."""
    command = typer.main.get_command(app)
    previous_showwarning = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        command.main(args=argv, prog_name="bayesim", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("bayesim: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # usage errors: unknown option, missing value, …
        message = exc.format_message().strip()
        if not message:  # bare `bayesim` or a bare group: the help was shown
            return 0
        return _fail(message.replace("\n", " "))
    except BayesimError as exc:
        return _fail(str(exc))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"invalid value for '{'.'.join(map(str, first['loc']))}': {first['msg']}")
    except KeyboardInterrupt:
        print("bayesim: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous_showwarning
    return 0


if __name__ == "__main__":
    sys.exit(main())
