"""Device cards: TOML files in ``device_models/`` that describe one technology each.

Every number in a card is a table ``{ value = …, unit = "…", source = "…" }``; a card whose number
lacks its unit or source, carries the wrong unit, or describes a negative σ anywhere in its
calibrated range is refused with a ConfigError naming the key. A card with
``status = "template"`` documents a technology without measured values and refuses to load until
the user supplies them (copy it, fill in the numbers, set ``status = "measured"``).

Layout of a card (see device_models/pcm_ibm_2020.toml for a complete one)::

    name, technology, summary, status = "measured" | "template"
    [sources]      short key → full citation
    [range]        g_min, g_max (µS), levels (1), calibrated_g [lo, hi] (µS), calibrated_t (s)
    [program]      law tables (below) + shape; or [[program.timed]] with t (s) and a law each
    [read]         per-read noise law + shape (optional)
    [accumulated]  one_over_f: t_read (s), relative (bool), [accumulated.amplitude] law
    [drift]        t0 (s), [drift.nu_mean] and [drift.nu_std] laws (dimensionless)
    [relaxation]   a_mean, a_std, b_std (µS per ln s, µS)
    [defects]      d2d_rel (1), p_stuck_min (1), p_stuck_max (1)

A law table has ``law = "<family>"`` and that family's parameters (bayesim.devices.laws).
"""

import copy
import math
import os
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

import bayesim.devices.laws as laws
from bayesim.devices.model import DeviceModel
from bayesim.errors import ConfigError

CARD_DIR = Path(__file__).resolve().parents[2] / "device_models"
"""The shipped cards (the repository's device_models/; the package is installed editable)."""

US, ONE, SECOND = "uS", "1", "s"

# family → {parameter: unit-or-None}; None means "the law's output unit" (µS for σ laws,
# 1 for dimensionless laws).
FAMILIES: dict[str, dict[str, str | None]] = {
    "constant": {"value": None},
    "proportional": {"k": ONE},
    "sqrt": {"k": "uS^0.5"},
    "inverse": {"k": "uS^2"},
    "polynomial": {"coeffs": None, "g_ref": US},
    "polynomial_abs": {"coeffs": None},
    "power": {"k": None, "p": ONE, "lo": None, "hi": None},
    "log_linear": {"a": None, "b": None, "lo": None, "hi": None},
    "log10_linear": {"a": None, "b": None},
    "table": {"g": US, "sigma": None},
}
_OPTIONAL = {"lo", "hi", "b"}


def card_path(name: str) -> Path:
    """The file of a shipped card (``name``) or a user's card (a path ending in .toml)."""
    path = Path(name) if name.endswith(".toml") or os.sep in name else CARD_DIR / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"device card {name!r} not found; run 'bayesim devices list' for the "
                          f"shipped cards or give the path of a card file")
    return path


def list_presets() -> list[str]:
    return sorted(p.stem for p in CARD_DIR.glob("*.toml"))


def read_card(name: str) -> dict[str, Any]:
    path = card_path(name)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"device card {path}: not valid TOML ({err})") from None


def load_preset(name: str, allow_extrapolation: bool = False,
                g_max: float | None = None) -> DeviceModel:
    """The DeviceModel of a shipped card name or a card file path.

    ``g_max`` (µS) moves the card to another conductance window: g_min, g_max and the calibrated
    conductance range scale by g_max / g_max_card, laws written in x = g / g_max follow by
    construction, and normalised polynomials rescale their σ by g_max / g_ref (aihwkit's
    ``prog_coeff_g_max_reference`` convention). Laws given in absolute µS keep their values."""
    card = read_card(name)
    label = card_path(name).stem
    if g_max is not None:
        card = _with_g_max(card, label, g_max)
    return build_model(card, label, allow_extrapolation)


def _with_g_max(card: dict[str, Any], label: str, g_max: float) -> dict[str, Any]:
    if not (isinstance(g_max, int | float) and math.isfinite(g_max) and g_max > 0):
        raise ConfigError(f"g_max must be a positive number of µS, got {g_max!r}")
    rng = card.get("range", {})
    try:
        ratio = g_max / float(rng["g_max"]["value"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        raise ConfigError(f"device card {label}: range.g_max: missing or not a number; cannot "
                          f"rescale to g_max = {g_max}") from None
    card = copy.deepcopy(card)
    rng = card["range"]
    rng["g_max"]["value"] = float(g_max)
    if isinstance(rng.get("g_min"), dict) and isinstance(rng["g_min"].get("value"), int | float):
        rng["g_min"]["value"] = rng["g_min"]["value"] * ratio
    cal = rng.get("calibrated_g")
    if isinstance(cal, dict) and isinstance(cal.get("value"), list):
        cal["value"] = [v * ratio for v in cal["value"]]
    return card


class _Reader:
    def __init__(self, card: dict[str, Any], label: str) -> None:
        self.card, self.label = card, label

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"device card {self.label}: {key}: {message}")

    def number(self, table: dict[str, Any], key: str, path: str, unit: str | None,
               optional: bool = False) -> Any:
        full = f"{path}.{key}"
        if key not in table:
            if optional:
                return None
            raise self.fail(full, "missing; give it as { value = …, unit = …, source = … }")
        entry = table[key]
        if not isinstance(entry, dict) or "value" not in entry:
            raise self.fail(full, "must be a table { value = …, unit = …, source = … }")
        if "unit" not in entry:
            raise self.fail(full, f"has no unit; add unit = \"{unit or 'uS'}\"")
        if "source" not in entry or not str(entry["source"]).strip():
            raise self.fail(full, "has no source; cite where the number comes from")
        if unit is not None and entry["unit"] != unit:
            raise self.fail(full, f"unit must be {unit!r}, got {entry['unit']!r}")
        value = entry["value"]
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                 and math.isfinite(v) for v in values):
            raise self.fail(full, f"value must be a finite number or a list of them, got {value!r}")
        return [float(v) for v in value] if isinstance(value, list) else float(value)

    def law(self, table: dict[str, Any], path: str, out_unit: str) -> object:
        family = table.get("law")
        if family not in FAMILIES:
            raise self.fail(f"{path}.law", f"must be one of {sorted(FAMILIES)}, got {family!r}")
        params = {}
        for key, unit in FAMILIES[family].items():
            value = self.number(table, key, path, unit or out_unit, optional=key in _OPTIONAL)
            if value is not None:
                params[key] = value
        match family:
            case "constant":
                return laws.Constant(params["value"])
            case "proportional":
                return laws.Proportional(params["k"])
            case "sqrt":
                return laws.Sqrt(params["k"])
            case "inverse":
                return laws.Inverse(params["k"])
            case "polynomial" | "polynomial_abs":
                coeffs = params["coeffs"]
                if not isinstance(coeffs, list):
                    raise self.fail(f"{path}.coeffs", "must be a list [c0, c1, …]")
                # a dimensionless fit in x = g / g_max does not rescale with g_max
                return laws.Polynomial(tuple(coeffs), family == "polynomial", params.get("g_ref"),
                                       rescale=out_unit != ONE)
            case "table":
                g, sigma = params["g"], params["sigma"]
                g, sigma = (g if isinstance(g, list) else [g]), (sigma if isinstance(
                    sigma, list) else [sigma])
                if len(g) != len(sigma) or any(b <= a for a, b in zip(g, g[1:], strict=False)):
                    raise self.fail(f"{path}.g", "a table needs increasing g and one σ per g")
                if min(sigma) < 0:
                    raise self.fail(f"{path}.sigma", "σ must not be negative")
                return laws.Table(tuple(g), tuple(sigma))
            case "power":
                return laws.Power(params["k"], params["p"], params.get("lo", 0.0),
                                  params.get("hi", math.inf))
            case "log_linear":
                return laws.LogLinear(params["a"], params.get("b", 0.0),
                                      params.get("lo", -math.inf), params.get("hi", math.inf))
            case _:
                return laws.Log10Linear(params["a"], params.get("b", 0.0))

    def law_or_piecewise(self, table: dict[str, Any], path: str, out_unit: str) -> object:
        if table.get("law") != "piecewise":
            return self.law(table, path, out_unit)
        breaks = self.number(table, "breaks", path, ONE)
        pieces = table.get("pieces")
        breaks = breaks if isinstance(breaks, list) else [breaks]
        if not isinstance(pieces, list) or len(pieces) != len(breaks) + 1:
            raise self.fail(f"{path}.pieces", f"needs {len(breaks) + 1} law tables "
                                              f"(one more than breaks)")
        return laws.Piecewise(tuple(breaks), tuple(
            self.law(p, f"{path}.pieces.{i}", out_unit) for i, p in enumerate(pieces)))

    def shape(self, table: dict[str, Any], path: str) -> str:
        shape = table.get("shape", "gaussian")
        if shape not in laws.SHAPES:
            raise self.fail(f"{path}.shape", f"must be one of {list(laws.SHAPES)}, got {shape!r}")
        return shape


def build_model(card: dict[str, Any], label: str, allow_extrapolation: bool = False
                ) -> DeviceModel:
    """Validate a parsed card and build its DeviceModel (ConfigError on any defect)."""
    r = _Reader(card, label)
    if card.get("status", "measured") == "template":
        raise ConfigError(
            f"device card {label} is a template without measured values; copy it, fill in every "
            f"number with its unit and source, and set status = \"measured\"")
    rng = card.get("range")
    if not isinstance(rng, dict):
        raise r.fail("range", "missing section [range]")
    g_min = r.number(rng, "g_min", "range", US)
    g_max = r.number(rng, "g_max", "range", US)
    if not 0 <= g_min < g_max:
        raise r.fail("range", f"needs 0 ≤ g_min < g_max, got g_min = {g_min}, g_max = {g_max} µS")
    levels = int(r.number(rng, "levels", "range", ONE))
    if levels < 0 or levels == 1:
        raise r.fail("range.levels", f"must be 0 (analog) or ≥ 2, got {levels}")
    cal_g = r.number(rng, "calibrated_g", "range", US)
    cal_t = r.number(rng, "calibrated_t", "range", SECOND)
    for key, pair in (("calibrated_g", cal_g), ("calibrated_t", cal_t)):
        if not isinstance(pair, list) or len(pair) != 2 or pair[0] > pair[1]:
            raise r.fail(f"range.{key}", f"must be [lo, hi] with lo ≤ hi, got {pair}")
    if cal_g[0] < g_min - 1e-9 or cal_g[1] > g_max + 1e-9:
        raise r.fail("range.calibrated_g", f"must lie inside [g_min, g_max] = [{g_min}, {g_max}]")

    kwargs: dict[str, Any] = {}
    if "program" in card:
        prog = card["program"]
        kwargs["program_shape"] = r.shape(prog, "program")
        if "timed" in prog:
            fits = prog["timed"]
            times = [r.number(f, "t", f"program.timed.{i}", SECOND) for i, f in enumerate(fits)]
            kwargs["timed_program"] = laws.TimedPrograms(tuple(times), tuple(
                r.law(f, f"program.timed.{i}", US) for i, f in enumerate(fits)))
        else:
            kwargs["program_law"] = r.law_or_piecewise(prog, "program", US)
    if "read" in card:
        kwargs["read_law"] = r.law_or_piecewise(card["read"], "read", US)
        kwargs["read_shape"] = r.shape(card["read"], "read")
    if "accumulated" in card:
        acc = card["accumulated"]
        relative = bool(acc.get("relative", True))
        if "amplitude" not in acc:
            raise r.fail("accumulated.amplitude", "missing law table [accumulated.amplitude]")
        kwargs["accumulated"] = laws.OneOverF(
            r.law_or_piecewise(acc["amplitude"], "accumulated.amplitude", ONE if relative else US),
            r.number(acc, "t_read", "accumulated", SECOND), relative)
    if "drift" in card:
        d = card["drift"]
        for key in ("nu_mean", "nu_std"):
            if key not in d:
                raise r.fail(f"drift.{key}", f"missing law table [drift.{key}]")
        kwargs["drift"] = laws.DriftLaw(r.law_or_piecewise(d["nu_mean"], "drift.nu_mean", ONE),
                                        r.law_or_piecewise(d["nu_std"], "drift.nu_std", ONE),
                                        r.number(d, "t0", "drift", SECOND))
    if "relaxation" in card:
        x = card["relaxation"]
        kwargs["relaxation"] = laws.Relaxation(r.number(x, "a_mean", "relaxation", US),
                                               r.number(x, "a_std", "relaxation", US),
                                               r.number(x, "b_std", "relaxation", US))
    defects = card.get("defects", {})
    for key in ("d2d_rel", "p_stuck_min", "p_stuck_max"):
        value = r.number(defects, key, "defects", ONE, optional=True)
        if value is not None:
            if value < 0 or (key.startswith("p_") and value > 1):
                raise r.fail(f"defects.{key}", f"must lie in [0, 1], got {value}")
            kwargs[key] = value
    model = DeviceModel(name=str(card.get("name", label)), g_min=g_min, g_max=g_max, levels=levels,
                        calibrated_g=(cal_g[0], cal_g[1]), calibrated_t=(cal_t[0], cal_t[1]),
                        allow_extrapolation=allow_extrapolation, card=card, **kwargs)
    _check_nonnegative(model, r)
    return model


def _check_nonnegative(model: DeviceModel, r: _Reader) -> None:
    """Refuse a card whose raw laws are negative anywhere in the calibrated range."""
    g = np.linspace(*model.calibrated_g, 257)
    raw = {"program": model.program_law, "read": model.read_law}
    if model.timed_program is not None:
        raw.update({f"program.timed.{i}": law for i, law in enumerate(model.timed_program.laws)})
    checks = []  # (key, law, the conductances it serves); a piecewise law's pieces one by one
    for key, law in raw.items():
        if isinstance(law, laws.Piecewise):
            index = np.searchsorted(np.asarray(law.breaks), np.abs(g) / model.g_max,
                                    side="right")
            checks += [(f"{key}.pieces.{i}", piece, g[index == i])
                       for i, piece in enumerate(law.laws)]
        else:
            checks.append((key, law, g))
    for key, law, where_g in checks:
        if not where_g.size:
            continue
        if isinstance(law, laws.Polynomial):
            values = law.unclamped(where_g, model.g_max)
        elif isinstance(law, laws.Constant):
            values = np.array([law.value])
        elif isinstance(law, laws.Proportional | laws.Sqrt | laws.Inverse):
            values = np.array([law.k])
        else:
            continue
        if values.min() < 0:
            where = where_g[int(np.argmin(values))] if values.size > 1 else where_g[0]
            raise r.fail(key, f"σ is negative ({values.min():.4g} µS at g = {where:.4g} µS) "
                              f"inside the calibrated range; check the coefficients and units")
    if model.drift is not None and model.drift.nu_std(g, model.g_max).min() < 0:
        raise r.fail("drift.nu_std", "negative inside the calibrated range")
