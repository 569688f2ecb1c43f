"""The results of a sweep directory, as the plots and the tables read them: the finished rows of
``results.csv``, the spec saved beside them (``spec.json``), the held and averaged parameters of a
selection, the reference predictors' rows, and how a value reads on an axis or in a table.
"""

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bayesim.errors import ConfigError, DataError
from bayesim.sweep.runner import CSV_NAME, SPEC_NAME
from bayesim.sweep.spec import SweepSpec, base_config
from bayesim.sweep.store import flatten
from bayesim.units import human_time


def parse_cell(text: str) -> float | str:
    """A results.csv cell as a number where it is one, else the text."""
    try:
        return float(text)
    except ValueError:
        return text


def csv_text(value: Any) -> str:
    """A config value as results.csv writes it."""
    return "" if value is None else str(value)


NONE_LABELS = {"hardware.levels_bits": "analog", "hardware.alpha": "auto",
               "hardware.p_stuck_min": "none"}
"""How an unset value (empty in results.csv) reads on an axis."""


def format_value(value: float | str, path: str = "") -> str:
    """A parameter value as an axis tick reads it (times after programming in human units,
    bayesim.units.human_time)."""
    if value == "":
        return NONE_LABELS.get(path, "default")
    if not isinstance(value, float):
        return str(value)
    if path == "hardware.drift_time" and value > 0:
        return human_time(value)
    return f"{value:g}"


def sorted_values(values) -> list:
    """Parameter values in axis order: numbers ascending, then texts."""
    return sorted(values, key=lambda v: (isinstance(v, str), v))


@dataclass
class SweepResults:
    """The finished points of a sweep directory and what its spec says about them."""

    out_dir: Path
    rows: list[dict[str, str]]
    base: dict[str, str]
    """``config.<path>`` → the base config's value as CSV text (empty without spec.json)."""
    seed_column: str
    run: str | None

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "SweepResults":
        out_dir = Path(out_dir)
        path = out_dir / CSV_NAME
        if not path.is_file():
            raise DataError(f"{out_dir} holds no results.csv; run 'bayesim sweep SPEC --out "
                            f"{out_dir}' first")
        with path.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("status") == "done"]
        if not rows:
            raise DataError(f"{path} has no finished point to plot")
        spec = read_spec(out_dir)
        base: dict[str, str] = {}
        seed_column, run = "config.seed", None
        if spec is not None:
            base = {f"config.{k}": csv_text(v) for k, v in flatten(base_config(spec)).items()}
            seed_column, run = f"config.{spec.seed_key}", spec.run
        return cls(out_dir, rows, base, seed_column, run)

    def column(self, name: str, kind: str) -> str:
        column = f"{kind}.{name}"
        if column not in self.rows[0]:
            choices = sorted(k.split(".", 1)[1] for k in self.rows[0]
                             if k.startswith(kind + ".") and k != "config.run")
            raise ConfigError(f"no {kind} '{name}' in the results; choose one of "
                              f"{', '.join(choices)}")
        return column

    def swept(self, rows: list[dict[str, str]]) -> list[str]:
        """The config columns that vary among ``rows`` (the run and the seed excluded)."""
        return [c for c in rows[0] if c.startswith("config.") and c != "config.run"
                and c != self.seed_column and len({r[c] for r in rows}) > 1]

    def _of_run(self, runs: set[str]) -> list[dict[str, str]]:
        if "config.run" not in self.rows[0]:
            return self.rows if self.run in runs or self.run is None else []
        return [r for r in self.rows if r["config.run"] in runs]

    def select(self, axes: list[str], where: dict[str, Any] | None = None,
               hold_base: bool = True) -> tuple[list[dict[str, str]], str]:
        """The main run's points for a plot over ``axes`` (config columns): every other swept
        parameter at its ``where`` value, else its base value when points exist there, else
        averaged over (named in the returned note)."""
        rows = self._of_run({self.run}) if self.run else self.rows
        fixed = {self.column(path, "config"): parse_cell(csv_text(value))
                 for path, value in (where or {}).items()}
        averaged = []
        for column, value in fixed.items():
            present = {parse_cell(r[column]) for r in rows}
            if value not in present:
                raise ConfigError(f"no point has {column[7:]} = {format_value(value)}; it takes "
                                  f"{', '.join(format_value(v) for v in sorted_values(present))}")
        for column in self.swept(rows):
            if column in axes or column in fixed:
                continue
            present = {parse_cell(r[column]) for r in rows}
            if hold_base and column in self.base and parse_cell(self.base[column]) in present:
                fixed[column] = parse_cell(self.base[column])
            else:
                averaged.append(column[7:])
        rows = [r for r in rows if all(parse_cell(r[c]) == v for c, v in fixed.items())]
        notes = [f"{path} = {format_value(parse_cell(csv_text(value)), path)}"
                 for path, value in (where or {}).items()]
        if averaged:
            notes.append(f"averaged over {', '.join(averaged)}")
        return rows, "; ".join(notes)

    def reference_rows(self, metric_column: str) -> list[tuple[str, list[dict[str, str]]]]:
        """(label, finished rows with ``metric_column``) of each reference predictor."""
        out = []
        for run in ("fp32", "digital"):
            rows = [r for r in self._of_run({run}) if r.get(metric_column, "") != ""]
            if not rows or run == self.run:
                continue
            label = "fp32 software"
            if run == "digital":
                label = (f"digital {rows[0].get('config.quant.strategy', '')}-"
                         f"{rows[0].get('config.quant.bits', '')}")
            out.append((label, rows))
        return out

    def references(self, metric_column: str) -> list[tuple[str, float, float]]:
        """(label, mean, std) of each reference predictor of the sweep, for ``metric``."""
        out = []
        for label, rows in self.reference_rows(metric_column):
            values = [float(r[metric_column]) for r in rows]
            out.append((label, float(np.mean(values)), float(np.std(values))))
        return out


def read_spec(out_dir: str | os.PathLike[str]) -> SweepSpec | None:
    """The SweepSpec saved next to a sweep's results, or None (a directory from before)."""
    path = Path(out_dir) / SPEC_NAME
    if not path.is_file():
        return None
    try:
        return SweepSpec.model_validate(json.loads(path.read_text()))
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a sweep spec ({exc}); run the sweep again") from None
