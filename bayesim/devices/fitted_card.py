"""A device card from fitted laws (bayesim.devices.fit), written by `bayesim devices fit`.

The card follows the card rules of bayesim.devices.presets: every number a table with its value,
unit and source, the source naming the data (file, SHA-256, devices, measurements, date); each
fitted parameter also carries its 95 % bootstrap interval (``ci95``), which the card reader
ignores. The calibrated range is the measured range — conductances from the lowest to the highest
measured target (or device mean), times from t₀ to the last measurement — so the machine refuses to
extrapolate beyond the data. A ``[fit]`` table keeps the diagnostics: the cross-validated
log-likelihood of every family and shape tried, the drift families chosen, the reads' lag-1
correlation, reads per device, the devices left out.
"""

import datetime
import json
import math
from typing import Any

import numpy as np

from bayesim import __version__
from bayesim.data.sources import file_digest
from bayesim.devices import drift_fit, fit
from bayesim.devices.drift_fit import DriftFit
from bayesim.devices.fit import LawFit, ReadFit
from bayesim.devices.measurements import Measurements, read_measurements
from bayesim.devices.presets import FAMILIES, ONE, SECOND, US, build_model
from bayesim.errors import DataError
from bayesim.reports import rounded

FIT = "fit"
"""The source key of every fitted number."""


def _law(fit: LawFit, what: str, g_max: float) -> dict[str, Any]:
    """The card's table of a fitted σ law; a piecewise law's break in x = G/``g_max`` (µS)."""
    units = FAMILIES.get(fit.family, {})
    source = (f"{FIT} ({what}: {fit.estimator}, {fit.n_devices} devices, "
              f"{fit.n_measurements} measurements)")
    table: dict[str, Any] = {"shape": fit.shape, "law": fit.family}
    if fit.family == "piecewise":
        ci = fit.ci95.get("break")
        table["breaks"] = _number([fit.params["break"] / g_max], ONE, f"{source}, G_b / g_max",
                                  [[c / g_max for c in ci]] if ci else None)
        table["pieces"] = [{"law": "polynomial_abs",
                            "coeffs": _number(fit.params[side], US, f"{source}, G {sign} G_b",
                                              fit.ci95.get(side))}
                           for side, sign in (("below", "<"), ("above", "≥"))]
        return table
    for key, value in fit.params.items():
        entry = {"value": value, "unit": units[key] or US, "source": source}
        if key in fit.ci95:
            entry["ci95"] = fit.ci95[key]
        table[key] = entry
    return table


def _number(value: Any, unit: str, source: str, ci95: list | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": value, "unit": unit, "source": source}
    if ci95 is not None:
        entry["ci95"] = ci95
    return entry


def card_g_max(g_range: tuple[float, float], window: tuple[float, float] | None) -> float:
    """The card's g_max (µS): the window's ceiling when given, else the highest measured
    conductance; the x = G/g_max of its laws."""
    return window[1] if window else g_range[1]


def build_card(name: str, technology: str, datasets: list[tuple[Measurements, str]],
               reads: ReadFit | None, programming: LawFit | None, drift: DriftFit | None,
               g_range: tuple[float, float], window: tuple[float, float] | None = None
               ) -> dict[str, Any]:
    """The card (a dict as TOML reads it) of the fitted laws; ``datasets`` the files fitted
    (measurements, SHA-256 of the file), ``g_range`` the measured conductance range (µS), the
    calibrated range; ``window`` the conductances the device clips to (µS; default the
    measured range)."""
    today = datetime.date.today().isoformat()
    sources = {}
    for i, (data, digest) in enumerate(datasets):
        sources[f"{FIT}{'' if i == 0 else i + 1}"] = (
            f"fitted from {data.path.name} (SHA-256 {digest}), {data.n_devices} devices, "
            f"{data.g.size} measurements, {today}, by bayesim {__version__} devices fit")
    lo, hi = g_range
    g_max = card_g_max(g_range, window)
    t_hi = 0.0 if drift is None else drift.t_max - drift.t0
    card: dict[str, Any] = {
        "name": name, "technology": technology, "status": "measured",
        "summary": "Fitted by bayesim devices fit from "
                   + ", ".join(d.path.name for d, _ in datasets)
                   + "; the calibrated range is the measured one.",
        "sources": sources,
        "range": {
            "g_min": (_number(window[0], US, f"{FIT} (the window the device clips to, "
                                             f"given to devices fit)") if window else
                      _number(lo, US, f"{FIT} (lowest measured conductance)")),
            "g_max": (_number(window[1], US, f"{FIT} (the window the device clips to, "
                                             f"given to devices fit)") if window else
                      _number(hi, US, f"{FIT} (highest measured conductance)")),
            "levels": _number(0, ONE, f"{FIT} (analog: no level grid measured)"),
            "calibrated_g": _number([lo, hi], US, f"{FIT} (measured range)"),
            "calibrated_t": _number([0.0, t_hi], SECOND,
                                    f"{FIT} (measured times after t0)" if drift else
                                    f"{FIT} (no drift measured)"),
        },
    }
    diagnostics: dict[str, Any] = {}
    program = programming or (reads.program if reads else None)
    if program is not None:
        card["program"] = _law(program, "achieved − target" if programming else
                               "device means − targets, read noise removed", g_max)
        diagnostics["program_cv_loglik"] = program.cv
        diagnostics["program_measured_g"] = list(program.g_range)
        if program.clipped is not None:
            diagnostics["program_clipped_at_ends"] = program.clipped
    if reads is not None:
        card["read"] = _law(reads.read, "reads − device mean", g_max)
        diagnostics["read_cv_loglik"] = reads.read.cv
        diagnostics["read_measured_g"] = list(reads.read.g_range)
        diagnostics["reads_per_device"] = reads.reads_per_device
        diagnostics["read_devices_without_spread"] = reads.devices_without_spread
        if reads.lag1 is not None:
            diagnostics["read_lag1"] = reads.lag1
            diagnostics["read_lag1_ci95"] = reads.lag1_ci95
    if drift is not None:
        source = f"{FIT} (per-device log-log slopes, maximum likelihood, {drift.n_devices} devices)"
        card["drift"] = {"t0": _number(drift.t0, SECOND, f"{FIT} (first measured time)")}
        for key, family, params in (("nu_mean", drift.nu_mean_family, drift.nu_mean),
                                    ("nu_std", drift.nu_std_family, drift.nu_std)):
            law: dict[str, Any] = {"law": drift_fit.CARD_LAW[family]}
            units = FAMILIES[law["law"]]  # a table's knots in µS, every value dimensionless
            for name, value in params.items():
                law[name] = _number(value, units[name] or ONE, source, drift.ci95[key].get(name))
            card["drift"][key] = law
        diagnostics["drift_families"] = {"nu_mean": drift.nu_mean_family,
                                         "nu_std": drift.nu_std_family}
        diagnostics["drift_cv_loglik"] = drift.cv
        diagnostics["drift_devices_at_zero"] = drift.devices_at_zero
        diagnostics["drift_measured_g"] = list(drift.g_range)
    card["fit"] = diagnostics
    return rounded(card)  # 6 significant digits, as every report


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("a card cannot hold nan")
        # TOML's own infinities: the cross-validated log-likelihood of a family whose σ
        # vanishes where there are residuals (sqrt or proportional at 0 µS) is -inf
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to TOML")


def _key(key: str) -> str:
    return key if key.replace("_", "").isalnum() else json.dumps(key)


def to_toml(card: dict[str, Any]) -> str:
    """TOML text of a card: top-level values, then one table per section (number tables and the
    diagnostics inline), sub-tables of a section (``[drift.nu_mean]``) after it."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in card.items() if not isinstance(v, dict)]

    def section(path: str, table: dict[str, Any], header: str = "[{}]") -> None:
        lines.extend(["", header.format(path)])
        nested, arrays = [], []
        for key, value in table.items():
            if isinstance(value, dict) and "value" not in value and path != FIT:
                nested.append((key, value))
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                arrays.append((key, value))  # a piecewise law's pieces: [[path.key]] tables
            else:
                lines.append(f"{_key(key)} = {_value(value)}")
        for key, value in nested:
            section(f"{path}.{key}", value)
        for key, values in arrays:
            for value in values:
                section(f"{path}.{key}", value, "[[{}]]")

    for key, value in card.items():
        if isinstance(value, dict):
            section(key, value)
    return "\n".join(lines) + "\n"


def extrapolated(card: dict[str, Any]) -> list[str]:
    """One line per law fitted over less than the card's calibrated range, by more than 1 % of
    it at an end (another file measured further): the machine uses it there, extended by its
    family, not measured."""
    lo, hi = card["range"]["calibrated_g"]["value"]
    slack = 0.01 * (hi - lo)  # a device mean a little inside the targets' ends is no gap
    lines = []
    for key in ("program", "read", "drift"):
        measured = card[FIT].get(f"{key}_measured_g")
        if measured and (measured[0] > lo + slack or measured[1] < hi - slack):
            lines.append(f"note: the {key} law was measured over [{measured[0]:g}, "
                         f"{measured[1]:g}] µS and is extrapolated by its family to the "
                         f"calibrated range [{lo:g}, {hi:g}] µS")
    return lines


def measurement_kind(data: Measurements) -> str:
    """What a file measures: ``drift`` (several times per device), ``reads`` (several reads per
    device) or ``programming`` (one achieved conductance per device)."""
    counts = data.per_device()
    if data.t is not None and counts.max() > 1:
        return "drift"
    if counts.min() == 1 < counts.max():
        raise DataError(f"{data.path}: {int((counts == 1).sum())} devices have one row and "
                        f"{int((counts > 1).sum())} several; a repeated-read file needs at least "
                        f"two reads of every device, a programming file one row per device")
    return "reads" if counts.min() > 1 else "programming"


def read_by_kind(paths: list[str], g_unit: str | None = None, t_unit: str | None = None
                 ) -> dict[str, Measurements]:
    """The measurement files of ``paths`` by what they measure (measurement_kind), in the order
    given; two files of one kind are refused."""
    by_kind: dict[str, Measurements] = {}
    for path in paths:
        data = read_measurements(path, g_unit, t_unit)
        kind = measurement_kind(data)
        if kind in by_kind:
            raise DataError(f"{path} and {by_kind[kind].path} are both {kind} data; give one "
                            f"file of each kind")
        by_kind[kind] = data
    return by_kind


def fit_card(paths: list[str], name: str, technology: str = "unknown",
             g_unit: str | None = None, t_unit: str | None = None,
             bootstrap: int = 200, seed: int = 0, window: tuple[float, float] | None = None
             ) -> tuple[dict[str, Any], dict[str, Measurements]]:
    """Fit every file of ``paths`` (one of each kind at most) and build the card; returns the
    card and the measurements by kind. ``window`` (µS): the conductances the device clips to;
    the programming law is then fitted to clipped states (fit.censored_loglik) and the card's
    window is it. The card reader validates the card before it is returned (a ConfigError
    there is a fit this module got wrong)."""
    by_kind = read_by_kind(paths, g_unit, t_unit)
    datasets = [(data, file_digest(data.path)) for data in by_kind.values()]
    if window is not None and "programming" not in by_kind and (
            "reads" not in by_kind or by_kind["reads"].g_target is None):
        raise DataError("--window models the clipping of programmed states; these files fit "
                        "no programming law (give the targets, a g_target column)")
    # the calibrated range, before anything is fitted: the targets where there are some (the
    # machine programs targets and clips what it programs to the window), else the devices'
    # means (reads) or the first read of each trace the drift fit uses (drift)
    covariates: list[np.ndarray] = []
    if "reads" in by_kind:
        data = by_kind["reads"]
        covariates.append(data.g_target if data.g_target is not None else
                          fit.read_residuals(data)[0])
    if "programming" in by_kind:
        fit.require_targets(by_kind["programming"])
        covariates.append(by_kind["programming"].g_target)
    if "drift" in by_kind:
        data = by_kind["drift"]
        traces = drift_fit.drift_traces(data)[0] or fit.device_rows(data.device)
        covariates.append(np.array([(data.g if data.g_target is None else data.g_target)[idx[0]]
                                    for idx in traces]))
    g_range = (float(min(c.min() for c in covariates)), float(max(c.max() for c in covariates)))
    # every law stays positive over the whole calibrated range, which other files can widen
    # (the files' own defects are reported first, by the fits)
    reads = programming = drift = None
    if "reads" in by_kind:
        reads = fit.fit_reads(by_kind["reads"], bootstrap, seed, window=window, g_span=g_range)
    if "programming" in by_kind:
        programming = fit.fit_programming(by_kind["programming"], bootstrap, seed,
                                          window=window, g_span=g_range)
    if "drift" in by_kind:
        drift = drift_fit.fit_drift(by_kind["drift"], card_g_max(g_range, window), bootstrap,
                                    seed, g_span=g_range)
    if g_range[1] <= g_range[0]:
        raise DataError("the measurements span a single conductance; measure devices at "
                        "several conductances")
    if window is not None and (g_range[0] < window[0] - 1e-9 or g_range[1] > window[1] + 1e-9):
        raise DataError(f"the measured conductances [{g_range[0]:g}, {g_range[1]:g}] µS reach "
                        f"beyond the window [{window[0]:g}, {window[1]:g}] µS; widen --window to "
                        f"the conductances the device clips to")
    card = build_card(name, technology, datasets, reads, programming, drift, g_range, window)
    build_model(card, name)
    return card, by_kind
