"""Sweep specs: which points a sweep runs, expanded deterministically from a TOML file.

```toml
name = "guideline-pcm"
run = "analog"                     # fp32 | digital | analog: what each point evaluates
seeds = [0, 1, 2]                  # every point once per seed (the experiment's root seed)
mode = "grid"                      # or "random"
n_random = 20                      # random mode: points drawn (per seed)
random_seed = 0                    # random mode: the draw of the points

[base]                             # an ExperimentConfig: the values every point starts from
data.ood_limit = 2000
hardware.device = "pcm_ibm_2020"

[grid]                             # grid mode: every combination, in the order written
"hardware.adc_bits" = [4, 6, 8]
"hardware.mapping" = ["M1", "M3"]
# or several grids, each a [[grid]] table: the union of their points (a point in two grids runs
# once), e.g. a heatmap grid plus one-parameter-at-a-time grids around the base

[random]                           # random mode: one distribution per dotted path
"hardware.read_noise_scale" = { low = 0.25, high = 4.0, log = true }
"hardware.adc_bits" = { choices = [4, 6, 8, 10] }
```

Further keys: ``seed_key`` (the dotted path the seeds set: ``seed``, the experiment's root seed,
retrains the model per seed; ``hardware.chip_seed`` keeps one trained model and programs a new
chip per seed), ``references`` (``["fp32", "digital"]``: the software predictors evaluated once
per seed on the base config, or a table giving each its own changes, drawn as reference lines by
the plots) and ``[[plots]]`` (the figures
``bayesim plot DIR`` draws by default; bayesim.plots.sweep).

Every point is the base config with its values set at dotted paths, then its seed; it is validated
as a whole :class:`~bayesim.config.ExperimentConfig` (an unknown path or a bad value is a
:class:`~bayesim.errors.ConfigError` naming it) and identified by the hash of the fully resolved
config, the predictor it runs included (``run``, bayesim.sweep.store.point_id). The spec's own
hash (of its expanded point ids) keys the results store, so a store never mixes two specs.
"""

import hashlib
import itertools
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from bayesim.config import ExperimentConfig, apply_overrides, read_toml, validate
from bayesim.errors import ConfigError
from bayesim.schema import StrictModel
from bayesim.sweep.store import canonical_json, point_id


class Distribution(StrictModel):
    """A random-search axis: a uniform (or log-uniform) range, or a list of choices."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> "Distribution":
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("a range needs low < high")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    def draw(self, rng: random.Random) -> Any:
        if self.choices is not None:
            return rng.choice(self.choices)
        assert self.low is not None and self.high is not None
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return round(value) if self.integer else value


Run = Literal["fp32", "digital", "analog", "shared", "shared_digital", "shared_analog"]

Reference = Literal["fp32", "digital", "analog", "shared"]


class PlotSpec(StrictModel):
    """One figure of a sweep (arguments of bayesim.plots.sweep.plot)."""

    kind: Literal["heatmap", "lines", "bits", "pareto", "drift", "samples", "feasibility",
                  "energy"]
    x: str | None = None
    y: str | None = None
    by: str | None = None
    metric: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    """Fix these swept parameters (dotted path → value) instead of their base values."""
    over: list[str] = Field(default_factory=list)
    """pareto: the swept parameters whose configurations compete (others held at the base);
    empty: every configuration of the sweep."""


class SweepSpec(StrictModel):
    """A sweep over dotted config paths (module docstring)."""

    name: str = "sweep"
    run: Run = "analog"
    """What every point evaluates: the fp32 software predictor, the digital quantized one
    (``[base.quant]``), or the analog machine (``[base.hardware]``, like ``bayesim simulate``);
    ``shared*`` the same three for the stochastic-weight-sharing model of ``[base.sharing]``
    (``bayesim share``; shared_digital quantizes its codebook with ``[base.quant]``)."""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    seed_key: str = "seed"
    """The dotted config path the seeds set (``seed`` retrains per seed; ``hardware.chip_seed``
    programs a new chip on one trained model)."""
    references: list[Reference] | dict[Reference, dict[str, Any]] = Field(default_factory=list)
    """Software predictors evaluated on the base config (per seed when ``seed_key`` is
    ``seed``), the reference lines of the plots; as a table, each with its own dotted-path
    changes, e.g. ``{ fp32 = {}, digital = { "quant.strategy" = "JQ", "quant.bits" = 4 } }``."""
    mode: Literal["grid", "random"] = "grid"
    n_random: int = Field(default=10, ge=1)
    random_seed: int = Field(default=0, ge=0)
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] | list[dict[str, list[Any]]] = Field(default_factory=dict)
    random: dict[str, Distribution] = Field(default_factory=dict)
    plots: list[PlotSpec] = Field(default_factory=list)

    @property
    def grids(self) -> list[dict[str, list[Any]]]:
        """The grid tables (one, or several ``[[grid]]`` tables)."""
        return [self.grid] if isinstance(self.grid, dict) else list(self.grid)

    @model_validator(mode="after")
    def _axes(self) -> "SweepSpec":
        tables = self.grids if self.mode == "grid" else [self.random]
        if not tables or any(not axes for axes in tables):
            raise ValueError(f"a {self.mode} sweep needs at least one axis in every "
                             f"[{self.mode}] table")
        for axes in self.grids:
            for path, values in axes.items():
                if not values:
                    raise ValueError(f"grid axis '{path}' is empty; give at least one value")
        return self


@dataclass(frozen=True)
class Point:
    """One sweep point: the values it sets, its seed, its resolved config (with ``run``, the
    predictor it evaluates) and identity."""

    values: dict[str, Any]
    seed: int
    config: dict[str, Any]

    @property
    def run(self) -> Run:
        return self.config["run"]

    @property
    def id(self) -> str:
        return point_id(self.config)


def load_spec(path: str | os.PathLike[str], overrides: list[str] | None = None) -> SweepSpec:
    """Read and validate a sweep spec (``--set`` overrides apply to the spec itself)."""
    data = apply_overrides(read_toml(path), overrides or [])
    return validate(SweepSpec, data, str(Path(path)))


def expand(spec: SweepSpec) -> list[Point]:
    """The points of ``spec`` in a fixed order: the references first (per seed), then each grid's
    product in the order written (then seeds), or ``n_random`` draws from ``random_seed`` (then
    seeds). A point that an earlier grid already holds is not repeated. Every point is
    validated; the first bad one raises a ConfigError naming its path and value."""
    combos: list[dict[str, Any]] = []
    if spec.mode == "grid":
        for axes in spec.grids:
            paths = list(axes)
            combos += [dict(zip(paths, values, strict=True))
                       for values in itertools.product(*(axes[p] for p in paths))]
    else:
        rng = random.Random(spec.random_seed)
        combos = [{p: d.draw(rng) for p, d in spec.random.items()} for _ in range(spec.n_random)]
    reference_seeds = spec.seeds if spec.seed_key == "seed" else [None]
    references = spec.references if isinstance(spec.references, dict) else \
        dict.fromkeys(spec.references, {})
    todo: list[tuple[Run, dict[str, Any], int | None]] = [
        (run, changes, seed) for run, changes in references.items() for seed in reference_seeds]
    todo += [(spec.run, values, seed) for values in combos for seed in spec.seeds]
    points: dict[str, Point] = {}
    for run, values, seed in todo:
        overrides = [f"{p}={_toml(v)}" for p, v in values.items()]
        if seed is not None:
            overrides.append(f"{spec.seed_key}={seed}")
        label = ", ".join([f"run={run}"] + [f"{p}={v!r}" for p, v in values.items()])
        config = validate(ExperimentConfig, apply_overrides(spec.base, overrides),
                          f"sweep point ({label}, {spec.seed_key} {seed})")
        point = Point(values, spec.seeds[0] if seed is None else seed,
                      {"run": run, **config.model_dump(mode="json")})
        points.setdefault(point.id, point)
    return list(points.values())


def base_config(spec: SweepSpec) -> dict[str, Any]:
    """The spec's base as a fully resolved config (the values plots fix unplotted axes at)."""
    config = validate(ExperimentConfig, spec.base, "sweep base")
    return {"run": spec.run, **config.model_dump(mode="json")}


def spec_hash(points: list[Point]) -> str:
    """The identity of an expanded spec: hash of its ordered point ids."""
    return hashlib.sha256(canonical_json([p.id for p in points]).encode()).hexdigest()


def _toml(value: Any) -> str:
    """A value as the TOML text that apply_overrides reads back to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return canonical_json(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise ConfigError(f"sweep values must be numbers, strings, booleans or lists, got {value!r}")
