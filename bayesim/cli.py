"""The ``bayesim`` command.

Bad input of any kind ends with one line ``bayesim: error: …`` on stderr and exit code 2, without a
traceback and without output files (every command validates before it writes, and writes
atomically).
"""

import json
import os
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
from bayesim.verdict import REALISED_FAILS

HELP = {"help_option_names": ["-h", "--help"], "show_default": True}
# rich_markup_mode=None: plain click help, so "[hardware]" and "[[plots]]" print as written
app = typer.Typer(name="bayesim", add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None, context_settings=HELP,
                  help="Simulate analog Bayesian machines: train, quantize, simulate, evaluate. "
                       "Every command takes -h for its options and an example; docs/ holds the "
                       "guides.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, context_settings=HELP,
                       help="Find, inspect and fetch the data sets.")
app.add_typer(data_app, name="data")
devices_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, context_settings=HELP,
                          help="List, show and plot the device cards.")
app.add_typer(devices_app, name="devices")


def _version(value: bool) -> None:
    if value:
        from bayesim.provenance import provenance

        info = provenance()
        commit = f" (git {info['git_commit'][:12]})" if info.get("git_commit") else ""
        out_console.print(f"bayesim {info['version']}{commit}", soft_wrap=True)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version (and git commit) and exit.")] = False) -> None:
    """Simulate analog Bayesian machines: train, quantize, simulate, evaluate."""


ConfigOption = Annotated[
    Path | None, typer.Option("--config", metavar="FILE", help="TOML config file (see "
                                                               "experiments/).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print the summary as JSON on stdout instead of the table (progress and "
                   "warnings stay on stderr).")]


def set_option(example: str, sections: str) -> object:
    """The --set option of a command that takes keys of ``sections``."""
    return typer.Option("--set", metavar="KEY=VALUE",
                        help=f"Override a config value (repeatable), e.g. --set {example}; "
                             f"keys of {sections}, or seed.")


def _writable_under(path: Path) -> None:
    """Refuse, before any work, a ``path`` that a file already blocks: ``path`` itself or the
    first of its parents that exists."""
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise typer.BadParameter(f"{ancestor} is a file, so nothing can be written under "
                                         f"it; choose another path")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise typer.BadParameter(f"{ancestor} is not writable; choose a path where you "
                                         f"may write")
            return


def output_directory(path: Path) -> Path:
    """``--out`` of a command that writes a directory: it may exist (as a writable directory) or
    not."""
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file; give a directory (it is created if missing)")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"{path} is not writable; choose a directory where you may "
                                 f"write")
    _writable_under(path)
    return path


def output_file(path: Path) -> Path:
    """``--out`` of a command that writes one file: not a directory, not under a file."""
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a directory; give the file's name")
    _writable_under(path)
    return path


OutOption = Annotated[Path, typer.Option("--out", metavar="DIR", help="Output directory "
                                         "(created if missing).", callback=output_directory)]
CheckpointOption = Annotated[Path, typer.Option(
    "--checkpoint", metavar="FILE",
    help="A model.safetensors file (or shared.safetensors of `bayesim share`).")]
SamplesOption = Annotated[int | None, typer.Option(
    "--samples", metavar="S", help="Monte-Carlo samples per prediction (default: the config's "
                                   "eval.n_samples, 100).")]
DataOption = Annotated[Path | None, typer.Option(
    "--data", metavar="FILE|DIR",
    help="Your own data: an .npz (x_test, y_test, optional x_ood, x_ambiguous, "
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


def _say(text: str, as_json: bool) -> None:
    """An informational line: stdout, or stderr under --json (stdout then holds only JSON)."""
    if as_json:
        print(text, file=sys.stderr)
    else:
        out_console.print(text, soft_wrap=True)


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def summary_table(reports: list[dict], title: str,
                  extra: dict[str, list[str]] | None = None) -> Table:
    """One row per report (fp32, digital, …); under a chip's row its software reference (unless
    the table already holds it) and the differences chip − software. ``extra``: further columns,
    one cell per report."""
    extra = extra or {}
    from bayesim.reports import HEADLINE, label, summary_row

    table = Table(title=title)
    for column in ("predictor", "bits/w or devices/w", "acc", "NLL", "ECE", "AUROC EE", "AUROC MI",
                   "AUROC PE", "W₂/σ worst layer", "µJ/inference"):
        table.add_column(column, justify="right")
    for column in extra:
        table.add_column(column)
    blank = [""] * len(extra)

    def cells(values: dict, template: str) -> list[str]:
        return ["–" if values.get(key) is None else template.format(values[key])
                for key, _ in HEADLINE]

    shown = [(r["predictor"], r["n_samples"]) for r in reports]
    for i, report in enumerate(reports):
        row = summary_row(report)
        size = (f"{row['devices_per_weight']:g} dev" if row["devices_per_weight"] is not None
                else f"{row['bits_per_weight']:g}")
        distance = "–" if row["w2_median_worst"] is None else f"{row['w2_median_worst']:.2f}"
        energy = ("–" if row["energy_per_inference_uJ"] is None
                  else f"{row['energy_per_inference_uJ']:.3g}")
        table.add_row(row["predictor"], size, *cells(row, "{:.4f}"), distance,
                      energy, *(cells_[i] for cells_ in extra.values()))
        reference = report.get("reference")
        if reference is None:
            continue
        if (reference["predictor"], reference["n_samples"]) not in shown:
            table.add_row(f"  software ({label(reference['predictor'])})", "",
                          *cells(reference, "{:.4f}"), "", "", *blank)
        table.add_row("  Δ chip − software", "",
                      *cells(report["verdict"]["differences"], "{:+.4f}"), "", "", *blank)
    return table


def _print_report_summary(report_paths: list[Path], plots: list[Path], as_json: bool) -> None:
    """The table of the reports (or, under --json, their rows), then each chip's verdict; its
    warnings go to stderr."""
    from bayesim.reports import label, summary_row

    reports = [json.loads(p.read_text()) for p in report_paths]
    if as_json:
        _print_json({"reports": [{**summary_row(r), "report": str(p),
                                  "verdict": r.get("verdict")}
                                 for r, p in zip(reports, report_paths, strict=True)],
                     "plots": [str(p) for p in plots]})
    else:
        for path in plots:
            out_console.print(f"plot:   {path}", soft_wrap=True)
        print_table(summary_table(
            reports, f"S = {reports[0]['n_samples']}, seed {reports[0]['seed']}; AUROC EE: "
                     f"aleatoric (clean vs ambiguous), MI and PE: epistemic (clean vs OOD)"))
    for report, path in zip(reports, report_paths, strict=True):
        judged = report.get("verdict")
        if judged is not None:
            name = label(report["predictor"])
            _say(f"verdict: {name}: {judged['status']}: {judged['summary']} (software: same "
                 f"checkpoint, S, data and seed)", as_json)
            for line in judged["warnings"]:
                if not line.startswith(REALISED_FAILS):  # the machine warned of those already
                    print(f"bayesim: warning: {name}: {line}", file=sys.stderr)
        _say(f"report: {path}", as_json)


def _render_plots(out_dir: Path) -> list[Path]:
    from bayesim.plots.report import render_report_plots

    return list(render_report_plots(out_dir))


def _report_on_checkpoint(command: Callable[..., Path], checkpoint: Path, out: Path,
                          config: Path | None, overrides: list[str], quiet: bool,
                          as_json: bool) -> None:
    """Run a checkpoint → report command of the pipeline, then draw and summarise its report."""
    report = command(checkpoint, out, str(config) if config else None, overrides,
                     progress=not quiet)
    _print_report_summary([report], _render_plots(out), as_json)


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


def _sets(overrides: list[str] | None, command: str) -> list[str]:
    """``--set`` of ``command``, each key checked against the sections it uses
    (bayesim.pipeline.COMMAND_SECTIONS): a key it would ignore is refused."""
    from bayesim.config import check_override_sections
    from bayesim.pipeline import COMMAND_SECTIONS

    result = list(overrides or [])
    check_override_sections(result, COMMAND_SECTIONS[command], command)
    return result


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Output directory.",
                                      callback=output_directory)] = Path("runs/demo"),
    config: ConfigOption = None,
    set_: Annotated[list[str] | None, set_option(
        "train.epochs=5", "data, model, train, eval, quant, cost and [hardware] but its "
                          "device, mapping, copies and devices_per_weight, which the demo sets")]
    = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train the fp32 mean-field LeNet-5 on dirty-mnist, quantize it (digital JQ 4-bit), run it
    on analog PCM and RRAM machines, and write the four uncertainty reports and one table
    (S = 30 samples unless eval.n_samples is set; 3–4 min on 2 cores). The chips' rows are
    judged against the fp32 row (their verdicts).

    Example:

    \b
      bayesim demo --out runs/demo
      bayesim demo --out runs/demo_full --set eval.n_samples=100
    """
    from bayesim.config import load_config
    from bayesim.pipeline import DEMO_SAMPLES, demo_config, run_demo

    experiment = load_config(config, _sets(set_, "demo"))
    chosen = demo_config(experiment)
    if chosen is not experiment:
        _say(f"demo: S = {DEMO_SAMPLES} Monte-Carlo samples per prediction (other commands use "
             f"{experiment.eval.n_samples}; the guideline sweeps found S = 10–30 enough, "
             f"docs/results/guidelines.md); --set eval.n_samples={experiment.eval.n_samples} "
             f"for the full run", as_json)
    reports = run_demo(chosen, out, progress=not quiet)
    plots = [path for report in reports for path in _render_plots(report.parent)]
    _print_report_summary(reports, plots, as_json)


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", metavar="FILE",
                                         help="TOML experiment config (see experiments/).")],
    out: OutOption,
    set_: Annotated[list[str] | None, set_option(
        "train.epochs=5", "any section but [sharing] (the checkpoint keeps them as the defaults "
                          "of later commands)")]
    = None,
    quiet: QuietOption = False,
) -> None:
    """Train a mean-field BNN; writes OUT/model.safetensors.

    Example:

    \b
      bayesim train --config experiments/dirty_mnist_lenet.toml --out runs/lenet
    """
    from bayesim.config import load_config
    from bayesim.pipeline import train_experiment

    experiment = load_config(config, _sets(set_, "train"))
    trained = train_experiment(experiment, out, progress=not quiet)
    last = trained.history[-1]
    out_console.print(f"epoch {last.epoch}: loss {last.loss:.4f}, train accuracy "
                      f"{last.accuracy:.4f}")
    out_console.print(f"checkpoint: {trained.checkpoint}", soft_wrap=True)


@app.command()
def evaluate(
    checkpoint: CheckpointOption,
    out: OutOption,
    samples: SamplesOption = None,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", help="TOML with any of [data], [eval], [cost].")] = None,
    set_: Annotated[list[str] | None, set_option("eval.n_samples=30", "data, eval, cost")]
    = None,
    data: DataOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Monte-Carlo evaluation of a checkpoint in software (fp32, or digital if quantized); writes
    report.json, scores.npz and plots.

    Example:

    \b
      bayesim evaluate --checkpoint runs/demo/model.safetensors --out runs/eval --samples 30
    """
    from bayesim.pipeline import evaluate_checkpoint

    _report_on_checkpoint(evaluate_checkpoint, checkpoint, out, config,
                          _with_samples(_sets(set_, "evaluate"), samples, data), quiet, as_json)


@app.command()
def quantize(
    checkpoint: CheckpointOption,
    out: OutOption,
    strategy: Annotated[str | None, typer.Option(
        "--strategy", metavar="NAME",
        help="fp, VPQ, SPQ or JQ (default: the config's quant.strategy, JQ).")] = None,
    bits: Annotated[int | None, typer.Option(
        "--bits", metavar="B", help="Bits of μ, σ and samples, 1–16 (default: 4).")] = None,
    sigma_quantizer: Annotated[str | None, typer.Option(
        "--sigma-quantizer", metavar="NAME",
        help="log (default) or uniform (the ablation).")] = None,
    qat_epochs: Annotated[int | None, typer.Option(
        "--qat-epochs", metavar="N",
        help="Epochs of quantization-aware fine-tuning; 0: PTQ only (default: 5).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", help="TOML with [quant] (and optionally [data], [train], "
                                         "[eval], [cost]).")] = None,
    set_: Annotated[list[str] | None, set_option(
        "quant.qat_lr=1e-4", "data, eval, quant, cost and train.batch_size, train.kl_weight, "
                             "train.mc_train")] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Quantize a trained BNN (VPQ/SPQ/JQ, PTQ or QAT); writes the quantized checkpoint, the
    digital predictor's report and plots.

    Example:

    \b
      bayesim quantize --checkpoint runs/demo/model.safetensors --out runs/jq3 \\
          --strategy JQ --bits 3 --qat-epochs 5
    """
    from bayesim.pipeline import quantize_checkpoint

    flags = {"strategy": strategy, "bits": bits, "sigma_quantizer": sigma_quantizer,
             "qat_epochs": qat_epochs}
    overrides = _sets(set_, "quantize") + [f"quant.{k}={json.dumps(v)}"
                                           for k, v in flags.items() if v is not None]
    _report_on_checkpoint(quantize_checkpoint, checkpoint, out, config, overrides, quiet,
                          as_json)


@app.command()
def share(
    out: OutOption,
    config: ConfigOption = None,
    set_: Annotated[list[str] | None, set_option(
        "sharing.n_clusters=64", "any section (the checkpoint keeps them as the defaults of "
                                 "later commands)")] = None,
    samples: SamplesOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Stochastic weight sharing: pre-train, fine-tune, cluster every weight's (μ, σ) into a
    codebook of 2D Gaussians, train it (ELBO, Wasserstein merges); writes shared.safetensors,
    report.json and plots. `bayesim evaluate`/`simulate --checkpoint OUT/shared.safetensors`
    re-evaluate it or compile it onto a chip.

    Example:

    \b
      bayesim share --config experiments/seed_sharing.toml --out runs/shared
    """
    from bayesim.config import load_config
    from bayesim.pipeline import SHARED_CHECKPOINT_NAME, run_sharing
    from bayesim.plots.sharing import CODEBOOK_NAME, plot_codebook
    from bayesim.sharing.storage import load_shared

    experiment = load_config(config, _with_samples(_sets(set_, "share"), samples))
    report = run_sharing(experiment, out, progress=not quiet)
    plots = _render_plots(out)
    plots.append(plot_codebook(load_shared(out / SHARED_CHECKPOINT_NAME).net,
                               out / CODEBOOK_NAME))
    _print_report_summary([report], plots, as_json)


@app.command()
def simulate(
    checkpoint: CheckpointOption,
    out: OutOption,
    samples: SamplesOption = None,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE",
        help="TOML with [hardware] (and optionally [eval], [data], [cost]); see "
             "experiments/machine_pcm.toml and docs/machine.md for every key and its unit.")]
    = None,
    set_: Annotated[list[str] | None, set_option(
        "hardware.drift_time=86400 (seconds)",
        "data, eval, hardware, cost (with --train-constrained also train.batch_size, "
        "train.kl_weight, train.mc_train, quant.qat_lr)")] = None,
    train_constrained: Annotated[int, typer.Option(
        "--train-constrained", metavar="EPOCHS",
        help="First fine-tune this many epochs with σ tied to the device law (M1/M4), then "
             "compile without re-mapping.")] = 0,
    data: DataOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Compile a (quantized) BNN onto virtual analog hardware and run Monte-Carlo inference on
    it; writes report.json (with its hardware section, the software reference and the
    verdict), scores.npz and plots. The software reference (same checkpoint, S, data and seed)
    is evaluated once per checkpoint and cached in $BAYESIM_CACHE (default ~/.cache/bayesim).

    Example:

    \b
      bayesim simulate --checkpoint runs/demo/model.safetensors \\
          --config experiments/machine_pcm.toml --out runs/machine_pcm
    """
    from functools import partial

    from bayesim.pipeline import simulate_checkpoint

    if train_constrained < 0:
        raise ConfigError(f"--train-constrained must be a number of epochs ≥ 0, got "
                          f"{train_constrained}")
    command = "simulate --train-constrained" if train_constrained > 0 else "simulate"
    overrides = _with_samples(_sets(set_, command), samples, data)
    _report_on_checkpoint(partial(simulate_checkpoint, constrained_epochs=train_constrained),
                          checkpoint, out, config, overrides, quiet, as_json)


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(
        metavar="RUN_DIR...", help="Directories holding a report.json (and scores.npz).")],
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", callback=lambda p: None if p is None else output_directory(p),
        help="Write comparison.png/.pdf (reliability, EE and MI histograms) and "
             "comparison.json here (default: no figures).")] = None,
    as_json: JsonOption = False,
) -> None:
    """One table of several runs' headline metrics and cost, and (with --out) their reliability
    diagrams and EE/MI histograms overlaid, as PNG and PDF.

    Example:

    \b
      bayesim compare runs/demo runs/demo/digital runs/demo/analog_pcm \\
          runs/demo/analog_rram --out runs/compare
    """
    from bayesim.compare import comparison_rows, read_runs, write_comparison

    loaded = read_runs(runs)
    written = write_comparison(loaded, out) if out is not None else []
    rows = comparison_rows(loaded)
    if as_json:
        _print_json({"runs": rows, "files": [str(p) for p in written]})
        return

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.3g}"

    print_table(summary_table(
        [run.report for run in loaded],
        "runs compared (AUROC EE: clean vs ambiguous; MI and PE: clean vs OOD)",
        {"S": [str(r["n_samples"]) for r in rows], "seed": [str(r["seed"]) for r in rows],
         "nJ/sample": [cell(r["energy_per_sample_nJ"]) for r in rows],
         "run": [r["run"] for r in rows]}))
    for path in written:
        out_console.print(f"plot:   {path}", soft_wrap=True)


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(metavar="FILE", help="The file to import.")],
    from_: Annotated[str, typer.Option(
        "--from", metavar="LIBRARY",
        help="pyro (a param store of an AutoNormal-family guide), bayesian-torch (a state dict) "
             "or tensors (safetensors of μ and σ or ρ).")],
    arch: Annotated[str, typer.Option("--arch", metavar="NAME",
                                      help="bayesim architecture: mlp, lenet5, resnet.")],
    out: Annotated[Path, typer.Option("--out", metavar="FILE",
                                      help="The checkpoint to write (.safetensors).")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Architecture settings (model.* only), e.g. --set model.hidden=[256,256].")]
    = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", metavar="SOURCE=TARGET",
        help="Put source module SOURCE on the architecture's layer TARGET (module path or "
             "Bayesian-layer index), where order and shape do not decide (repeatable).")] = None,
    guide: Annotated[str | None, typer.Option(
        "--guide", metavar="NAME",
        help="Pyro: the guide to import when the store holds several.")] = None,
) -> None:
    """Import a BNN posterior trained elsewhere into a signed bayesim checkpoint (see
    docs/bring_your_own.md); `evaluate`/`simulate --checkpoint` then run it.

    Example:

    \b
      bayesim import bnn_state.pt --from bayesian-torch --arch lenet5 \\
          --out runs/imported/model.safetensors
    """
    from bayesim.pipeline import import_checkpoint

    mapping = {}
    for item in map_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"--map {item!r} is not SOURCE=TARGET")
        mapping[key] = value
    path = import_checkpoint(from_, source, arch, list(set_ or []), out, mapping, guide)
    out_console.print(f"checkpoint: {path}", soft_wrap=True)


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(metavar="SPEC",
                                         help="Sweep spec (e.g. experiments/guideline_pcm.toml).")],
    out: Annotated[Path, typer.Option("--out", metavar="DIR",
                                      help="Output directory (resumed if it exists).",
                                      callback=output_directory)],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Override a value of the spec itself (repeatable), e.g. --set "
             "base.eval.n_samples=30 or --set 'seeds=[0]'.")] = None,
    workers: Annotated[int, typer.Option("--workers", metavar="N",
                                         help="Worker processes.")] = 1,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", metavar="ADDRESS",
        help="Run on the Dask cluster of this scheduler (tcp://HOST:PORT).")] = None,
    dask_local: Annotated[int | None, typer.Option(
        "--dask-local", metavar="N", help="Run on a local Dask cluster of N one-thread "
                                          "workers.")] = None,
    cache: Annotated[Path | None, typer.Option(
        "--cache", metavar="DIR", help="Model cache shared between sweeps (default: "
                                       "OUT/cache).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Run a sweep spec (docs/sweeps.md); finished points are skipped, so an interrupted sweep
    resumes.

    Example:

    \b
      bayesim sweep experiments/guideline_pcm.toml --out runs/guideline_pcm --workers 2
      bayesim plot runs/guideline_pcm
    """
    from bayesim.progress import progress_bar
    from bayesim.sweep.runner import CSV_NAME, run_sweep
    from bayesim.sweep.spec import load_spec

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if scheduler is not None and dask_local is not None:
        raise ConfigError("give either --scheduler or --dask-local, not both")
    if dask_local is not None and dask_local < 1:
        raise ConfigError(f"--dask-local must be at least 1 worker, got {dask_local}")
    sweep_spec = load_spec(spec, set_ or [])
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
    out: Annotated[Path, typer.Argument(metavar="SWEEP_DIR",
                                        help="A sweep directory (holding results.csv).")],
    kind: Annotated[str | None, typer.Option(
        "--kind", metavar="KIND",
        help="heatmap, lines, bits, pareto, drift, samples or feasibility (default: every "
             "figure of the spec's [[plots]] tables).")] = None,
    x: Annotated[str | None, typer.Option(
        "--x", metavar="KEY", help="x axis: a swept parameter (dotted path; pareto: a "
                                   "metric).")] = None,
    y: Annotated[str | None, typer.Option("--y", metavar="KEY",
                                          help="heatmap: the second parameter.")] = None,
    by: Annotated[str | None, typer.Option(
        "--by", metavar="KEY", help="One line (pareto: colour) per value of this "
                                    "parameter.")] = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", metavar="NAME", help="e.g. auroc_epistemic (the default), accuracy, ece.")]
    = None,
    where: Annotated[list[str] | None, typer.Option(
        "--where", metavar="KEY=VALUE",
        help="Hold a swept parameter at a value, e.g. hardware.mapping=M3 (repeatable; "
             "default: the spec's base value).")] = None,
    over: Annotated[list[str] | None, typer.Option(
        "--over", metavar="KEY", help="pareto: a swept parameter whose configurations compete "
                                      "(repeatable; default: every configuration).")] = None,
) -> None:
    """Plot a sweep's results as PNG and PDF next to them (docs/sweeps.md): the figures its spec
    lists, or the one --kind names.

    Example:

    \b
      bayesim plot runs/guideline_pcm --kind lines --x hardware.read_noise_scale \\
          --by hardware.mapping --metric auroc_epistemic
    """
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
        out_console.print(f"plot:   {path}", soft_wrap=True)
    for reason in skipped:
        out_console.print(f"skipped: {reason}", soft_wrap=True)


@data_app.command("info")
def data_info(as_json: Annotated[bool, typer.Option(
        "--json", help="Print the rows as JSON instead of the table.")] = False) -> None:
    """Show where each data set was found (or why not).

    Example:

    \b
      bayesim data info --json
    """
    from bayesim.data.sources import data_home, describe_sources

    rows = describe_sources()
    if as_json:
        _print_json({"data_home": str(data_home()), "datasets": rows})
        return
    table = Table(title=f"data sets (data home: {data_home()})")
    for column in ("dataset", "found", "kind", "path / reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["dataset"], row["found"], row["kind"], row["path"] or row["origin"])
    print_table(table)


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(metavar="NAME", help="mnist or fashion-mnist")],
    dest: Annotated[Path | None, typer.Option(
        "--dest", metavar="DIR", help="Target directory (default: $BAYESIM_DATA/NAME).")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", metavar="URL",
        help="Download from this mirror instead of the official ones.")] = None,
) -> None:
    """Download the official IDX files of NAME and check their MD5 sums (needs internet; nothing
    else in bayesim downloads).

    Example:

    \b
      bayesim data fetch fashion-mnist
    """
    from bayesim.data.sources import fetch

    target = fetch(name, dest, base_url=base_url,
                   on_file=lambda f, status: out_console.print(f"{f}: {status}"))
    out_console.print(f"{name}: {target}", soft_wrap=True)


DeviceArgument = Annotated[str, typer.Argument(
    metavar="CARD",
    help="A card name from 'bayesim devices list' or the path of a card file (.toml).")]
DevicesJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")]
ConductanceUnit = Annotated[str | None, typer.Option(
    "--g-unit", metavar="UNIT", help="Measurements: the conductance unit where the header gives "
                                     "none (S, mS, uS or nS).")]
TimeUnit = Annotated[str | None, typer.Option(
    "--t-unit", metavar="UNIT", help="Measurements: the time unit where the header gives none "
                                     "(s, ms, us, min, h or day).")]


@devices_app.command("list")
def devices_list(as_json: DevicesJson = False) -> None:
    """The shipped device cards: technology, conductance range (µS) and status.

    Example:

    \b
      bayesim devices list
    """
    from bayesim.devices.presets import list_presets, read_card

    rows = []
    for name in list_presets():
        card = read_card(name)
        rng = card.get("range", {})
        rows.append({"name": name, "technology": str(card.get("technology", "")),
                     "status": str(card.get("status", "measured")),
                     "g_min_uS": rng.get("g_min", {}).get("value"),
                     "g_max_uS": rng.get("g_max", {}).get("value")})
    if as_json:
        _print_json({"cards": rows})
        return
    table = Table(title="device cards (device_models/)")
    for column in ("name", "technology", "status", "G range (µS)"):
        table.add_column(column)
    for row in rows:
        span = ("—" if row["g_min_uS"] is None or row["g_max_uS"] is None
                else f"{row['g_min_uS']:g} – {row['g_max_uS']:g}")
        table.add_row(row["name"], row["technology"], row["status"], span)
    print_table(table)


def card_parameters(card: dict) -> list[dict]:
    """Every parameter of a card as {parameter, value, unit, source} (laws and shapes with an
    empty unit), in the card's order."""
    rows: list[dict] = []

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict) and "value" in node and "unit" in node:
            row = {"parameter": path, "value": node["value"], "unit": str(node["unit"]),
                   "source": str(node.get("source", ""))}
            if "ci95" in node:  # a fitted card's 95 % interval
                row["ci95"] = node["ci95"]
            rows.append(row)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")
        elif path.endswith(("law", "shape", "relative")):
            rows.append({"parameter": path, "value": node, "unit": "", "source": ""})

    walk({k: v for k, v in card.items() if k not in ("name", "summary", "sources", "fit")}, "")
    return rows


@devices_app.command("show")
def devices_show(name: DeviceArgument, as_json: DevicesJson = False) -> None:
    """Every parameter of one card with its value, unit and source, then the cited sources.

    Example:

    \b
      bayesim devices show pcm_ibm_2020
    """
    from bayesim.devices.presets import card_path, load_preset, read_card

    card = read_card(name)
    if card.get("status", "measured") != "template":
        load_preset(name)  # validate: a broken card is an error, not a listing
    rows = card_parameters(card)
    if as_json:
        _print_json({"name": card.get("name", name), "file": str(card_path(name)),
                     "summary": card.get("summary", ""), "parameters": rows,
                     "sources": card.get("sources", {})})
        return
    out_console.print(f"{card.get('name', name)} ({card_path(name)})", markup=False,
                      soft_wrap=True)
    out_console.print(str(card.get("summary", "")), markup=False)
    table = Table()
    fitted = any("ci95" in row for row in rows)  # a card of `bayesim devices fit`
    for column in ("parameter", "value", "unit", "source") + (("95 % interval",) if fitted
                                                               else ()):
        table.add_column(column)
    for row in rows:
        cells = [row["parameter"], str(row["value"]), row["unit"], row["source"]]
        table.add_row(*cells, *([str(row.get("ci95", ""))] if fitted else []))
    print_table(table)
    for key, citation in card.get("sources", {}).items():
        out_console.print(f"[{key}] {citation}", markup=False, soft_wrap=True)


@devices_app.command("fit")
def devices_fit(
    data: Annotated[list[Path], typer.Argument(
        metavar="DATA...", help="Measurement files (CSV or Parquet, docs/devices_fit.md): "
                                "programming, repeated reads and/or drift traces.")],
    out: Annotated[Path, typer.Option("--out", metavar="FILE", callback=output_file,
                                      help="The card to write (.toml).")],
    name: Annotated[str | None, typer.Option(
        "--name", metavar="NAME", help="The card's name (default: the --out file's stem).")]
    = None,
    technology: Annotated[str, typer.Option("--technology", metavar="TEXT",
                                            help="e.g. RRAM, PCM, FeFET, ECRAM.")] = "unknown",
    g_unit: ConductanceUnit = None,
    t_unit: TimeUnit = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", metavar="B",
                                           help="Bootstrap replicates per law (95 % "
                                                "intervals).")] = 200,
    seed: Annotated[int, typer.Option("--seed", metavar="N",
                                      help="Seeds the folds and the bootstrap.")] = 0,
    window: Annotated[tuple[float, float] | None, typer.Option(
        "--window", metavar="LO HI",
        help="The conductances the device clips to, µS: the programming law is fitted to "
             "states clipped there, and the card's window is it (default: the measured "
             "range, no clipping modelled).")] = None,
    plot: Annotated[bool, typer.Option(
        "--plot", help="Also draw the fitted laws over the data (the card's name, .png and "
                       ".pdf).")] = False,
    as_json: DevicesJson = False,
) -> None:
    """Fit a device card to measurements: σ_prog(G) and σ_read(G) as the card's law families
    (constant, proportional, sqrt, polynomial, piecewise, or a table) chosen by cross-validated
    likelihood, drift ν_mean(G) and ν_std(G) (constant, log-linear, clamped log-linear),
    bootstrap intervals on every parameter; the calibrated range is the measured one.

    Example:

    \b
      bayesim devices fit reads.csv drift.csv --out my_rram.toml --technology RRAM --plot
      bayesim devices show my_rram.toml
    """
    from bayesim.atomic import write_text
    from bayesim.devices.fitted_card import extrapolated, fit_card, to_toml

    if bootstrap < 1:
        raise ConfigError(f"--bootstrap must be at least 1, got {bootstrap}")
    if out.suffix != ".toml":
        raise ConfigError(f"--out {out}: a card is a .toml file")
    card, by_kind = fit_card([str(p) for p in data], name or out.stem, technology, g_unit,
                             t_unit, bootstrap, seed, window)
    kinds = {str(d.path): kind for kind, d in by_kind.items()}
    text = to_toml(card)
    if plot:  # before the card: a figure that cannot be drawn leaves no card behind
        from bayesim.devices.presets import build_model
        from bayesim.plots.device_fit import plot_fit

        figure = plot_fit(build_model(card, out.stem), by_kind, out.with_suffix(".png"))
        out_console.print(f"plot: {figure} and {figure.with_suffix('.pdf')}", markup=False,
                          soft_wrap=True)
    write_text(out, text)
    laws = {key: {k: v for k, v in card[key].items() if k in ("law", "shape")}
            for key in ("program", "read") if key in card}
    if "drift" in card:
        laws["drift"] = card["fit"]["drift_families"]
    if as_json:
        _print_json({"card": str(out), "kinds": kinds, "laws": laws,
                     "notes": extrapolated(card)})
        return
    for path, kind in kinds.items():
        out_console.print(f"{path}: {kind}", markup=False, soft_wrap=True)
    for key, law in laws.items():
        out_console.print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in law.items()),
                          markup=False)
    for line in extrapolated(card):
        out_console.print(line, markup=False, soft_wrap=True)
    out_console.print(f"card: {out} (bayesim devices show {out})", markup=False, soft_wrap=True)


@devices_app.command("plot")
def devices_plot(
    name: DeviceArgument,
    out: Annotated[Path, typer.Option(
        "--out", metavar="FILE", callback=output_file,
        help="The PNG to write; the PDF is written beside it (same name, .pdf).")]
    = Path("device.png"),
    data: Annotated[list[Path] | None, typer.Option(
        "--data", metavar="FILE",
        help="Measurement files (docs/devices_fit.md): draw the card's laws over their binned "
             "data instead (repeat for several files).")] = None,
    g_unit: ConductanceUnit = None,
    t_unit: TimeUnit = None,
) -> None:
    """σ_prog(G), σ_read(G), accumulated σ(G, t), ν(G) and the drift of G over time, as PNG and
    PDF; with --data, the card's laws over measured data (a fitted card over its own data, or
    any card over yours).

    Example:

    \b
      bayesim devices plot rram_lin2023 --out figures/rram.png
      bayesim devices plot my_rram.toml --data reads.csv --out figures/my_rram_fit.png
    """
    from bayesim.devices.presets import load_preset
    from bayesim.plots.devices import plot_device

    if out.suffix.lower() not in (".png", ".pdf"):
        raise ConfigError(f"--out must name a .png or .pdf file (both are written), got {out}")
    model = load_preset(name)
    if data:
        from bayesim.devices.fitted_card import read_by_kind
        from bayesim.plots.device_fit import plot_fit

        png = plot_fit(model, read_by_kind([str(p) for p in data], g_unit, t_unit),
                       out.with_suffix(".png"))
    else:
        png = plot_device(model, out.with_suffix(".png"))
    out_console.print(f"plot: {png} and {png.with_suffix('.pdf')}", soft_wrap=True)


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
