"""Drift laws fitted to drift traces (bayesim.devices.measurements), with bootstrap intervals.

The card's drift law (bayesim.devices.laws.DriftLaw, aihwkit 1.1.0 ``PCMLikeNoiseModel``) gives
each device, once at programming, an exponent ν = |μ(x) + s(x)·ξ| (ξ standard normal, x = G/g_max)
and the conductance G(t) = G_p·(t/t₀)^(−ν). From a device's trace the fit takes

- ν̂, minus the least-squares slope of ln G against ln t (drift_slopes), and
- v̂, that slope's estimation variance from the trace's residuals (s²/Sxx with n − 2 degrees of
  freedom; 0 for a trace of two times). A v̂ from a few times is itself noisy (relative standard
  deviation √(2/(n − 2)): 0.8 for 5 times), so each device is given v, the mean v̂ of the devices
  in its conductance bin (fit.conductance_bins): unbiased for the bin, and precise enough to be
  used as known.

ν̂ is then a folded Gaussian plus an estimation error N(0, v), whose density has a closed form
(folded_loglik). μ(x) and s(x) are each one of the card's families: ``constant``, ``log_linear``
(a·ln x + b) or ``log_linear_clamped`` (clamp(a·ln x + b, lo, hi), the form of the shipped PCM
card's fits, Nandakumar et al. 2019 as in aihwkit). Their parameters are maximum-likelihood
estimates (Nelder–Mead, started from a grid over the clamps' positions); the pair of families is
the one with the highest 5-fold cross-validated log-likelihood, folds splitting devices; 95 %
percentile bootstrap intervals resample devices. A clamp is parameterised by where along ln x it
starts, within the measured targets, so a clamp the data do not reach sits at their end: its lo or
hi is then the law's value there, which changes nothing inside the calibrated range.

What this does not model (docs/devices_fit.md, "Limits"): noise along a trace that is not white
in ln G (1/f noise that grows with t is fitted as if it were white; the slope stays unbiased, its
variance v̂ is the least-squares one), and relaxation. t₀ is the first measured time.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

import numba
import numpy as np

from bayesim.devices import laws
from bayesim.devices.fit import (
    BOOTSTRAP,
    FOLDS,
    MIN_DEVICES_PER_BIN,
    check_bins,
    conductance_bins,
    device_rows,
)
from bayesim.devices.measurements import Measurements
from bayesim.errors import DataError

DRIFT_FAMILIES = ("constant", "log_linear", "log_linear_clamped", "table")
"""ν_mean's and ν_std's families. ``table`` goes only with itself: μ and s fitted as constants
in each conductance bin (fit.conductance_bins), the card's ``table`` law between the bins'
median G (monotone cubic, held at the ends), for traces no family describes (the HERMES
card's piecewise fits)."""
SIZES = {"constant": 1, "log_linear": 2, "log_linear_clamped": 4}
"""Parameters per family in the fit: (value), (a, b), (a, b, u₁, u₂) with u the clamps' ln x."""
CARD_LAW = {"constant": "constant", "log_linear": "log_linear",
            "log_linear_clamped": "log_linear", "table": "table"}
"""The card's law of each family (a clamped log-linear law is ``log_linear`` with lo and hi)."""
CLAMP_GRID = 8
"""Candidate clamp positions: this many quantiles of ln x (the ends included)."""


@dataclass(frozen=True)
class Slopes:
    """Per device: its target, else its first measured G (µS); ν̂, minus the least-squares slope
    of ln G against ln t; the fit's residual sum of squares and degrees of freedom (n − 2), and
    Sxx = Σ(ln t − mean)², so that the slope's estimation variance is s²/Sxx."""

    g: np.ndarray
    nu: np.ndarray
    rss: np.ndarray
    dof: np.ndarray
    sxx: np.ndarray


def drift_traces(data: Measurements) -> tuple[list[np.ndarray], int]:
    """The rows of each device with two or more times and every read above 0 µS, and the count
    of devices left out for a read at 0 µS (at the window's floor, where G·(t/t₀)^(−ν) cannot
    be read; the reads that noise clipped to 0 are likelier for fast drifters, a small bias)."""
    groups = [idx for idx in device_rows(data.device) if idx.size >= 2]
    at_zero = sum(bool((data.g[idx] <= 0).any()) for idx in groups)
    return [idx for idx in groups if (data.g[idx] > 0).all()], at_zero


def drift_slopes(data: Measurements, groups: list[np.ndarray]) -> Slopes:
    """The least-squares slopes of the traces ``groups`` (Slopes)."""
    cov, nu, rss, dof, sxx = [], [], [], [], []
    for idx in groups:
        lt, lg = np.log(data.t[idx]), np.log(data.g[idx])
        slope, intercept = np.polyfit(lt, lg, 1)
        nu.append(-slope)
        rss.append(float(np.sum((lg - intercept - slope * lt) ** 2)))
        dof.append(idx.size - 2)
        sxx.append(float(np.sum((lt - lt.mean()) ** 2)))
        cov.append(data.g_target[idx[0]] if data.g_target is not None else data.g[idx[0]])
    return Slopes(*(np.array(x, dtype=np.float64) for x in (cov, nu, rss, dof, sxx)))


def pooled_variance(slopes: Slopes, path: object = "the drift file") -> np.ndarray:
    """Per device, its slope's estimation variance s²/Sxx with s² the residual variance pooled
    over the traces of its conductance bin (Σ rss / Σ dof): precise where one trace's s² is
    not, and right for traces of two times or of other times than their neighbours'."""
    edges = conductance_bins(slopes.g)
    which = np.clip(np.searchsorted(edges, slopes.g, side="right") - 1, 0, edges.size - 2)
    rss = np.bincount(which, weights=slopes.rss, minlength=edges.size - 1)
    dof = np.bincount(which, weights=slopes.dof, minlength=edges.size - 1)
    used = np.bincount(which, minlength=edges.size - 1) > 0
    if (dof[used] <= 0).any():
        b = int(np.flatnonzero(used & (dof <= 0))[0])
        raise DataError(f"{path}: no drift trace between {edges[b]:g} and {edges[b + 1]:g} µS "
                        f"has three or more times, so the noise along the traces cannot be "
                        f"measured there; measure some devices at three or more times")
    return (rss / np.where(dof > 0, dof, 1.0))[which] / slopes.sxx


@numba.njit(cache=True)
def _log_ndtr(z: float) -> float:
    """ln Φ(z); below z = −20 by the asymptotic series of Mills' ratio to its z⁻⁸ term
    (relative error under 10⁻¹⁰ there; erfc alone keeps its precision to about −38)."""
    if z > -20.0:
        return math.log(0.5 * math.erfc(-z / math.sqrt(2.0)))
    w = 1.0 / (z * z)
    series = 1.0 - w * (1.0 - w * (3.0 - w * (15.0 - 105.0 * w)))
    return -0.5 * z * z - math.log(-z) - 0.5 * math.log(2.0 * math.pi) + math.log(series)


@numba.njit(cache=True)
def folded_loglik(nu: np.ndarray, mu: np.ndarray, s: np.ndarray, v: np.ndarray) -> float:
    """Log-likelihood (nats) of slopes ν̂ = |μ + s ξ| + ε, ε ~ N(0, v), per device:
    Σ± φ(ν̂; ±μ, s² + v)·Φ(m±/τ), m± = (±μ v + ν̂ s²)/(s² + v), τ² = s² v/(s² + v) (the Gaussian
    product in ν, integrated over ν > 0). At v = 0 it is the folded normal's density."""
    out = 0.0
    for i in range(nu.size):
        out += _folded_one(nu[i], mu[i], s[i], v[i])
    return out


@numba.njit(cache=True)
def _folded_one(nu: float, mu: float, s: float, v: float) -> float:
    mu = abs(mu)  # |μ + sξ| and |−μ + sξ| have one law
    var = s * s + v
    if var <= 0.0:  # ν = |μ| exactly, measured exactly: no density to compare
        return -math.inf
    tau = math.sqrt(s * s * v / var)
    gauss = -0.5 * math.log(2.0 * math.pi * var) - 0.5 * (nu - mu) ** 2 / var
    return gauss + _log_fold(nu, mu, s * s, v, var, tau)


@numba.njit(cache=True)
def _log_fold(nu: float, mu: float, s2: float, v: float, var: float, tau: float) -> float:
    """ln(Φ(m₊/τ) + exp(−2 ν̂ μ / (s² + v))·Φ(m₋/τ)): folded_loglik's terms beyond the Gaussian.
    Below 1e-15 (the reflection's weight under e⁻³⁵, Φ above Φ(8)) they are left out."""
    log_direct = _log_part(mu, nu, s2, v, var, tau)
    reflection = -2.0 * nu * mu / var
    if reflection < -35.0:
        return log_direct
    log_mirror = reflection + _log_part(-mu, nu, s2, v, var, tau)
    best = max(log_direct, log_mirror)
    if best == -math.inf:
        return best
    return best + math.log(math.exp(log_direct - best) + math.exp(log_mirror - best))


@numba.njit(cache=True)
def _log_part(mu: float, nu: float, s2: float, v: float, var: float, tau: float) -> float:
    """ln Φ(m/τ), m = (μ v + ν̂ s²)/(s² + v): the share of ν > 0 (0 above Φ(8))."""
    m = (mu * v + nu * s2) / var
    if tau == 0.0:
        return 0.0 if m > 0.0 else (math.log(0.5) if m == 0.0 else -math.inf)
    z = m / tau
    return 0.0 if z > 8.0 else _log_ndtr(z)


CODES = {"constant": 0, "log_linear": 1, "log_linear_clamped": 2}


@numba.njit(cache=True)
def _law_at(code: int, z: np.ndarray, lx: float, lo: float, hi: float) -> float:
    """The law with fit parameters ``z`` at one ln x, the family by its CODES number (constant
    z₀; z₀ ln x + z₁; z₀·clip(ln x, u₁, u₂) + z₁ with u = sorted z₂, z₃), clamps bounded by
    [lo, hi]."""
    if code == 0:
        return z[0]
    if code == 1:
        return z[0] * lx + z[1]
    u1 = min(max(min(z[2], z[3]), lo), hi)
    u2 = min(max(max(z[2], z[3]), lo), hi)
    return z[0] * min(max(lx, u1), u2) + z[1]


@numba.njit(cache=True)
def _nll(lx: np.ndarray, nu: np.ndarray, v: np.ndarray, mean: int, zm: np.ndarray, std: int,
         zs: np.ndarray, lo: float, hi: float, check_lo: float, check_hi: float,
         margin: float) -> float:
    """Minus folded_loglik of the laws (mean, zm), (std, zs), clamps bounded by [lo, hi]; inf
    where s < ``margin`` on [check_lo, check_hi] (a clamped or plain line is monotone: its ends
    decide)."""
    if (_law_at(std, zs, check_lo, lo, hi) < margin
            or _law_at(std, zs, check_hi, lo, hi) < margin):
        return math.inf
    out = 0.0
    for i in range(nu.size):
        out += _folded_one(nu[i], _law_at(mean, zm, lx[i], lo, hi),
                           _law_at(std, zs, lx[i], lo, hi), v[i])
    return -out


@numba.njit(cache=True)
def _law_values(code: int, z: np.ndarray, lx: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """_law_at at every ln x of ``lx``."""
    out = np.empty(lx.size)
    for i in range(lx.size):
        out[i] = _law_at(code, z, lx[i], lo, hi)
    return out


def _line(family: str, z: np.ndarray, lx: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """The law of ``family`` with fit parameters ``z`` at ln x = ``lx`` (clamps within
    ``span``)."""
    return _law_values(CODES[family], np.asarray(z, dtype=np.float64),
                       np.asarray(lx, dtype=np.float64), *span)


def _line_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray,
              pairs: list[tuple[float, float]] | None = None) -> np.ndarray:
    """Weighted least squares of y on a line in x, weights ``w``: (a, b); with clamp positions
    ``pairs``, the best (a, b, u₁, u₂) of y ≈ a·clip(x, u₁, u₂) + b over them."""
    def wls(f: np.ndarray) -> tuple[np.ndarray, float]:
        root = np.sqrt(w)
        coef = np.linalg.lstsq(np.column_stack([f, np.ones_like(f)]) * root[:, None], y * root,
                               rcond=None)[0]
        return coef, float(np.sum(w * (y - coef[0] * f - coef[1]) ** 2))

    if pairs is None:
        return wls(x)[0]
    (coef, _), pair = min(((wls(np.clip(x, lo, hi)), (lo, hi)) for lo, hi in pairs),
                          key=lambda item: item[0][1])
    return np.r_[coef, pair]


def card_params(family: str, z: np.ndarray, span: tuple[float, float]) -> dict[str, float]:
    """The card's parameters of ``family`` (CARD_LAW) from fit parameters ``z``."""
    if family == "constant":
        return {"value": float(z[0])}
    if family == "log_linear":
        return {"a": float(z[0]), "b": float(z[1])}
    ends = _line(family, z, np.asarray(z[2:4], dtype=np.float64), span)  # at the clamps
    return {"a": float(z[0]), "b": float(z[1]), "lo": float(ends.min()),
            "hi": float(ends.max())}


def card_law(family: str, params: dict) -> object:
    """The machine's law (bayesim.devices.laws) of card parameters ``params``."""
    if family == "constant":
        return laws.Constant(params["value"])
    if family == "table":
        return laws.Table(tuple(params["g"]), tuple(params["sigma"]))
    return laws.LogLinear(params["a"], params["b"], params.get("lo", -np.inf),
                          params.get("hi", np.inf))


def _nelder_mead(f: Callable[[np.ndarray], float], z0: np.ndarray, step: np.ndarray
                 ) -> np.ndarray:
    from scipy.optimize import minimize

    simplex = np.vstack([z0, z0 + np.diag(step)])
    with np.errstate(invalid="ignore"):  # vertices where s < 0 are inf, inf − inf is nan
        result = minimize(f, z0, method="Nelder-Mead",
                          options={"initial_simplex": simplex, "xatol": 1e-5, "fatol": 1e-3,
                                   "maxiter": 400 * z0.size, "maxfev": 400 * z0.size})
    return result.x


class _Problem:
    """The likelihood of one set of devices: ln x, ν̂ and the pooled slope variance v."""

    def __init__(self, lx: np.ndarray, nu: np.ndarray, v: np.ndarray,
                 span: tuple[float, float] | None = None,
                 check: tuple[float, float] | None = None) -> None:
        self.lx, self.nu, self.v = lx, nu, v
        self.span = span or (float(lx.min()), float(lx.max()))
        # where s ≥ 0 is required: the targets and the card's calibrated range (``check``)
        self.given_check = check
        self.check = self.span if check is None else (min(self.span[0], check[0]),
                                                      max(self.span[1], check[1]))
        self.scale = max(float(np.std(nu)), 1e-6)
        # s must clear 0 by more than the card's 6-digit rounding of a and b moves it: a
        # log-linear ν_std pressed against 0 at an end is otherwise refused once rounded
        self.margin = 1e-4 * self.scale

    def nll(self, mean: str, std: str, z: np.ndarray) -> float:
        z = np.asarray(z, dtype=np.float64)
        return _nll(self.lx, self.nu, self.v, CODES[mean], z[:SIZES[mean]], CODES[std],
                    z[SIZES[mean]:], *self.span, *self.check, self.margin)

    def steps(self, family: str) -> np.ndarray:
        width = max(self.span[1] - self.span[0], 1e-6)
        return np.array([0.2 * self.scale, 0.2 * self.scale, 0.2 * width, 0.2 * width]
                        )[:SIZES[family]]

    def _clamp_pairs(self) -> list[tuple[float, float]]:
        points = np.unique(np.quantile(self.lx, np.linspace(0, 1, CLAMP_GRID)))
        return list(combinations(points.tolist(), 2))

    def mean_start(self, family: str, spread: float) -> np.ndarray:
        """Weighted least squares (weights 1/(spread² + v)); for clamps, the best of a grid of
        clamp positions."""
        w = 1.0 / (spread**2 + self.v)
        if family == "constant":
            return np.array([np.sum(w * self.nu) / np.sum(w)])
        return _line_fit(self.lx, self.nu, w,
                         self._clamp_pairs() if family == "log_linear_clamped" else None)

    def std_start(self, mean: str, zm: np.ndarray, family: str) -> np.ndarray:
        """The spread's start, the mean held at ``zm``: in 8 equal-count bins of ln x the
        spread √(mean(r² − v)) of the residuals r, a line fitted to those by least squares
        weighted by the bins' counts; for clamps the best over a grid of clamp positions."""
        r2 = (self.nu - _line(mean, zm, self.lx, self.span)) ** 2
        floor = 1e-4 * self.scale**2
        s0 = float(np.sqrt(max(np.mean(r2 - self.v), floor)))
        if family == "constant":
            return np.array([s0])
        edges = np.quantile(self.lx, np.linspace(0, 1, 9))
        which = np.clip(np.searchsorted(edges, self.lx, side="right") - 1, 0, 7)
        count = np.bincount(which, minlength=8).astype(float)
        full = count > 0
        centre = np.bincount(which, self.lx, 8)[full] / count[full]
        spread = np.sqrt(np.maximum(np.bincount(which, r2 - self.v, 8)[full] / count[full],
                                    floor))
        start = _line_fit(centre, spread, count[full],
                          self._clamp_pairs() if family == "log_linear_clamped" else None)
        ends = [_law_at(CODES[family], start, end, *self.span) for end in self.check]
        if min(ends) < 2 * self.margin:  # below 0 at an end: start flat (the fit needs s > 0)
            start[:2] = 0.0, s0
        return start

    def fit(self, mean: str, std: str, start: np.ndarray | None = None) -> np.ndarray:
        """Maximum-likelihood fit parameters of the pair (mean, std), jointly; from ``start``
        (a bootstrap replicate starts at the full fit) or from the grid starts."""
        if start is None:
            spread = float(np.sqrt(max(np.var(self.nu) - np.mean(self.v), 1e-4 * self.scale**2)))
            zm = self.mean_start(mean, spread)
            start = np.r_[zm, self.std_start(mean, zm, std)]
        steps = np.r_[self.steps(mean), self.steps(std) * np.r_[
            np.full(min(SIZES[std], 2), 0.5), np.ones(max(SIZES[std] - 2, 0))]]
        z = _nelder_mead(lambda z: self.nll(mean, std, z), start, steps)
        # one restart: Nelder–Mead's simplex collapses early on the clamps' kinks (a restart
        # gained up to 1.4 nats at 100 devices, nothing more after it)
        return _nelder_mead(lambda z: self.nll(mean, std, z), z, steps)

    def subset(self, rows: np.ndarray, same_span: bool = False) -> "_Problem":
        """The devices ``rows``; ``same_span``: their clamps bounded by this set's span."""
        return _Problem(self.lx[rows], self.nu[rows], self.v[rows],
                        self.span if same_span else None, self.given_check)


def _fit_pair(problem: "_Problem", mean: str, std: str, g: np.ndarray, edges: np.ndarray
              ) -> tuple[dict, dict]:
    """The card parameters of the laws (mean, std) fitted to ``problem``, whose devices are
    at conductances ``g`` (µS). The table pair: constant μ and s in each bin of ``edges``
    holding at least two of them, at the bin's median G."""
    if mean != "table":
        z = problem.fit(mean, std)
        size = SIZES[mean]
        return card_params(mean, z[:size], problem.span), card_params(std, z[size:], problem.span)
    which = np.clip(np.searchsorted(edges, g, side="right") - 1, 0, edges.size - 2)
    knots, mus, sigmas = [], [], []
    for b in range(edges.size - 1):
        rows = np.flatnonzero(which == b)
        if rows.size >= MIN_DEVICES_PER_BIN:
            mu, s = problem.subset(rows).fit("constant", "constant")
            knots.append(float(np.median(g[rows])))
            mus.append(float(abs(mu)))
            sigmas.append(float(s))
    return {"g": knots, "sigma": mus}, {"g": knots, "sigma": sigmas}


@dataclass
class DriftFit:
    """The fitted drift-exponent laws ν_mean(G), ν_std(G) (families of DRIFT_FAMILIES, card
    parameters in CARD_LAW's form) with 95 % bootstrap intervals; t₀ (s) the first measured time,
    g_max (µS) the x = G/g_max of the laws."""

    t0: float
    nu_mean_family: str
    nu_mean: dict[str, float]
    nu_std_family: str
    nu_std: dict[str, float]
    ci95: dict[str, dict[str, list[float]]]
    """{"nu_mean": {parameter: [lo, hi]}, "nu_std": {…}}"""
    cv: dict[str, float]
    """Cross-validated log-likelihood (nats) of every pair, ``"mean family/std family"``."""
    n_devices: int
    n_measurements: int
    t_max: float
    g_max: float
    devices_at_zero: int = 0
    """Devices left out because a read of their trace is 0 µS."""
    g_range: tuple[float, float] = (0.0, 0.0)
    """µS, the conductances the laws were fitted over (the traces' targets)."""
    replicates: list[tuple[dict[str, float], dict[str, float]]] = field(
        default_factory=list, repr=False)

    def moments(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(μ, s) of the fitted laws at conductances ``g`` (µS)."""
        return (card_law(self.nu_mean_family, self.nu_mean)(g, self.g_max),
                card_law(self.nu_std_family, self.nu_std)(g, self.g_max))

    def moments_interval(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """95 % percentile bootstrap intervals of μ(G) and s(G) at ``g``: each (2, *g.shape)."""
        if not self.replicates:
            raise ValueError("no bootstrap replicates: fit with bootstrap > 0")
        mean = [card_law(self.nu_mean_family, m)(g, self.g_max) for m, _ in self.replicates]
        std = [card_law(self.nu_std_family, s)(g, self.g_max) for _, s in self.replicates]
        return (np.percentile(mean, [2.5, 97.5], axis=0),
                np.percentile(std, [2.5, 97.5], axis=0))


def fit_drift(data: Measurements, g_max: float, bootstrap: int = BOOTSTRAP, seed: int = 0,
              mean_families: tuple[str, ...] = DRIFT_FAMILIES,
              std_families: tuple[str, ...] = DRIFT_FAMILIES,
              progress: Callable[[int, int], None] | None = None,
              g_span: tuple[float, float] | None = None) -> DriftFit:
    """The drift laws of the traces of ``data`` (module docstring), x = G/``g_max``: the pair of
    ``mean_families`` × ``std_families`` with the best cross-validated likelihood (no
    cross-validation for a single pair), its parameters and their bootstrap intervals (for
    that pair). ν_std stays ≥ 0 over ``g_span`` (µS, the card's calibrated range) too."""
    if data.t is None:
        raise DataError(f"{data.path}: drift data needs a t column (time since programming)")
    if (data.t <= 0).any() and data.per_device().max() >= 2:
        raise DataError(f"{data.path}: drift traces need t > 0 s (a log-log fit); give the "
                        f"time since programming")
    groups, at_zero = drift_traces(data)
    if len(groups) < 2:
        raise DataError(f"{data.path}: drift needs at least two devices with two or more "
                        f"times each, all above 0 µS")
    slopes = drift_slopes(data, groups)
    cov, nu = slopes.g, slopes.nu
    if (cov <= 0).any():
        name = data.names[data.device[groups[int(np.flatnonzero(cov <= 0)[0])][0]]]
        raise DataError(f"{data.path}: device {name} is programmed to 0 µS; ν(G) is fitted "
                        f"against ln(G/g_max), so drift traces need targets above 0 µS")
    check_bins(data, cov)
    # (x floored as laws.LogLinear floors it)
    check = None if g_span is None else tuple(np.log(np.maximum(np.asarray(g_span) / g_max,
                                                                laws.LogLinear.x_floor)))
    problem = _Problem(np.log(cov / g_max), nu, pooled_variance(slopes, data.path), None, check)
    edges = conductance_bins(cov)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(nu.size) % FOLDS
    cv: dict[str, float] = {}
    pairs = [(mean, std) for mean in mean_families for std in std_families
             if (mean == "table") == (std == "table")]
    for mean, std in pairs if len(pairs) > 1 else []:
        total = 0.0
        for k in range(FOLDS):
            train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            # the test devices' laws: the train fit's (clamps at its span's ends at most)
            laws_k = _fit_pair(problem.subset(train), mean, std, cov[train], edges)
            mu = card_law(mean, laws_k[0])(cov[test], g_max)
            s = np.maximum(card_law(std, laws_k[1])(cov[test], g_max), 0.0)
            total += folded_loglik(nu[test], mu, s, problem.v[test])
        cv[f"{mean}/{std}"] = total
    mean, std = max(cv, key=lambda k: cv[k]).split("/") if cv else pairs[0]
    fitted = _fit_pair(problem, mean, std, cov, edges)
    replicates = []
    for b in range(bootstrap):
        rows = rng.integers(0, nu.size, nu.size)
        # each replicate is fitted from its own grid start (one started at the full fit stays
        # near it where a clamp's position and the slope trade off: intervals too narrow), its
        # clamps bounded by the full data's span, as the full fit's are; a table is read at
        # the full fit's knots (its own move with the resampled devices)
        pair = _fit_pair(problem.subset(rows, same_span=True), mean, std, cov[rows], edges)
        if mean == "table":
            pair = tuple({"g": full["g"], "sigma": card_law("table", law)(
                np.asarray(full["g"]), g_max).tolist()} for full, law in zip(fitted, pair,
                                                                               strict=True))
        replicates.append(pair)
        if progress:
            progress(b + 1, bootstrap)
    ci95: dict[str, dict[str, list]] = {"nu_mean": {}, "nu_std": {}}
    for i, key in enumerate(("nu_mean", "nu_std")):
        for name in (replicates[0][i] if replicates else {}):
            if name == "g":  # a table's knots: the full fit's in every replicate
                continue
            values = np.array([np.atleast_1d(r[i][name]) for r in replicates], dtype=float)
            lo, hi = np.percentile(values, [2.5, 97.5], axis=0)
            ci95[key][name] = ([[float(x), float(y)] for x, y in zip(lo, hi, strict=True)]
                               if mean == "table" else [float(lo[0]), float(hi[0])])
    return DriftFit(float(data.t.min()), mean, fitted[0], std, fitted[1], ci95, cv, int(nu.size),
                    int(sum(i.size for i in groups)), float(data.t.max()), g_max, at_zero,
                    (float(cov.min()), float(cov.max())), replicates)
