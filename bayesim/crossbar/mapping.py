"""From a weight's posterior N(μ, σ²) to device conductances (docs/machine.md, compile step 1).

A weight is a differential pair of devices (or of ``n`` devices per side, M4), read as
``w = n·(G⁺ − G⁻)/α`` with a layer scale α (µS per weight unit). Writing ``G± = c ± d`` with
``d = α·μ/(2n)``, the *common mode* c leaves the mean untouched and sets the spread: for a
per-device noise law s(G) — the spread of the clock that draws the sample, which the machine's
schemes give (bayesim.machine.schemes: per-read noise for M1/M4, the whole spread between
programmings at the inference time for M2/M3)

    σ_w(c)² = n·(s²(c + d) + s²(c − d)) / α²                  (M5; docs/machine.md, compile step 1)

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

α (µS per weight unit) is chosen per layer, per output column (one digital gain per ADC output)
or given, by one of three policies (:func:`choose_alpha`):

- ``distance`` (default): minimise the mean over the weights of the expected 2-Wasserstein
  distance between what the chip realises and N(μ, σ²), in units of σ:
  W₂/σ = sqrt((m − μ)² + (s − σ)²)/σ. The mean m carries the error the sampler does not redraw
  (a per-read sampler's frozen programming noise and drift, the level grid), s is the sampler's
  σ widened by the periphery's output noise and ADC step referred to the weights (with physical
  tile ranges a fixed current: in weight units it grows as 1/α). A small α lets the noise reach
  large σ but magnifies every frozen error, the noise floor and the periphery's noise by 1/α; a
  large α does the opposite.
- ``feasibility``: maximise the fraction of weights whose sampler σ is within ±10 %
  (:data:`SIGMA_TOLERANCE`) — blind to the frozen error;
- ``max``: the largest α at which every μ fits (most signal, σ as it falls; aihwkit's mapping).

Among the candidates within 1 % of the best score, the largest α is taken.
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


POLICIES = ("distance", "feasibility", "max")
"""How α is chosen (module docstring): 'distance' minimises the expected Wasserstein distance
between the realised and the target distribution, 'feasibility' maximises the fraction of σ
within ±10 %, 'max' takes the largest α at which μ fits."""


def _limits(mu: np.ndarray, sigma: np.ndarray, g_min: float, g_max: float, n: int,
            columnwise: bool) -> np.ndarray:
    """The largest fitting α per column (or one for the matrix); where μ is all zero (any α
    fits), the smallest finite column limit, or the scale at which the largest σ would span the
    window."""
    mu2 = mu.reshape(mu.shape[0], -1) if columnwise else mu.reshape(1, -1)
    sigma2 = sigma.reshape(mu2.shape)
    limits = column_alpha_limits(mu2, g_min, g_max, n)
    finite = np.isfinite(limits)
    if finite.any():
        return np.where(finite, limits, limits[finite].min())
    top = sigma2.max(axis=1) if sigma2.size else np.zeros(mu2.shape[0])
    return np.where(top > 0, n * (g_max - g_min) / np.where(top > 0, top, 1.0), 1.0)


def expected_distance_sq(mu: np.ndarray, sigma: np.ndarray, pm: "PairMap",
                         frozen: object | None, g_max: float,
                         periphery: float = 0.0) -> np.ndarray:
    """Per weight, the expected squared 2-Wasserstein distance (weight units²) between what the
    mapped pair realises and N(μ, σ²): W₂² = (m − μ)² + (s − σ)² for Gaussians, with m the
    encoded mean plus a frozen error of per-device std ``frozen(G)`` (programming noise under a
    per-read sampler; E[(m − μ)²] adds its variance) and s the sampler's σ of the pair, widened
    by the periphery's output noise referred to the weights, ``periphery``/α² (weight units²;
    see bayesim.machine.chip.Chip.periphery_referred)."""
    bias = pm.weight - mu
    frozen_var = np.square(pair_sigma(frozen, pm.g_plus, pm.g_minus, pm.alpha, g_max,
                                      pm.n_devices))
    spread = pm.sigma_realised
    if periphery > 0:
        spread = np.sqrt(spread * spread + periphery / np.square(pm.alpha))
    return bias * bias + frozen_var + np.square(spread - sigma)


def _score(policy: str, mu: np.ndarray, sigma: np.ndarray, pm: "PairMap", frozen: object | None,
           g_max: float, periphery: float = 0.0) -> np.ndarray:
    """Per row of ``μ[rows, k]``, higher is better: the fraction of σ within ±10 %
    ('feasibility') or minus the mean expected W₂/σ of its weights ('distance': each weight's
    distance in units of its own σ, so that a deficit costs at most about one σ — the sample is
    then too narrow — while an excess, noise far above a small σ, costs without bound)."""
    if policy == "feasibility":
        ok = np.abs(relative_error(sigma, pm.sigma_realised)) <= SIGMA_TOLERANCE
        return ok.mean(axis=1)
    d2 = expected_distance_sq(mu, sigma, pm, frozen, g_max, periphery)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(sigma > 0, np.sqrt(d2) / sigma, 0.0)
    return -rel.mean(axis=1)


def choose_alpha(mu: np.ndarray, sigma: np.ndarray, law: object | None, g_min: float,
                 g_max: float, *, n: int = 1, levels: int = 0, common_mode: bool = True,
                 policy: str = "distance", frozen: object | None = None,
                 columnwise: bool = False, periphery: float = 0.0) -> float | np.ndarray:
    """The scale α (µS per weight unit) of a matrix (or one per output column of ``μ[out,
    in]``) by ``policy`` (:data:`POLICIES`): 'max' the largest that fits μ; otherwise the best
    score (:func:`_score`) among :data:`ALPHA_CANDIDATES` scales log-spaced over 2.5 decades
    below that limit, scored on a fixed random subset of a layer's weights (all of a column's;
    ``periphery``: the output noise referred to the weights, expected_distance_sq);
    ties go to the largest α, which gives the most signal against periphery noise (ties: within
    1 percentage point of feasibility, or 1 % of the best distance)."""
    if policy not in POLICIES:
        raise MappingError(f"the α policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    limit = _limits(mu, sigma, g_min, g_max, n, columnwise)
    if policy == "max":
        return limit if columnwise else float(limit[0])
    if columnwise:
        rows_mu, rows_sigma = mu.reshape(mu.shape[0], -1), sigma.reshape(mu.shape[0], -1)
    else:
        flat_mu, flat_sigma = mu.reshape(-1), sigma.reshape(-1)
        if flat_mu.size > ALPHA_SUBSAMPLE:
            pick = np.random.default_rng(0).choice(flat_mu.size, ALPHA_SUBSAMPLE, replace=False)
            flat_mu, flat_sigma = flat_mu[pick], flat_sigma[pick]
        rows_mu, rows_sigma = flat_mu[None, :], flat_sigma[None, :]
    steps = np.logspace(-2.5, 0.0, ALPHA_CANDIDATES)
    scores = np.empty((steps.size, rows_mu.shape[0]))
    for k, step in enumerate(steps):
        alpha = np.broadcast_to((limit * step)[:, None], rows_mu.shape)
        pm = _pairs(rows_mu, rows_sigma, alpha, law, g_min, g_max, n, levels, common_mode)
        scores[k] = _score(policy, rows_mu, rows_sigma, pm, frozen, g_max, periphery)
    top = scores.max(axis=0, keepdims=True)
    slack = 0.01 if policy == "feasibility" else 0.01 * np.abs(top)
    good = scores >= top - slack
    best = steps.size - 1 - np.argmax(good[::-1], axis=0)  # the largest good α per row
    chosen = limit * steps[best]
    return chosen if columnwise else float(chosen[0])


def map_pairs(mu: np.ndarray, sigma: np.ndarray, law: object | None, g_min: float,
              g_max: float, *, alpha: float | np.ndarray | None = None, n: int = 1,
              levels: int = 0, common_mode: bool = True, scope: str = "layer",
              policy: str = "distance", frozen: object | None = None,
              periphery: float = 0.0) -> PairMap:
    """Map weights N(μ, σ²) to pairs of conductances (module docstring). ``alpha`` None chooses
    it (:func:`choose_alpha`): one scale for the matrix (``scope`` 'layer') or one per output
    column of ``μ[out, in]`` ('column'), by ``policy``; ``frozen`` is the per-device std law of
    the error the sampler does not redraw (for the 'distance' policy). A given ``alpha`` is a
    number or an array of one scale per output."""
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
    if alpha is None:
        alpha = choose_alpha(mu, sigma, law, g_min, g_max, n=n, levels=levels,
                             common_mode=common_mode, policy=policy, frozen=frozen,
                             columnwise=columnwise, periphery=periphery)
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
    pm = _pairs(mu.reshape(-1), sigma.reshape(-1), np.broadcast_to(alpha, mu.shape).reshape(-1),
                law, g_min, g_max, n, levels, common_mode)
    return PairMap(pm.g_plus.reshape(mu.shape), pm.g_minus.reshape(mu.shape), alpha, n,
                   sigma, pm.sigma_realised.reshape(mu.shape))


def _pairs(mu, sigma, alpha, law, g_min, g_max, n, levels, common_mode) -> PairMap:
    """The PairMap of weights with a scale per weight (any shape, all alike)."""
    shape = np.shape(mu)
    mu, sigma = np.reshape(mu, -1), np.reshape(sigma, -1)
    alpha = np.ascontiguousarray(np.broadcast_to(alpha, shape), dtype=np.float64).reshape(-1)
    d = alpha * mu / (2.0 * n)
    d = np.clip(d, -(g_max - g_min) / 2, (g_max - g_min) / 2)
    if common_mode:
        c = solve_common_mode(law, d, sigma, alpha, g_min, g_max, n)
    else:
        c = g_min + np.abs(d)
    g_plus, g_minus = snap_pairs(c + d, c - d, g_min, g_max, levels)
    realised = pair_sigma(law, g_plus, g_minus, alpha, g_max, n)
    return PairMap(g_plus.reshape(shape), g_minus.reshape(shape), alpha.reshape(shape), n,
                   sigma.reshape(shape), realised.reshape(shape))


def feasible_fraction(target: np.ndarray, realised: np.ndarray,
                      tolerance: float = SIGMA_TOLERANCE) -> float:
    return float(np.mean(np.abs(relative_error(target, realised)) <= tolerance)) \
        if np.size(target) else 1.0


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
