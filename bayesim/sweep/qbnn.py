"""The reproduction grid of "Uncertainty-Preserving QBNNs" (Borras et al., arXiv 2512.10602).

For every seed: train the fp32 BNN of ``[base]`` once, evaluate it, then for every strategy × bit
width × mode (PTQ, QAT) quantize that same model and evaluate the digital predictor; then the
ablations, each a set of (strategy, bits, mode) points with extra ``--set`` overrides and an
optional model override (e.g. plain ReLU instead of the bounded activation), in which case the
ablation's own fp32 model is trained first. Every point writes its report atomically under
``OUT/points/<id>/``; a point whose report exists is skipped, so an interrupted run resumes where
it stopped.

Outputs: ``results.csv``, ``results.md`` (mean ± std over seeds) and the plots of
bayesim.plots.qbnn.
"""

import csv
import io
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from bayesim.atomic import write_text
from bayesim.config import ExperimentConfig, apply_overrides, read_toml, validate
from bayesim.data.dirty import build_benchmark
from bayesim.pipeline import (
    CHECKPOINT_NAME,
    evaluate_model,
    load_model,
    quantize_trained,
    train_experiment,
    write_evaluation,
)
from bayesim.progress import progress_bar
from bayesim.reports import REPORT_NAME, sweep_row
from bayesim.schema import StrictModel

METRICS = ("accuracy", "nll", "ece", "auroc_aleatoric", "auroc_epistemic", "auroc_epistemic_pe",
           "mean_ee_clean", "mean_ee_ambiguous", "mean_ee_ood", "mean_mi_clean",
           "mean_mi_ambiguous", "mean_mi_ood", "bits_per_weight", "compression_vs_fp32",
           "energy_per_inference_J")


Bits = Annotated[int, Field(ge=1, le=16)]


class Ablation(StrictModel):
    """A variation of the grid: its own overrides, run at ``strategy`` × ``bits`` × ``modes``."""
    name: str
    strategy: Literal["VPQ", "SPQ", "JQ"] = "JQ"
    bits: list[Bits] = Field(default_factory=lambda: [4], min_length=1)
    modes: list[Literal["PTQ", "QAT"]] = Field(default_factory=lambda: ["QAT"], min_length=1)
    set: list[str] = Field(default_factory=list)
    """Overrides of the quantization point (e.g. quant.sigma_quantizer='uniform')."""
    model_set: list[str] = Field(default_factory=list)
    """Overrides of the base experiment that need their own fp32 model (e.g. model.activation)."""


class QbnnGrid(StrictModel):
    name: str = "qbnn-grid"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    strategies: list[Literal["VPQ", "SPQ", "JQ"]] = Field(
        default_factory=lambda: ["VPQ", "SPQ", "JQ"])
    bits: list[Bits] = Field(default_factory=lambda: [2, 3, 4, 6, 8], min_length=1)
    modes: list[Literal["PTQ", "QAT"]] = Field(default_factory=lambda: ["PTQ", "QAT"])
    qat_epochs: int = Field(default=5, ge=1)
    base: dict[str, Any] = Field(default_factory=dict)
    """An experiment config (data, model, train, eval, quant sections)."""
    ablations: list[Ablation] = Field(default_factory=list)


def _row(report: dict, **keys: Any) -> dict[str, Any]:
    """A point's row: its keys and :data:`METRICS`, from the sweep row (bayesim.reports.sweep_row)
    and the compression against fp32 (a subset missing with own data, e.g. no OOD, is None)."""
    metrics = {**sweep_row(report),
               "compression_vs_fp32": report["memory"]["compression_vs_fp32"]}
    return {**keys, **{k: metrics.get(k) for k in METRICS}}


def load_grid(path: str | os.PathLike[str], overrides: list[str] = ()) -> QbnnGrid:
    grid = validate(QbnnGrid, apply_overrides(read_toml(path), list(overrides)), str(path))
    validate(ExperimentConfig, grid.base, f"{path} [base]")  # fail before any work
    return grid


def run_grid(grid: QbnnGrid, out_dir: str | os.PathLike[str], progress: bool = True,
             log: Callable[[str], None] = print) -> Path:
    """Run (or resume) every point of ``grid``; returns the path of results.csv."""
    out = Path(out_dir)
    # one family per fp32 model: the base one, plus one per ablation that changes the model;
    # ablations that only change the quantization join the base family
    families: dict[str, tuple[list[str], list]] = {"base": ([], _main_points(grid))}
    for ab in grid.ablations:
        family = ab.name if ab.model_set else "base"
        points = families.setdefault(family, (ab.model_set, []))[1]
        points += [(ab.name, ab.strategy, b, m, ab.set) for b in ab.bits for m in ab.modes]
    rows: list[dict[str, Any]] = []
    for seed in grid.seeds:
        for family, (model_set, points) in families.items():
            rows += _run_family(grid, out, seed, family, model_set, points, progress, log)
    return write_results(rows, out)


def _main_points(grid: QbnnGrid) -> list[tuple[str, str, int, str, list[str]]]:
    return [("grid", s, b, m, []) for s in grid.strategies for b in grid.bits for m in grid.modes]


def _run_family(grid: QbnnGrid, out: Path, seed: int, family: str, model_set: list[str],
                points: list[tuple[str, str, int, str, list[str]]], progress: bool,
                log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The fp32 model of one (seed, family) and its quantized points."""
    config = validate(ExperimentConfig, apply_overrides(grid.base, [f"seed={seed}", *model_set]),
                      f"[base] with seed {seed}")
    model_dir = out / "points" / f"{family}-fp32-s{seed}"
    rows, todo = [], []
    for group, strategy, bits, mode, sets in points:
        point_dir = out / "points" / f"{group}-{strategy}-{bits}-{mode}-s{seed}"
        keys = {"group": group, "strategy": strategy, "bits": bits, "mode": mode, "seed": seed}
        if (point_dir / REPORT_NAME).is_file():
            rows.append(_row(json.loads((point_dir / REPORT_NAME).read_text()), **keys))
        else:
            todo.append((point_dir, keys, sets))
    fp_keys = {"group": family, "strategy": "fp32", "bits": 32, "mode": "-", "seed": seed}
    if (model_dir / REPORT_NAME).is_file() and not todo:
        return [_row(json.loads((model_dir / REPORT_NAME).read_text()), **fp_keys), *rows]
    if (model_dir / CHECKPOINT_NAME).is_file():  # resume: reuse the trained model
        model, _ = load_model(model_dir / CHECKPOINT_NAME)
        benchmark = build_benchmark(config.data, config.seed)
    else:
        log(f"seed {seed}, {family}: training the fp32 model")
        trained = train_experiment(config, model_dir, progress)
        model, benchmark = trained.model, trained.benchmark
    if not (model_dir / REPORT_NAME).is_file():
        write_evaluation(evaluate_model(model, benchmark, config, progress), model_dir)
    fp_row = _row(json.loads((model_dir / REPORT_NAME).read_text()), **fp_keys)
    with progress_bar(f"seed {seed}, {family}: {len(todo)} quantized points",
                      progress) as update:
        for i, (point_dir, keys, sets) in enumerate(todo):
            qat = grid.qat_epochs if keys["mode"] == "QAT" else 0
            point_config = validate(ExperimentConfig, apply_overrides(
                config.model_dump(mode="json"),
                [f"quant.strategy='{keys['strategy']}'", f"quant.bits={keys['bits']}",
                 f"quant.qat_epochs={qat}", *sets]), point_dir.name)
            qmodel, qpath = quantize_trained(model, benchmark, point_config, point_dir,
                                             str(model_dir / CHECKPOINT_NAME), progress=False)
            result = evaluate_model(qmodel, benchmark, point_config, progress=False)
            report = write_evaluation(result, point_dir, {"checkpoint": str(qpath)})
            rows.append(_row(json.loads(report.read_text()), **keys))
            update(i + 1, len(todo))
    return [fp_row, *rows]


def write_results(rows: list[dict[str, Any]], out: Path) -> Path:
    """``results.csv`` (one row per point and seed) and ``results.md`` (mean ± std over seeds)."""
    columns = ["group", "strategy", "bits", "mode", "seed", *METRICS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "results.csv", buffer.getvalue())
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["group"], row["strategy"], row["bits"], row["mode"]), []).append(row)
    shown = ("accuracy", "ece", "auroc_aleatoric", "auroc_epistemic", "auroc_epistemic_pe",
             "mean_mi_ood", "compression_vs_fp32")
    lines = ["| group | strategy | bits | mode | seeds | " + " | ".join(shown) + " |",
             "|---|---|---|---|---|" + "---|" * len(shown)]
    for (group, strategy, bits, mode), members in groups.items():
        cells = []
        for metric in shown:
            values = [m[metric] for m in members]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.4f} ± {sd:.4f}")
        lines.append(f"| {group} | {strategy} | {bits} | {mode} | {len(members)} | "
                     + " | ".join(cells) + " |")
    write_text(out / "results.md", "\n".join(lines) + "\n")
    return out / "results.csv"
