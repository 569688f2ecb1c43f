"""Device laws fitted to measurements (bayesim.devices.measurements), with bootstrap intervals.

Noise laws (programming, per-read): the residuals e of the measurements are modelled as
``shape(0, σ(G))`` with σ one of the card's families (bayesim.devices.laws) — ``constant``
(σ = value), ``proportional`` (σ = k G), ``sqrt`` (σ = k √G), ``polynomial_abs`` (σ = c₀ + c₁ G +
c₂ G², G in µS) — or the ``table`` law (σ per conductance bin, monotone interpolation) for data no
family describes; each under a Gaussian and a Laplace shape. Parameters are maximum-likelihood
estimates; the family and shape are the ones with the highest 5-fold cross-validated
log-likelihood, the folds splitting devices, not measurements. Intervals are percentile bootstrap
intervals over devices (resampled with replacement), 95 %.

- Repeated reads: the residual of a read is its difference from its device's mean, scaled by
  √(n/(n−1)) so that its variance is σ_read², with G the device's mean: the spread of the devices
  themselves is not read noise. With targets, the devices' means around their targets give the
  programming law, their read-noise share σ_read²/n taken out of the likelihood.
  Consecutive reads (``read`` index steps of 1) give the pooled lag-1 correlation of the
  residuals, corrected for the −1/n that removing the mean induces.
- Drift: each device's ν is minus the least-squares slope of ln G against ln t; ν_mean(G) is
  ``constant`` or ``log_linear`` (a ln x + b, x = G/g_max) by cross-validated squared error, ν_std
  the spread of the devices' ν about it less the mean variance of the slope estimates (the read
  noise along a trace), a constant. t₀ is the first measured time.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesim.devices.measurements import Measurements
from bayesim.errors import DataError

NOISE_FAMILIES = ("constant", "proportional", "sqrt", "polynomial_abs", "table")
FIT_SHAPES = ("gaussian", "laplace")
FOLDS = 5
BOOTSTRAP = 200
"""Default bootstrap replicates (a 95 % percentile interval from 200 has a Monte-Carlo error of
about ±0.015 in its coverage, Efron & Tibshirani 1993, ch. 13)."""
MIN_DEVICES_PER_BIN = 2
TABLE_BINS = 8


@dataclass
class LawFit:
    """One fitted law: its family and shape, its card parameters (µS unless the family says
    otherwise), their 95 % bootstrap intervals, and the cross-validated log-likelihood (nats) of
    every family and shape tried."""

    family: str
    shape: str
    params: dict[str, Any]
    ci95: dict[str, Any] = field(default_factory=dict)
    cv: dict[str, float] = field(default_factory=dict)
    n_devices: int = 0
    n_measurements: int = 0

    def sigma(self, g: np.ndarray) -> np.ndarray:
        return sigma_of(self.family, self.params, g)


def sigma_of(family: str, params: dict[str, Any], g: np.ndarray) -> np.ndarray:
    """σ (µS) of ``family`` with card parameters ``params`` at conductances ``g`` (µS)."""
    g = np.asarray(g, dtype=np.float64)
    if family == "constant":
        return np.full_like(g, params["value"])
    if family == "proportional":
        return params["k"] * g
    if family == "sqrt":
        return params["k"] * np.sqrt(g)
    if family == "polynomial_abs":
        return np.polynomial.polynomial.polyval(g, np.asarray(params["coeffs"]))
    if family == "table":
        from bayesim.devices.laws import Table

        return Table(tuple(params["g"]), tuple(params["sigma"]))(g, 0.0)
    raise ValueError(f"unknown family {family!r}")


def _loglik(e: np.ndarray, sigma: np.ndarray, shape: str) -> float:
    """Log-likelihood (nats) of residuals ``e`` under ``shape`` with standard deviation σ."""
    if not np.all(sigma > 0):
        return -np.inf
    if shape == "gaussian":
        return float(np.sum(-0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * (e / sigma) ** 2))
    b = sigma / np.sqrt(2.0)  # Laplace scale of standard deviation σ
    return float(np.sum(-np.log(2 * b) - np.abs(e) / b))


def conductance_bins(g: np.ndarray) -> np.ndarray:
    """Bin edges of the covariate: equal-count bins (at most TABLE_BINS)."""
    n = min(TABLE_BINS, max(1, g.size // 10))
    return np.quantile(g, np.linspace(0, 1, n + 1))


def binned_sigma(g: np.ndarray, e: np.ndarray, extra: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per conductance bin (conductance_bins): the median G (µS), the root-mean-square residual
    less ``extra`` (µS), and the number of residuals; bins sharing a median are merged."""
    edges = conductance_bins(g)
    which = np.clip(np.searchsorted(edges, g, side="right") - 1, 0, edges.size - 2)
    extra = np.zeros_like(e) if extra is None else extra
    knots: dict[float, list[np.ndarray]] = {}
    for b in range(edges.size - 1):
        inside = which == b
        if inside.any():
            knots.setdefault(float(np.median(g[inside])), []).append(inside)
    centres = np.array(sorted(knots))
    sigma, count = [], []
    for centre in centres:
        inside = np.logical_or.reduce(knots[centre])
        sigma.append(np.sqrt(max(float(np.mean(e[inside] ** 2 - extra[inside])), 1e-24)))
        count.append(int(inside.sum()))
    return centres, np.array(sigma), np.array(count)


SHAPE_OF_ONE = {"constant": lambda g: np.ones_like(g), "proportional": lambda g: g,
                "sqrt": np.sqrt}
"""The one-parameter families as σ = k f(G)."""


def _fit(family: str, shape: str, g: np.ndarray, e: np.ndarray, extra: np.ndarray,
         start: dict[str, Any] | None = None) -> dict[str, Any]:
    """Maximum-likelihood parameters of ``family`` (σ_total² = σ(G)² + extra); ``start``: where
    the numerical search begins (a bootstrap replicate starts at the full fit)."""
    from scipy.optimize import minimize, minimize_scalar

    if family == "table":
        knots, sigma, _ = binned_sigma(g, e, extra)
        return {"g": [float(k) for k in knots], "sigma": [float(v) for v in sigma]}

    span = np.linspace(g.min(), g.max(), 257)  # the card reader's check of σ ≥ 0, and more

    def nll(params: dict[str, Any]) -> float:
        sigma = sigma_of(family, params, g)
        if not (np.all(sigma > 0) and np.all(sigma_of(family, params, span) > 0)):
            return np.inf
        return -_loglik(e, np.sqrt(sigma**2 + extra), shape)

    key = "value" if family == "constant" else "k"
    if family in SHAPE_OF_ONE and not extra.any():
        f = SHAPE_OF_ONE[family](g)
        if np.all(f > 0):  # closed form: Gaussian k² = mean((e/f)²), Laplace k = √2 mean(|e|/f)
            ratio = e / f
            k = np.sqrt(np.mean(ratio**2)) if shape == "gaussian" else \
                np.sqrt(2.0) * np.mean(np.abs(ratio))
            return {key: float(k)}
    rms = float(np.sqrt(max(np.mean(e**2 - extra), 1e-24)))
    if family == "polynomial_abs":
        first = np.asarray(start["coeffs"]) if start else np.polynomial.polynomial.polyfit(
            g, np.abs(e) * np.sqrt(np.pi / 2), 2)
        if not np.all(sigma_of(family, {"coeffs": first}, span) > 0):
            first = np.array([rms, 0.0, 0.0])
        scale = np.array([rms, rms / max(g.max(), 1e-12), rms / max(g.max(), 1e-12) ** 2])
        result = minimize(lambda z: nll({"coeffs": z * scale}), first / scale,
                          method="Nelder-Mead",
                          options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 2000})
        return {"coeffs": [float(c) for c in result.x * scale]}
    unit = {"constant": 1.0, "proportional": float(np.mean(g)),
            "sqrt": float(np.sqrt(np.mean(g)))}[family]
    guess = rms / max(unit, 1e-12)
    result = minimize_scalar(lambda z: nll({key: float(np.exp(z))}),
                             bounds=(np.log(guess) - 5, np.log(guess) + 5), method="bounded",
                             options={"xatol": 1e-9})
    return {key: float(np.exp(result.x))}


def device_rows(device: np.ndarray) -> list[np.ndarray]:
    """The row indices of each device (rows of a device are contiguous)."""
    starts = np.r_[0, np.flatnonzero(np.diff(device)) + 1]
    return np.split(np.arange(device.size), starts[1:])


def fit_noise(g: np.ndarray, e: np.ndarray, device: np.ndarray, extra: np.ndarray | None = None,
              families: tuple[str, ...] = NOISE_FAMILIES, bootstrap: int = BOOTSTRAP,
              seed: int = 0, progress: Callable[[int, int], None] | None = None,
              shapes: tuple[str, ...] = FIT_SHAPES) -> LawFit:
    """The law of residuals ``e`` (µS) against conductance ``g`` (µS), rows grouped by
    ``device`` (contiguous), ``extra`` a known variance per row (µS²) added to σ(G)²: the
    family and shape of ``families`` × ``shapes`` with the best cross-validated likelihood, its
    parameters, and their intervals from ``bootstrap`` replicates (none: no intervals)."""
    extra = np.zeros_like(e) if extra is None else extra
    groups = device_rows(device)
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(groups)) % FOLDS
    row_fold = np.concatenate([np.full(idx.size, fold_of[i]) for i, idx in enumerate(groups)])
    cv: dict[str, float] = {}
    for family in families:
        for shape in shapes:
            if family == "table" and shape != shapes[0]:
                continue  # the table is a moment fit; its shape is the best family's
            total = 0.0
            for k in range(FOLDS):
                train, test = row_fold != k, row_fold == k
                params = _fit(family, shape, g[train], e[train], extra[train])
                sigma = np.sqrt(np.maximum(sigma_of(family, params, g[test]), 0) ** 2
                                + extra[test])
                total += _loglik(e[test], sigma, shape)
            cv[f"{family}/{shape}"] = total
    best = max(cv, key=lambda k: cv[k])
    family, shape = best.split("/")
    others = [k for k in cv if not k.startswith("table")]
    if family == "table" and others:  # its shape: that of the best family's fit
        shape = max(others, key=lambda k: cv[k]).split("/")[1]
    params = _fit(family, shape, g, e, extra)
    replicates = []
    for b in range(bootstrap):
        chosen = rng.integers(0, len(groups), len(groups))
        rows = np.concatenate([groups[i] for i in chosen])
        replicates.append(_fit(family, shape, g[rows], e[rows], extra[rows], params))
        if progress:
            progress(b + 1, bootstrap)
    return LawFit(family, shape, params, _intervals(params, replicates, family), cv,
                  len(groups), int(e.size))


def _intervals(params: dict[str, Any], replicates: list[dict[str, Any]], family: str
               ) -> dict[str, Any]:
    """95 % percentile intervals of every parameter (per component for lists)."""
    out: dict[str, Any] = {}
    if not replicates:
        return out
    for key, value in params.items():
        if family == "table":  # knots move between replicates: σ at the full fit's knots
            values = np.array([sigma_of("table", r, np.asarray(params["g"])) for r in replicates])
            if key == "g":
                continue
        else:
            values = np.array([np.atleast_1d(r[key]) for r in replicates], dtype=np.float64)
        lo, hi = np.percentile(values, [2.5, 97.5], axis=0)
        out[key] = ([[float(a), float(b)] for a, b in zip(lo, hi, strict=True)]
                    if isinstance(value, list) else [float(lo[0]), float(hi[0])])
    return out


@dataclass
class ReadFit:
    """Per-read noise, the devices' spread about their targets, and the reads' lag-1
    correlation."""

    read: LawFit
    program: LawFit | None
    lag1: float | None
    lag1_ci95: list[float] | None
    reads_per_device: float


def fit_reads(data: Measurements, bootstrap: int = BOOTSTRAP, seed: int = 0,
              families: tuple[str, ...] = NOISE_FAMILIES) -> ReadFit:
    counts = data.per_device()
    if (counts < 2).any():
        raise DataError(f"{data.path}: {int((counts < 2).sum())} devices have a single read; "
                        f"repeated-read data needs at least two reads of every device")
    groups = device_rows(data.device)
    means, resid = read_residuals(data)
    n = counts.astype(np.float64)
    _check_bins(data, means)
    read = fit_noise(means[data.device], resid, data.device, None, families, bootstrap, seed)
    program = None
    if data.g_target is not None:
        target = np.array([data.g_target[idx[0]] for idx in groups])
        extra = read.sigma(means) ** 2 / n
        program = fit_noise(target, means - target, np.arange(len(groups)), extra, families,
                            bootstrap, seed + 1)
    lag1 = lag1_ci = None
    if data.read is not None and all((np.diff(data.read[idx]) == 1).all() for idx in groups):
        raw = data.g - means[data.device]
        lag1 = _lag1(raw, groups, n)
        rng = np.random.default_rng(seed + 2)
        boots = [_lag1(raw, [groups[i] for i in rng.integers(0, len(groups), len(groups))], n)
                 for _ in range(bootstrap)]
        lag1_ci = [float(v) for v in np.percentile(boots, [2.5, 97.5])] if boots else None
    return ReadFit(read, program, lag1, lag1_ci, float(n.mean()))


def read_residuals(data: Measurements) -> tuple[np.ndarray, np.ndarray]:
    """(each device's mean, µS; each read's residual from its device's mean scaled by
    √(n/(n−1)) so that its variance is σ_read², µS)."""
    n = data.per_device().astype(np.float64)
    means = np.bincount(data.device, weights=data.g, minlength=data.n_devices) / n
    return means, (data.g - means[data.device]) * np.sqrt(n / np.maximum(n - 1, 1))[data.device]


def _lag1(raw: np.ndarray, groups: list[np.ndarray], n: np.ndarray) -> float:
    """Pooled lag-1 autocorrelation of demeaned reads, plus the 1/n bias demeaning induces."""
    num = sum(float(np.dot(raw[i][:-1], raw[i][1:])) for i in groups)
    den = sum(float(np.dot(raw[i], raw[i])) for i in groups)
    return num / den + float(np.mean(1.0 / n))


def fit_programming(data: Measurements, bootstrap: int = BOOTSTRAP, seed: int = 0,
                    families: tuple[str, ...] = NOISE_FAMILIES) -> LawFit:
    """σ_prog(G_target) from one achieved conductance per device (its read noise included)."""
    if data.g_target is None:
        raise DataError(f"{data.path}: programming data needs a g_target column (the target "
                        f"each device was programmed to)")
    _check_bins(data, data.g_target)
    return fit_noise(data.g_target, data.g - data.g_target, data.device, None, families,
                     bootstrap, seed)


def _check_bins(data: Measurements, g: np.ndarray) -> None:
    """Every conductance bin of the fit holds at least two devices."""
    per_device = np.array([g[idx[0]] for idx in device_rows(data.device)]) if g.size == \
        data.g.size else g
    edges = conductance_bins(per_device)
    which = np.clip(np.searchsorted(edges, per_device, side="right") - 1, 0, edges.size - 2)
    counts = np.bincount(which, minlength=edges.size - 1)
    if per_device.size < MIN_DEVICES_PER_BIN or (counts < MIN_DEVICES_PER_BIN).any():
        raise DataError(f"{data.path}: {per_device.size} devices leave a conductance bin with "
                        f"fewer than {MIN_DEVICES_PER_BIN} devices; measure at least "
                        f"{MIN_DEVICES_PER_BIN} devices per conductance")


def drift_slopes(data: Measurements, groups: list[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per device of ``groups``: (its target, else its first measured G, µS; ν, minus the
    least-squares slope of ln G against ln t; the slope's estimation variance)."""
    cov, nu, var = [], [], []
    for idx in groups:
        lt, lg = np.log(data.t[idx]), np.log(data.g[idx])
        slope, intercept = np.polyfit(lt, lg, 1)
        sxx = float(np.sum((lt - lt.mean()) ** 2))
        dof = idx.size - 2
        s2 = float(np.sum((lg - intercept - slope * lt) ** 2)) / dof if dof > 0 else 0.0
        nu.append(-slope)
        var.append(s2 / sxx)
        cov.append(data.g_target[idx[0]] if data.g_target is not None else data.g[idx[0]])
    return np.array(cov), np.array(nu), np.array(var)


@dataclass
class DriftFit:
    """The drift-exponent laws: ν_mean(G) (``constant`` or ``log_linear`` in x = G/g_max) and a
    constant ν_std, with bootstrap intervals; t₀ (s) the first measured time."""

    t0: float
    nu_mean_family: str
    nu_mean: dict[str, float]
    nu_std: float
    ci95: dict[str, list[float]]
    cv: dict[str, float]
    n_devices: int
    n_measurements: int
    t_max: float


def fit_drift(data: Measurements, g_max: float, bootstrap: int = BOOTSTRAP, seed: int = 0
              ) -> DriftFit:
    if data.t is None:
        raise DataError(f"{data.path}: drift data needs a t column (time since programming)")
    groups = [idx for idx in device_rows(data.device) if idx.size >= 2]
    if len(groups) < 2:
        raise DataError(f"{data.path}: drift needs at least two devices with two or more "
                        f"times each")
    if (data.t[np.concatenate(groups)] <= 0).any() or (data.g[np.concatenate(groups)] <= 0).any():
        raise DataError(f"{data.path}: drift traces need t > 0 and G > 0 (a log-log fit)")
    cov, nu_a, var_a = drift_slopes(data, groups)
    x = cov / g_max
    _check_bins(data, cov)

    def fit(family: str, rows: np.ndarray) -> dict[str, float]:
        if family == "constant":
            return {"value": float(nu_a[rows].mean())}
        a, b = np.polyfit(np.log(x[rows]), nu_a[rows], 1)
        return {"a": float(a), "b": float(b)}

    def mean_of(family: str, params: dict[str, float], rows: np.ndarray) -> np.ndarray:
        if family == "constant":
            return np.full(rows.size, params["value"])
        return params["a"] * np.log(x[rows]) + params["b"]

    rng = np.random.default_rng(seed)
    fold = rng.permutation(nu_a.size) % FOLDS
    cv = {}
    for family in ("constant", "log_linear"):
        err = 0.0
        for k in range(FOLDS):
            train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            err += float(np.sum((nu_a[test] - mean_of(family, fit(family, train), test)) ** 2))
        cv[family] = err
    family = min(cv, key=lambda k: cv[k])
    everything = np.arange(nu_a.size)

    def std_of(params: dict[str, float], rows: np.ndarray) -> float:
        spread = np.mean((nu_a[rows] - mean_of(family, params, rows)) ** 2) - np.mean(var_a[rows])
        return float(np.sqrt(max(spread, 0.0)))

    params = fit(family, everything)
    std = std_of(params, everything)
    boots: dict[str, list[float]] = {k: [] for k in (*params, "nu_std")}
    for _ in range(bootstrap):
        rows = rng.integers(0, nu_a.size, nu_a.size)
        p = fit(family, rows)
        for key, value in p.items():
            boots[key].append(value)
        boots["nu_std"].append(std_of(p, rows))
    ci = {k: [float(v) for v in np.percentile(vals, [2.5, 97.5])] for k, vals in boots.items()
          if vals}
    t0 = float(data.t.min())
    return DriftFit(t0, family, params, std, ci, cv, int(nu_a.size),
                    int(sum(i.size for i in groups)), float(data.t.max()))
