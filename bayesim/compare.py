"""`bayesim compare`: several runs side by side — their headline rows (bayesim.reports) and one
figure of their reliability diagrams and EE/MI histograms overlaid (bayesim.plots.compare)."""

import json
from pathlib import Path

import numpy as np

from bayesim.atomic import write_json
from bayesim.errors import DataError
from bayesim.reports import REPORT_NAME, SCORES_NAME, Run, label, summary_row

FIGURE_NAME = "comparison.png"
TABLE_NAME = "comparison.json"


def read_runs(directories: list[Path]) -> list[Run]:
    """Read every run before anything is drawn; a directory without a readable report.json is a
    DataError naming it."""
    runs = []
    for directory in directories:
        path = Path(directory) / REPORT_NAME
        if not Path(directory).is_dir():
            raise DataError(f"{directory} is not a directory; give run directories written by "
                            f"evaluate, simulate, quantize, share or demo")
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            report = None
        if not isinstance(report, dict) or not {"predictor", "in_distribution",
                                                 "uncertainty"} <= set(report):
            raise DataError(f"{directory} holds no readable {REPORT_NAME}; give run directories "
                            f"written by evaluate, simulate, quantize, share or demo")
        scores = None
        if (Path(directory) / SCORES_NAME).is_file():
            with np.load(Path(directory) / SCORES_NAME) as data:
                scores = {k: data[k] for k in data.files}
        runs.append(Run(Path(directory), report, scores, label(report["predictor"])))
    names = [run.name for run in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = f"{run.name} ({run.directory})"
    return runs


def comparison_rows(runs: list[Run]) -> list[dict]:
    """The summary row of every run (bayesim.reports.summary_row) with its name and directory:
    comparison.json and `bayesim compare --json`."""
    return [{**summary_row(run.report), "name": run.name, "run": str(run.directory)}
            for run in runs]


def write_comparison(runs: list[Run], out: Path) -> list[Path]:
    """``out/comparison.png`` and ``.pdf`` (the figure) and ``out/comparison.json`` (the rows)."""
    from bayesim.plots.compare import plot_comparison

    png = plot_comparison(runs, Path(out) / FIGURE_NAME)
    table = Path(out) / TABLE_NAME
    write_json(table, {"runs": comparison_rows(runs)})
    return [png, png.with_suffix(".pdf"), table]
