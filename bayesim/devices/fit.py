"""Device laws fitted to measurements (bayesim.devices.measurements), with bootstrap intervals.

Noise laws (programming, per-read): the residuals e of the measurements are modelled as
``shape(0, σ(G))`` with σ one of the card's families (bayesim.devices.laws) — ``constant``
(σ = value), ``proportional`` (σ = k G), ``sqrt`` (σ = k √G), ``polynomial_abs`` (σ = c₀ + c₁ G +
c₂ G², G in µS), ``piecewise`` (a line either side of a break, the HERMES form; _fit_piecewise)
— or the ``table`` law (σ per conductance bin, monotone interpolation) for data no
family describes; each under a Gaussian and a Laplace shape. Parameters are maximum-likelihood
estimates for programming data (one achieved conductance per device: the residuals are draws of
the law), Gaussian-likelihood fits of σ(G)² for repeated reads (fit_noise ``variance_fit``:
unbiased whatever the shape of residuals that are not the law's own draws); the family and shape
are the ones with the highest 5-fold cross-validated log-likelihood, the folds splitting
devices, not measurements. Intervals are percentile bootstrap
intervals over devices (resampled with replacement), 95 %.

- Repeated reads: the residual of a read is its difference from its device's mean, scaled by
  √(n/(n−1)) so that its variance is σ_read², with G the device's mean: the spread of the devices
  themselves is not read noise; a device whose reads are all equal is left out of it (counted).
  With targets, the devices' means around their targets give the programming law, their
  read-noise share σ_read²/n taken out of the likelihood.
  Consecutive reads (``read`` index steps of 1) give the lag-1 correlation of AR(1) reads from
  the pooled lag-1 ratio of the residuals, with the bias that removing each device's mean
  introduces (−1/n at ρ = 0, more at larger ρ) inverted exactly (demeaned_ar1_moments).

Drift laws are fitted by bayesim.devices.drift_fit.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesim.devices.measurements import Measurements
from bayesim.errors import DataError

NOISE_FAMILIES = ("constant", "proportional", "sqrt", "polynomial_abs", "piecewise", "table")
FIT_SHAPES = ("gaussian", "laplace")
FOLDS = 5
BOOTSTRAP = 200
"""Default bootstrap replicates. Efron & Tibshirani (An Introduction to the Bootstrap, 1993,
ch. 19) advise 1,000 or more for percentile intervals; 200 keeps a 10,000-device fit near a
minute on 2 cores, and the coverage study (docs/devices_fit.md) measured 0.88-0.98 with it from
1,000 devices up. Raise it with --bootstrap."""
MIN_DEVICES_PER_BIN = 2
TABLE_BINS = 8
PIECEWISE_BREAKS = np.linspace(0.15, 0.85, 15)
"""Candidate breaks of the piecewise law: these quantiles of the fitted conductances (each
piece keeps 15 % of the data at least), then 5 between the best one's neighbours. The profile
likelihood of the break has several maxima, so the first grid must be fine: with steps of 0.1 a
jump at the quantile 0.37 lost to one at 0.5."""


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
    replicates: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """The bootstrap replicates' parameters (for intervals of derived quantities)."""
    estimator: str = "maximum likelihood"
    """How the parameters were estimated, in words (the card's source says it)."""
    g_range: tuple[float, float] = (0.0, 0.0)
    """µS, the conductances the law was fitted over (its covariate's range)."""
    clipped: list[int] | None = None
    """With a window and one value per device: the residuals taken as clipped at its lower and
    upper end (on an end to 10⁻⁹, as censored_loglik takes them)."""

    def sigma(self, g: np.ndarray) -> np.ndarray:
        return sigma_of(self.family, self.params, g)

    def sigma_interval(self, g: np.ndarray) -> np.ndarray:
        """95 % percentile bootstrap interval of σ(G) (µS) at ``g``: shape (2, *g.shape)."""
        if not self.replicates:
            raise ValueError("no bootstrap replicates: fit with bootstrap > 0")
        values = np.array([sigma_of(self.family, r, g) for r in self.replicates])
        return np.percentile(values, [2.5, 97.5], axis=0)


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
    if family == "piecewise":
        return np.where(g < params["break"],
                        np.polynomial.polynomial.polyval(g, np.asarray(params["below"])),
                        np.polynomial.polynomial.polyval(g, np.asarray(params["above"])))
    if family == "table":
        from bayesim.devices.laws import Table

        return Table(tuple(params["g"]), tuple(params["sigma"]))(g, 0.0)
    raise ValueError(f"unknown family {family!r}")


def _loglik(e: np.ndarray, sigma: np.ndarray, shape: str) -> float:
    """Log-likelihood (nats) of residuals ``e`` under ``shape`` with standard deviation σ."""
    if not np.all(sigma > 0):
        return -np.inf
    if shape == "gaussian":
        return float(np.sum(_normal_logpdf(e, sigma**2)))
    b = sigma / np.sqrt(2.0)  # Laplace scale of standard deviation σ
    return float(np.sum(-np.log(2 * b) - np.abs(e) / b))


def _normal_logpdf(x: np.ndarray, variance: np.ndarray) -> np.ndarray:
    return -0.5 * np.log(2 * np.pi * variance) - 0.5 * x * x / variance


def log_normal_interval(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Φ(b) − Φ(a)) for a < b without cancellation: on the upper tail (a > 0) as
    log Φ(−a) + log(1 − Φ(−b)/Φ(−a)), else log Φ(b) + log(1 − Φ(a)/Φ(b)), in log space."""
    from scipy.special import log_ndtr

    upper = a > 0
    first = np.where(upper, log_ndtr(-a), log_ndtr(b))
    second = np.where(upper, log_ndtr(-b), log_ndtr(a))
    return first + np.log1p(-np.exp(np.minimum(second - first, 0.0)))


def censored_loglik(e: np.ndarray, sigma: np.ndarray, extra: np.ndarray, lo: np.ndarray,
                    hi: np.ndarray) -> float:
    """Log-likelihood (nats) of residuals ``e`` of states clipped to a window: the state is
    target + N(0, σ²) clipped to [target + lo, target + hi] (``lo`` ≤ 0 ≤ ``hi``, the window's
    ends less the target), then seen through Gaussian noise of variance ``extra`` (a device
    mean's read noise; 0 for one achieved conductance). With extra = 0 a residual at an end is
    the clipped mass there, Φ(lo/σ) or Φ(−hi/σ), and one inside the normal density; with
    extra = v > 0 each end's mass is blurred by N(0, v) and the inside is the normal's
    truncation to the window convolved with N(0, v),
    φ(e; σ² + v)·[Φ((hi − μ)/τ) − Φ((lo − μ)/τ)], μ = e σ²/(σ² + v), τ² = σ² v/(σ² + v)."""
    from scipy.special import log_ndtr

    if not np.all(sigma > 0):
        return -np.inf
    out = np.empty(e.shape, dtype=np.float64)
    exact = extra <= 0
    if exact.any():
        x, sd, a, b = e[exact], sigma[exact], lo[exact], hi[exact]
        tol = 1e-9 * np.maximum(1.0, np.abs(b - a))
        out[exact] = np.where(x <= a + tol, log_ndtr(a / sd),
                              np.where(x >= b - tol, log_ndtr(-b / sd),
                                       _normal_logpdf(x, sd * sd)))
    blurred = ~exact
    if blurred.any():
        x, sd, v, a, b = e[blurred], sigma[blurred], extra[blurred], lo[blurred], hi[blurred]
        total = sd * sd + v
        mu, tau = x * sd * sd / total, sd * np.sqrt(v / total)
        inside = _normal_logpdf(x, total) + log_normal_interval((a - mu) / tau, (b - mu) / tau)
        at_lo = log_ndtr(a / sd) + _normal_logpdf(x - a, v)
        at_hi = log_ndtr(-b / sd) + _normal_logpdf(x - b, v)
        out[blurred] = np.logaddexp(inside, np.logaddexp(at_lo, at_hi))
    return float(np.sum(out))


def _score(e: np.ndarray, sigma: np.ndarray, extra: np.ndarray, shape: str,
           bounds: tuple[np.ndarray, np.ndarray] | None) -> float:
    """Log-likelihood of residuals under σ(G) = ``sigma`` plus the known variance ``extra``;
    censored at ``bounds`` (Gaussian only) when the window is known."""
    if bounds is not None:
        return censored_loglik(e, sigma, extra, *bounds)
    return _loglik(e, np.sqrt(sigma**2 + extra), shape)


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
         start: dict[str, Any] | None = None,
         bounds: tuple[np.ndarray, np.ndarray] | None = None, degree: int = 2,
         g_span: tuple[float, float] | None = None) -> dict[str, Any]:
    """Maximum-likelihood parameters of ``family`` (σ_total² = σ(G)² + extra); ``start``: where
    the numerical search begins (a bootstrap replicate starts at the full fit); ``bounds``: the
    residuals' clipping bounds per row (censored_loglik; the table law ignores them);
    ``degree``: of ``polynomial_abs``; ``g_span`` (µS): conductances beyond ``g`` where σ must
    stay positive too (the card's calibrated range, which other files can widen)."""
    from scipy.optimize import minimize, minimize_scalar

    if family == "piecewise":
        return _fit_piecewise(shape, g, e, extra, start, bounds, g_span)
    if family == "table":
        knots, sigma, _ = binned_sigma(g, e, extra)
        return {"g": [float(k) for k in knots], "sigma": [float(v) for v in sigma]}

    lo, hi = (g.min(), g.max()) if g_span is None else (min(g.min(), g_span[0]),
                                                         max(g.max(), g_span[1]))
    span = np.linspace(lo, hi, 257)  # the card reader's check of σ ≥ 0, and more
    # σ must clear 0 there by more than the card's 6-digit rounding of the coefficients moves
    # it: a law pressed against 0 at an end of the range (extrapolated to where another file
    # measured) is otherwise refused by the card reader once rounded
    margin = 1e-4 * float(np.sqrt(max(np.mean(e**2), 1e-24)))
    if shape == "gaussian" and not extra.any() and bounds is None:
        # the Gaussian likelihood needs only, per distinct G, the count and Σ e² (the reads of
        # one device share its mean): ten times fewer terms for ten reads per device
        g_fit, where = np.unique(g, return_inverse=True)
        count = np.bincount(where, minlength=g_fit.size)
        squares = np.bincount(where, weights=e * e, minlength=g_fit.size)
    else:
        g_fit = g

    def nll(params: dict[str, Any]) -> float:
        sigma = sigma_of(family, params, g_fit)
        if not (np.all(sigma > 0) and np.all(sigma_of(family, params, span) > margin)):
            return np.inf
        if g_fit is not g:
            return float(np.sum(0.5 * count * np.log(2 * np.pi * sigma**2)
                                + 0.5 * squares / sigma**2))
        return -_score(e, sigma, extra, shape, bounds)

    key = "value" if family == "constant" else "k"
    if family in SHAPE_OF_ONE and not extra.any() and bounds is None:
        f = SHAPE_OF_ONE[family](g)
        if np.all(f > 0):  # closed form: Gaussian k² = mean((e/f)²), Laplace k = √2 mean(|e|/f)
            ratio = e / f
            k = np.sqrt(np.mean(ratio**2)) if shape == "gaussian" else \
                np.sqrt(2.0) * np.mean(np.abs(ratio))
            return {key: float(k)}
    rms = float(np.sqrt(max(np.mean(e**2 - extra), 1e-24)))
    if family == "polynomial_abs":
        first = np.asarray(start["coeffs"]) if start else np.polynomial.polynomial.polyfit(
            g, np.abs(e) * np.sqrt(np.pi / 2), degree)
        if not np.all(sigma_of(family, {"coeffs": first}, span) > margin):
            first = np.r_[max(rms, 2 * margin), np.zeros(degree)]
        scale = rms / max(g.max(), 1e-12) ** np.arange(degree + 1)
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


def _fit_piecewise(shape: str, g: np.ndarray, e: np.ndarray, extra: np.ndarray,
                   start: dict[str, Any] | None,
                   bounds: tuple[np.ndarray, np.ndarray] | None,
                   g_span: tuple[float, float] | None = None) -> dict[str, Any]:
    """The ``piecewise`` law: σ = b₀ + b₁ G below a break G_b, a₀ + a₁ G above it (G in µS; the
    form of the HERMES fits, pieces on either side of a break in G/g_max). For each candidate break
    (PIECEWISE_BREAKS) the two lines are independent maximum-likelihood fits; the break is the
    candidate with the highest likelihood of both (a bootstrap replicate searches it again)."""
    lo, hi = (g.min(), g.max()) if g_span is None else g_span  # _fit adds the data's range

    def at_break(level: float) -> tuple[float, dict[str, Any]] | None:
        g_break = float(np.quantile(g, level))
        params: dict[str, Any] = {"break": g_break}
        total = 0.0
        for side, rows in (("below", g < g_break), ("above", g >= g_break)):
            if np.unique(g[rows]).size < 2:
                return None
            sub = None if bounds is None else (bounds[0][rows], bounds[1][rows])
            first = {"coeffs": start[side]} if start else None
            piece_span = (lo, g_break) if side == "below" else (g_break, hi)
            params[side] = _fit("polynomial_abs", shape, g[rows], e[rows], extra[rows], first,
                                sub, degree=1, g_span=piece_span)["coeffs"]
            sigma = sigma_of("polynomial_abs", {"coeffs": params[side]}, g[rows])
            total += _score(e[rows], np.maximum(sigma, 0), extra[rows], shape, sub)
        return total, params

    def best_of(levels: np.ndarray) -> tuple[float, float, dict[str, Any]] | None:
        found = [(r[0], level, r[1]) for level in levels if (r := at_break(level)) is not None]
        return max(found, key=lambda item: item[0]) if found else None

    coarse = best_of(PIECEWISE_BREAKS)
    if coarse is None:
        raise DataError("a piecewise law needs at least two conductances on each side of its "
                        "break")
    step = PIECEWISE_BREAKS[1] - PIECEWISE_BREAKS[0]
    fine = best_of(np.linspace(max(coarse[1] - step, PIECEWISE_BREAKS[0]),
                               min(coarse[1] + step, PIECEWISE_BREAKS[-1]), 5))
    return max((coarse, fine or coarse), key=lambda item: item[0])[2]


def device_rows(device: np.ndarray) -> list[np.ndarray]:
    """The row indices of each device (rows of a device are contiguous)."""
    starts = np.r_[0, np.flatnonzero(np.diff(device)) + 1]
    return np.split(np.arange(device.size), starts[1:])


def fit_noise(g: np.ndarray, e: np.ndarray, device: np.ndarray, extra: np.ndarray | None = None,
              families: tuple[str, ...] = NOISE_FAMILIES, bootstrap: int = BOOTSTRAP,
              seed: int = 0, progress: Callable[[int, int], None] | None = None,
              shapes: tuple[str, ...] = FIT_SHAPES, variance_fit: bool = False,
              window: tuple[float, float] | None = None,
              g_span: tuple[float, float] | None = None) -> LawFit:
    """The law of residuals ``e`` (µS) against conductance ``g`` (µS), rows grouped by
    ``device`` (contiguous), ``extra`` a known variance per row (µS²) added to σ(G)²: the
    family and shape of ``families`` × ``shapes`` with the best cross-validated likelihood, its
    parameters, and their intervals from ``bootstrap`` replicates (none: no intervals).

    ``variance_fit``: the parameters of every shape are those of the Gaussian likelihood, which
    fits σ(G)² to the squared residuals and is unbiased for residuals of any shape; the shape is
    still chosen (and written) by the cross-validated likelihood. For residuals that are not
    draws of the law itself: reads less their device's mean (a blend of n draws, closer to
    Gaussian than a Laplace law's draws: √2·mean|e| overestimates a Laplace σ by 3 % at n = 10,
    5 % at n = 5) and device means that carry read noise. (For a truly Laplace programming law
    seen through little read noise this is unbiased but less efficient than the Laplace fit.)

    ``window`` (µS): the conductances the device clips to, with ``g`` the programming targets;
    the states are then modelled as clipped there (censored_loglik), a Gaussian law only.
    ``g_span`` (µS): the card's calibrated range, where σ must stay positive beyond ``g``."""
    extra = np.zeros_like(e) if extra is None else extra

    def estimated(shape: str) -> str:
        return "gaussian" if variance_fit else shape

    def bounds_of(rows: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray] | None:
        return None if window is None else (window[0] - g[rows], window[1] - g[rows])

    if window is not None:
        shapes = ("gaussian",)
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
                params = _fit(family, estimated(shape), g[train], e[train], extra[train],
                              bounds=bounds_of(train), g_span=g_span)
                sigma = np.maximum(sigma_of(family, params, g[test]), 0)
                total += _score(e[test], sigma, extra[test], shape, bounds_of(test))
            cv[f"{family}/{shape}"] = total
    best = max(cv, key=lambda k: cv[k])
    family, shape = best.split("/")
    others = [k for k in cv if not k.startswith("table")]
    if family == "table" and others:  # its shape: that of the best family's fit
        shape = max(others, key=lambda k: cv[k]).split("/")[1]
    params = _fit(family, estimated(shape), g, e, extra, bounds=bounds_of(slice(None)),
                  g_span=g_span)
    replicates = []
    for b in range(bootstrap):
        chosen = rng.integers(0, len(groups), len(groups))
        rows = np.concatenate([groups[i] for i in chosen])
        replicates.append(_fit(family, estimated(shape), g[rows], e[rows], extra[rows], params,
                               bounds_of(rows), g_span=g_span))
        if progress:
            progress(b + 1, bootstrap)
    if window is not None:
        estimator = f"maximum likelihood of states clipped to [{window[0]:g}, {window[1]:g}] µS"
    elif variance_fit and shape != "gaussian":
        estimator = "Gaussian likelihood of the squared residuals (unbiased for any shape)"
    else:
        estimator = "maximum likelihood"
    clipped = None
    if window is not None and not extra.any():
        lo, hi = bounds_of(slice(None))
        tol = 1e-9 * np.maximum(1.0, np.abs(hi - lo))
        clipped = [int(np.sum(e <= lo + tol)), int(np.sum(e >= hi - tol))]
    return LawFit(family, shape, params, _intervals(params, replicates, family), cv,
                  len(groups), int(e.size), replicates, estimator,
                  (float(g.min()), float(g.max())), clipped)


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
    devices_without_spread: int = 0
    """Devices whose reads are all equal, left out of the read law (fit_reads)."""


def check_window(data: Measurements, window: tuple[float, float] | None,
                 achieved: bool) -> None:
    """The window (µS) holds every target, and every achieved conductance when ``achieved``
    (one-row programming data: a clipped state lies on the window, not beyond it)."""
    if window is None:
        return
    lo, hi = window
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo < hi):
        raise DataError(f"the window [{lo:g}, {hi:g}] µS is not a conductance range; give "
                        f"--window LO HI with 0 ≤ LO < HI")
    for name, values in (("g_target", data.g_target), ("g", data.g if achieved else None)):
        if values is None:
            continue
        outside = np.flatnonzero((values < lo - 1e-9) | (values > hi + 1e-9))
        if outside.size:
            raise DataError(f"{data.path}: column {name}, data row {outside[0] + 1}: "
                            f"{values[outside[0]]:g} µS lies outside the window [{lo:g}, "
                            f"{hi:g}] µS; widen --window to the conductances the device "
                            f"clips to")


def fit_reads(data: Measurements, bootstrap: int = BOOTSTRAP, seed: int = 0,
              families: tuple[str, ...] = NOISE_FAMILIES,
              program_families: tuple[str, ...] | None = None,
              window: tuple[float, float] | None = None,
              g_span: tuple[float, float] | None = None) -> ReadFit:
    """The read law, the programming law of the device means (with targets; families
    ``program_families``, default ``families``; clipped to ``window``, µS, when given) and the
    lag-1 correlation of a repeated-read file; both laws positive over ``g_span`` (µS)."""
    check_window(data, window, achieved=False)
    counts = data.per_device()
    if (counts < 2).any():
        raise DataError(f"{data.path}: {int((counts < 2).sum())} devices have a single read; "
                        f"repeated-read data needs at least two reads of every device")
    groups = device_rows(data.device)
    means, resid = read_residuals(data)
    n = counts.astype(np.float64)
    check_bins(data, means)
    # a device whose reads are all equal (one at the window's floor, clipped to 0 µS; or noise
    # below the instrument's resolution) has no density under a law with σ > 0 there and none
    # to compare under one with σ = 0: it is left out of the read law and counted
    varies = np.bincount(data.device, weights=resid**2, minlength=data.n_devices) > 0
    if varies.sum() < MIN_DEVICES_PER_BIN:
        raise DataError(f"{data.path}: the reads of {int((~varies).sum())} of "
                        f"{data.n_devices} devices are all equal; the read noise needs at "
                        f"least {MIN_DEVICES_PER_BIN} devices whose reads vary")
    rows = varies[data.device]
    read = fit_noise(means[data.device][rows], resid[rows], data.device[rows], None, families,
                     bootstrap, seed, variance_fit=True, g_span=g_span)
    program = None
    if data.g_target is not None:
        target = np.array([data.g_target[idx[0]] for idx in groups])
        extra = read.sigma(means) ** 2 / n
        program = fit_noise(target, means - target, np.arange(len(groups)), extra,
                            program_families or families, bootstrap, seed + 1,
                            variance_fit=True, window=window, g_span=g_span)
    lag1 = lag1_ci = None
    consecutive = data.read is not None and all((np.diff(data.read[idx]) == 1).all()
                                                 for idx in groups)
    if consecutive and (counts >= 3).sum() >= MIN_DEVICES_PER_BIN:
        informative = counts >= 3  # two demeaned reads are ±(x₁ − x₂)/2: a ratio of −1/2
        sums = tuple(a[informative] for a in (
            *lag1_sums(data.g - means[data.device], data.device, data.n_devices), counts))
        lag1 = _lag1(*sums)
        rng = np.random.default_rng(seed + 2)
        boots = []
        size = sums[0].size
        for _ in range(bootstrap):
            chosen = rng.integers(0, size, size)
            boots.append(_lag1(*(a[chosen] for a in sums)))
        lag1_ci = [float(v) for v in np.percentile(boots, [2.5, 97.5])] if boots else None
    return ReadFit(read, program, lag1, lag1_ci, float(n.mean()), int((~varies).sum()))


def read_residuals(data: Measurements) -> tuple[np.ndarray, np.ndarray]:
    """(each device's mean, µS; each read's residual from its device's mean scaled by
    √(n/(n−1)) so that its variance is σ_read², µS)."""
    n = data.per_device().astype(np.float64)
    means = np.bincount(data.device, weights=data.g, minlength=data.n_devices) / n
    return means, (data.g - means[data.device]) * np.sqrt(n / np.maximum(n - 1, 1))[data.device]


def demeaned_ar1_moments(n: int, rho: float) -> tuple[float, float]:
    """(E Σₜ yₜ yₜ₊₁, E Σₜ yₜ²) of the n reads of one device less their mean, y = x − x̄, for
    reads x of unit variance with lag-k correlation ρᵏ (AR(1)): with Σ_ij = ρ^|i−j|, its total
    S = n + 2 Σₖ (n − k) ρᵏ and its first row's sum r₁ = Σₖ ρᵏ, E Σ yₜ² = n − S/n and
    E Σ yₜyₜ₊₁ = (n − 1)ρ − 2(S − r₁)/n + (n − 1)S/n². At ρ = 0 their ratio is −1/n, the bias
    that removing the mean gives the lag-1 correlation."""
    k = np.arange(1, n)
    total = n + 2.0 * float(np.sum((n - k) * rho**k))
    first_row = float(np.sum(rho ** np.arange(n)))
    return ((n - 1) * rho - 2.0 * (total - first_row) / n + (n - 1) * total / n**2,
            n - total / n)


def lag1_sums(raw: np.ndarray, device: np.ndarray, n_devices: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per device: Σ yₜyₜ₊₁ and Σ yₜ² of its demeaned reads ``raw`` (rows of a device
    contiguous, in read order)."""
    same = device[1:] == device[:-1]
    num = np.bincount(device[1:][same], weights=(raw[1:] * raw[:-1])[same], minlength=n_devices)
    return num, np.bincount(device, weights=raw * raw, minlength=n_devices)


def _lag1(num: np.ndarray, den: np.ndarray, count: np.ndarray) -> float:
    """The lag-1 correlation ρ of AR(1) reads from the pooled lag-1 sums of demeaned reads
    (lag1_sums, one entry per device; devices with at least 3 reads): the ρ at which
    Σ num = Σ_n den_n·a_n(ρ)/b_n(ρ), with a_n, b_n the expectations of demeaned_ar1_moments per
    unit variance and den_n the Σ yₜ² of the devices with n reads (den_n/b_n(ρ) estimates the sum
    of their variances). With many devices both sides converge to their expectations, so ρ is
    consistent at any ρ and any mix of read counts; adding 1/n to the ratio, right at ρ = 0,
    reads ρ = 0.3 as 0.23 at n = 10. (With 2 reads the demeaned ratio is −1/2 whatever ρ is:
    such devices carry no lag-1 information and are left out by the caller.)"""
    from scipy.optimize import brentq

    if float(den.sum()) <= 0:
        return 0.0
    total_num = float(num.sum())
    by_count = {int(c): float(den[count == c].sum()) for c in np.unique(count)}

    def gap(rho: float) -> float:
        expected = 0.0
        for c, d in by_count.items():
            a, b = demeaned_ar1_moments(c, rho)
            expected += d * a / b
        return expected - total_num

    lo, hi = -0.999, 0.999
    if gap(lo) >= 0:
        return lo
    if gap(hi) <= 0:
        return hi
    return float(brentq(gap, lo, hi, xtol=1e-10))


def fit_programming(data: Measurements, bootstrap: int = BOOTSTRAP, seed: int = 0,
                    families: tuple[str, ...] = NOISE_FAMILIES,
                    window: tuple[float, float] | None = None,
                    g_span: tuple[float, float] | None = None) -> LawFit:
    """σ_prog(G_target) from one achieved conductance per device (its read noise included);
    clipped to ``window`` (µS) when given; positive over ``g_span`` (µS)."""
    require_targets(data)
    check_window(data, window, achieved=True)
    check_bins(data, data.g_target)
    return fit_noise(data.g_target, data.g - data.g_target, data.device, None, families,
                     bootstrap, seed, window=window, g_span=g_span)


def require_targets(data: Measurements) -> None:
    """Programming data names each device's target."""
    if data.g_target is None:
        raise DataError(f"{data.path}: programming data needs a g_target column (the target "
                        f"each device was programmed to)")


def check_bins(data: Measurements, g: np.ndarray) -> None:
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
