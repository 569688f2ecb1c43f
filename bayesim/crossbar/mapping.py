"""From a weight's posterior N(μ, σ²) to device conductances (reference/hardware.md §5).

A weight is a differential pair of devices (or of ``n`` devices per side, M4), read as
``w = n·(G⁺ − G⁻)/α`` with a layer scale α (µS per weight unit). Writing ``G± = c ± d`` with
``d = α·μ/(2n)``, the *common mode* c leaves the mean untouched and sets the spread: for a
per-device noise law s(G) (per-read noise for M1/M4, programming noise for M2/M3)

    σ_w(c)² = n·(s²(c + d) + s²(c − d)) / α²                         (hardware.md §5, M5)

so c is the σ knob at fixed μ (the *variance-aware common mode*). Solved per weight:

- square-root law s² = q·G: σ_w² = 2nq·c/α², so c = α²σ²/(2nq);
- proportional law s = k·G: σ_w² = 2nk²(c² + d²)/α², so c = sqrt(α²σ²/(2nk²) − d²);
- any other law: a grid search of σ_w over the feasible interval followed by bisection in the
  bracket that contains the target (works for non-monotone laws such as the RRAM polynomials).

c is then clipped to the feasible interval [g_min + |d|, g_max − |d|] (both devices inside the
conductance window): a target σ outside the reachable range is *reported* (the feasibility
report), never silently matched. On a device with a level grid, both conductances are snapped to
it, the difference first (μ), then the common mode (σ). Without the common-mode knob
(``common_mode = False``) the unused device sits at g_min, as in aihwkit's single-pair converter.

α is chosen per layer (or per output column, with one digital gain per ADC output) to maximise the
fraction of weights whose σ is realised within ±10 % (:data:`SIGMA_TOLERANCE`); among the scales
within one percentage point of the best, the largest is taken, because a larger α means a larger
conductance signal against programming errors and periphery noise.
"""

import math
from dataclasses import dataclass

import numpy as np

from bayesim.devices.laws import closed_form
from bayesim.errors import MappingError

SIGMA_TOLERANCE = 0.10
"""A weight is feasible when its realised σ is within ±10 % of the target (issue 5)."""
ALPHA_CANDIDATES = 49
"""Layer scales tried, log-spaced over 2.5 decades below the largest scale that fits μ."""
ALPHA_SUBSAMPLE = 20_000
"""Weights (a fixed random subset) used to score each candidate α."""
_GRID = 33
_BISECTIONS = 40
_CHUNK = 1 << 15


def pair_sigma(law: object | None, g_plus: np.ndarray, g_minus: np.ndarray, alpha: float,
               g_max: float, n: int = 1) -> np.ndarray:
    """σ_w (weight units) of pairs (G⁺, G⁻) (µS) with ``n`` devices per side and noise law
    ``law`` (µS); zero when there is no law."""
    if law is None:
        return np.zeros(np.broadcast(g_plus, g_minus).shape)
    s2 = np.square(law(g_plus, g_max)) + np.square(law(g_minus, g_max))
    return np.sqrt(n * s2) / alpha


def solve_common_mode(law: object | None, d: np.ndarray, sigma: np.ndarray, alpha: float,
                      g_min: float, g_max: float, n: int = 1) -> np.ndarray:
    """The common mode c (µS) per weight whose σ_w(c) is closest to ``sigma``, inside
    [g_min + |d|, g_max − |d|]."""
    lo = g_min + np.abs(d)
    hi = g_max - np.abs(d)
    if law is None:
        return lo.copy()
    closed = closed_form(law)
    if closed is not None:
        kind, k = closed
        if k == 0 or kind == "constant":  # no σ knob: every common mode gives the same σ
            return lo.copy()
        target = (alpha * sigma) ** 2 / (2.0 * n * k * k)
        c = target if kind == "sqrt" else np.sqrt(np.maximum(target - d * d, 0.0))
        return np.clip(c, lo, hi)
    c = np.empty_like(d)
    u = np.linspace(0.0, 1.0, _GRID)
    alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), d.shape)
    for a in range(0, d.size, _CHUNK):
        b = min(d.size, a + _CHUNK)
        c[a:b] = _grid_solve(law, d[a:b], sigma[a:b], lo[a:b], hi[a:b], alphas[a:b], g_max, n,
                             u)
    return c


def _grid_solve(law, d, sigma, lo, hi, alpha, g_max, n, u):
    span = (hi - lo)[:, None]
    grid = lo[:, None] + u[None, :] * span
    err = pair_sigma(law, grid + d[:, None], grid - d[:, None], alpha[:, None], g_max,
                     n) - sigma[:, None]
    best = np.argmin(np.abs(err), axis=1)
    rows = np.arange(d.size)
    c = grid[rows, best]
    # refine where the target lies between the best grid point and a neighbour (sign change)
    up = np.minimum(best + 1, u.size - 1)
    down = np.maximum(best - 1, 0)
    sign_best = np.sign(err[rows, best])
    cross_up = (up != best) & (np.sign(err[rows, up]) != sign_best)
    cross_down = (down != best) & (np.sign(err[rows, down]) != sign_best)
    other = np.where(cross_up, up, down)
    idx = np.flatnonzero((cross_up | cross_down) & (sign_best != 0))
    if idx.size:
        a = grid[idx, best[idx]]
        b = grid[idx, other[idx]]
        fa = err[idx, best[idx]]
        for _ in range(_BISECTIONS):
            mid = 0.5 * (a + b)
            fm = pair_sigma(law, mid + d[idx], mid - d[idx], alpha[idx], g_max, n) - sigma[idx]
            left = np.sign(fm) == np.sign(fa)
            a = np.where(left, mid, a)
            fa = np.where(left, fm, fa)
            b = np.where(left, b, mid)
        c[idx] = 0.5 * (a + b)
    return c


def snap_pairs(g_plus: np.ndarray, g_minus: np.ndarray, g_min: float, g_max: float,
               levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Both conductances on the level grid of ``levels`` states: the difference is rounded first
    (it carries μ), then the lower device to the grid point nearest its ideal value (σ)."""
    if levels < 2:
        return g_plus, g_minus
    step = (g_max - g_min) / (levels - 1)
    k = np.rint((g_plus - g_minus) / step)
    low = g_min + np.maximum(-k, 0) * step
    high = g_max - np.maximum(k, 0) * step
    gm = g_min + np.rint((g_minus - g_min) / step) * step
    gm = np.clip(gm, low, high)
    return gm + k * step, gm


@dataclass
class PairMap:
    """Target conductances of one layer's weights (shape of μ, µS) and what they realise."""

    g_plus: np.ndarray
    g_minus: np.ndarray
    alpha: float | np.ndarray
    """µS per weight unit: one for the layer, or one per output column (shape [out, 1])."""
    n_devices: int
    """Devices per side of the pair (M4: several, summed)."""
    sigma_target: np.ndarray
    sigma_realised: np.ndarray
    """σ_w of the target conductances under the mapping's noise law (weight units)."""

    @property
    def weight(self) -> np.ndarray:
        """The mean weight the targets encode, n·(G⁺ − G⁻)/α."""
        return self.n_devices * (self.g_plus - self.g_minus) / self.alpha


def alpha_limit(mu: np.ndarray, g_min: float, g_max: float, n: int = 1) -> float:
    """The largest α (µS per weight unit) at which every |μ| fits: n·(g_max − g_min)/max|μ|."""
    top = float(np.max(np.abs(mu))) if mu.size else 0.0
    if not g_max > g_min:
        raise MappingError(f"the device window is empty: g_min {g_min} ≥ g_max {g_max} µS")
    return n * (g_max - g_min) / top if top > 0 else math.inf


def column_alpha_limits(mu: np.ndarray, g_min: float, g_max: float, n: int = 1) -> np.ndarray:
    """:func:`alpha_limit` of every output column of ``μ[out, in]`` (inf for an all-zero one)."""
    top = np.abs(mu).max(axis=1)
    with np.errstate(divide="ignore"):
        return np.where(top > 0, n * (g_max - g_min) / np.where(top > 0, top, 1.0), np.inf)


def _largest_alpha(mu: np.ndarray, sigma: np.ndarray, g_min: float, g_max: float, n: int,
                   columnwise: bool) -> float | np.ndarray:
    """The 'max' policy: the largest α at which μ fits; where μ is all zero (any α fits), the
    scale the σ would get (the smallest finite one among the columns, or :func:`choose_alpha`'s
    σ-based range)."""
    limits = column_alpha_limits(mu, g_min, g_max, n) if columnwise else \
        np.array([alpha_limit(mu, g_min, g_max, n)])
    finite = np.isfinite(limits)
    if not finite.any():
        top = float(np.max(sigma)) if sigma.size else 0.0
        limits[:] = n * (g_max - g_min) / top if top > 0 else 1.0
    else:
        limits[~finite] = limits[finite].min()
    return limits if columnwise else float(limits[0])


def layer_alpha(mu: np.ndarray, sigma: np.ndarray, law: object | None, g_min: float,
                g_max: float, *, n: int = 1, levels: int = 0, common_mode: bool = True,
                policy: str = "feasibility") -> float:
    """One scale α (µS per weight unit) for all of ``mu`` by ``policy``: 'feasibility'
    (:func:`choose_alpha`) or 'max' (the largest α at which μ fits)."""
    if policy == "max":
        return float(_largest_alpha(np.asarray(mu), np.asarray(sigma), g_min, g_max, n, False))
    return choose_alpha(mu, sigma, law, g_min, g_max, n=n, levels=levels,
                        common_mode=common_mode)


def map_pairs(mu: np.ndarray, sigma: np.ndarray, law: object | None, g_min: float,
              g_max: float, *, alpha: float | np.ndarray | None = None, n: int = 1,
              levels: int = 0, common_mode: bool = True, scope: str = "layer",
              policy: str = "feasibility") -> PairMap:
    """Map weights N(μ, σ²) to pairs of conductances (module docstring). ``alpha`` None chooses
    it: one scale for the matrix (``scope`` 'layer') or one per output column of ``μ[out, in]``
    ('column'), by ``policy`` 'feasibility' (:func:`choose_alpha`, :func:`choose_column_alpha`)
    or 'max' (the largest scale at which μ fits); a given ``alpha`` is a number or an array of
    one scale per output."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.shape != sigma.shape:
        raise MappingError(f"μ has shape {mu.shape} but σ {sigma.shape}")
    if not np.all(np.isfinite(mu)) or not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise MappingError("μ and σ must be finite and σ ≥ 0 to be mapped")
    if scope not in ("layer", "column"):
        raise MappingError(f"the scale scope must be 'layer' or 'column', got {scope!r}")
    columnwise = scope == "column" or np.ndim(alpha) > 0
    if columnwise and mu.ndim != 2:
        raise MappingError("column scales need a matrix μ[out, in]")
    if policy not in ("feasibility", "max"):
        raise MappingError(f"the α policy must be 'feasibility' or 'max', got {policy!r}")
    if alpha is None and not columnwise:
        alpha = layer_alpha(mu, sigma, law, g_min, g_max, n=n, levels=levels,
                            common_mode=common_mode, policy=policy)
    elif alpha is None and policy == "max":
        alpha = _largest_alpha(mu, sigma, g_min, g_max, n, True)
    elif alpha is None:
        alpha = choose_column_alpha(mu, sigma, law, g_min, g_max, n=n, levels=levels,
                                    common_mode=common_mode)
    if columnwise:
        alpha = np.asarray(alpha, dtype=np.float64).reshape(-1, 1)
        if alpha.shape[0] != mu.shape[0]:
            raise MappingError(f"{alpha.shape[0]} column scales for {mu.shape[0]} outputs")
        limit = column_alpha_limits(mu, g_min, g_max, n)[:, None]
    else:
        alpha = float(alpha)  # type: ignore[arg-type]
        limit = alpha_limit(mu, g_min, g_max, n)
    if not np.all((alpha > 0) & (alpha <= limit * (1 + 1e-9))):
        worst = float(np.max(np.asarray(alpha) / limit))
        raise MappingError(f"α does not fit the weights: it must be > 0 and at most the scale at "
                           f"which n·(G⁺ − G⁻)/α reaches max|μ| (exceeded {worst:.3g}-fold)")
    alpha_w = np.broadcast_to(alpha, mu.shape).reshape(-1)
    realised_pm = _map_flat(mu.reshape(-1), sigma.reshape(-1), alpha_w, law, g_min, g_max, n,
                            levels, common_mode)
    g_plus, g_minus, realised = (a.reshape(mu.shape) for a in realised_pm)
    return PairMap(g_plus, g_minus, alpha, n, sigma, realised)


def _map_flat(mu, sigma, alpha, law, g_min, g_max, n, levels, common_mode):
    """(G⁺, G⁻, realised σ) of flat weights with a scale per weight."""
    d = alpha * mu / (2.0 * n)
    d = np.clip(d, -(g_max - g_min) / 2, (g_max - g_min) / 2)
    if common_mode:
        c = solve_common_mode(law, d, sigma, alpha, g_min, g_max, n)
    else:
        c = g_min + np.abs(d)
    g_plus, g_minus = snap_pairs(c + d, c - d, g_min, g_max, levels)
    return g_plus, g_minus, pair_sigma(law, g_plus, g_minus, alpha, g_max, n)


def feasible_fraction(target: np.ndarray, realised: np.ndarray,
                      tolerance: float = SIGMA_TOLERANCE) -> float:
    return float(np.mean(np.abs(relative_error(target, realised)) <= tolerance)) \
        if np.size(target) else 1.0


def choose_alpha(mu: np.ndarray, sigma: np.ndarray, law: object | None, g_min: float,
                 g_max: float, *, n: int = 1, levels: int = 0, common_mode: bool = True) -> float:
    """The layer scale α (µS per weight unit) that realises the most σ within ±10 %, scored on a
    fixed random subset of the weights; ties (within 1 pp) go to the largest α."""
    flat_mu = np.asarray(mu, dtype=np.float64).reshape(-1)
    flat_sigma = np.asarray(sigma, dtype=np.float64).reshape(-1)
    if flat_mu.size > ALPHA_SUBSAMPLE:
        pick = np.random.default_rng(0).choice(flat_mu.size, ALPHA_SUBSAMPLE, replace=False)
        flat_mu, flat_sigma = flat_mu[pick], flat_sigma[pick]
    limit = alpha_limit(np.asarray(mu), g_min, g_max, n)
    if not math.isfinite(limit):  # all μ = 0: scale on the σ instead
        top = float(np.max(flat_sigma)) if flat_sigma.size else 0.0
        limit = n * (g_max - g_min) / top if top > 0 else 1.0
    candidates = limit * np.logspace(-2.5, 0.0, ALPHA_CANDIDATES)
    scores = []
    for alpha in candidates:
        pm = map_pairs(flat_mu, flat_sigma, law, g_min, g_max, alpha=float(alpha), n=n,
                       levels=levels, common_mode=common_mode)
        scores.append(feasible_fraction(flat_sigma, pm.sigma_realised))
    scores_arr = np.asarray(scores)
    good = np.flatnonzero(scores_arr >= scores_arr.max() - 0.01)
    return float(candidates[good.max()])


def choose_column_alpha(mu: np.ndarray, sigma: np.ndarray, law: object | None, g_min: float,
                        g_max: float, *, n: int = 1, levels: int = 0,
                        common_mode: bool = True) -> np.ndarray:
    """One α per output column of ``μ[out, in]`` (µS per weight unit), each chosen as
    :func:`choose_alpha` does for a layer, on all of the column's weights."""
    fallback = n * (g_max - g_min) / np.where(sigma.max(axis=1) > 0, sigma.max(axis=1), 1.0)
    limit = column_alpha_limits(mu, g_min, g_max, n)
    limit = np.where(np.isfinite(limit), limit, fallback)
    steps = np.logspace(-2.5, 0.0, ALPHA_CANDIDATES)
    scores = np.empty((steps.size, mu.shape[0]))
    for k, step in enumerate(steps):
        alpha = np.broadcast_to((limit * step)[:, None], mu.shape).reshape(-1)
        _, _, realised = _map_flat(mu.reshape(-1), sigma.reshape(-1), alpha, law, g_min, g_max,
                                   n, levels, common_mode)
        ok = np.abs(relative_error(sigma.reshape(-1), realised)) <= SIGMA_TOLERANCE
        scores[k] = ok.reshape(mu.shape).mean(axis=1)
    good = scores >= scores.max(axis=0, keepdims=True) - 0.01
    best = steps.size - 1 - np.argmax(good[::-1], axis=0)  # the largest good α per column
    return limit * steps[best]


def relative_error(target: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """realised/target − 1 (0 where both are 0, +inf where only the target is 0)."""
    target = np.asarray(target, dtype=np.float64)
    realised = np.asarray(realised, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = realised / target - 1.0
    rel = np.where(target > 0, rel, np.where(realised > 0, np.inf, 0.0))
    return rel


HISTOGRAM_EDGES = (-1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0, np.inf)


def feasibility_report(target: np.ndarray, realised: np.ndarray,
                       tolerance: float = SIGMA_TOLERANCE) -> dict:
    """How many σ are realised within ±``tolerance``, and the histogram of the relative error
    (deficit below −tolerance, excess above +tolerance)."""
    rel = relative_error(target, realised).reshape(-1)
    counts, _ = np.histogram(np.clip(rel, -1.0, 1e300), bins=np.asarray(HISTOGRAM_EDGES))
    labels = [f"[{a:+.0%}, {b:+.0%})" if np.isfinite(b) else f"[{a:+.0%}, inf)"
              for a, b in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:], strict=True)]
    finite = rel[np.isfinite(rel)]
    return {
        "n_weights": int(rel.size),
        "tolerance": tolerance,
        "fraction_feasible": float(np.mean(np.abs(rel) <= tolerance)) if rel.size else 1.0,
        "fraction_deficit": float(np.mean(rel < -tolerance)) if rel.size else 0.0,
        "fraction_excess": float(np.mean(rel > tolerance)) if rel.size else 0.0,
        "median_relative_error": float(np.median(finite)) if finite.size else None,
        "histogram": dict(zip(labels, (int(c) for c in counts), strict=True)),
    }
