"""Noise laws of memory devices: σ(G), drift-exponent statistics ν(G), and their time dependence.

Every law is a small immutable object that maps conductances ``g`` (µS, numpy array) to a value
(µS for σ laws, dimensionless for drift exponents), vectorised; kernels receive the resulting arrays
and never evaluate laws themselves. Laws are built from device cards (``device_models/*.toml``) by
``law_from_card``; the families and where their forms come from:

- ``constant`` σ = c; ``proportional`` σ = k·g; ``sqrt`` σ = k·√g; ``inverse`` σ = k / g;
- ``polynomial`` σ = Σ cᵢ xⁱ with x = g / g_max, rescaled by g_max / g_ref (aihwkit's convention
  for its PCM and RRAM fits, ``prog_coeff_g_max_reference`` in aihwkit 1.1.0
  ``src/aihwkit/inference/noise/pcm.py``, ``reram.py``), or with x = g in µS when the fit is in
  absolute conductance (CrossSim's RRAM fits, aihwkit's CMO model);
- ``power`` v = clamp(k·xᵖ, lo, hi) and ``log_linear`` v = clamp(a·ln x + b, lo, hi) (aihwkit's
  PCM drift exponent and Q_s fits) and
  ``log10_linear`` v = a·log10(g) + b (the CMO read-noise amplitude);
- ``piecewise``: sub-laws on intervals of x = g / g_max (the HERMES fits);
- ``one_over_f``: the accumulated 1/f read noise σ(g, t) = A(g)·sqrt(ln((t + t_read)/(2·t_read)))
  with A(g) = g·Q_s(g) (``relative = true``, PCM) or an absolute amplitude law (CMO)
  (Nandakumar et al., ICECS 2019, as implemented by aihwkit 1.1.0 ``PCMLikeNoiseModel``).

Negative values are clamped to 0 (a fitted polynomial can dip below zero outside its data);
card validation refuses a law that is negative anywhere in its calibrated range, so the clamp never
changes a calibrated value.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from bayesim.devices.kernels import uniform_interp
from bayesim.rng import NOISE_SHAPES

SHAPES = tuple(NOISE_SHAPES)
"""The noise shapes a law's draws may take (bayesim.rng.NOISE_SHAPES)."""


def _as_array(g: np.ndarray | float) -> np.ndarray:
    return np.asarray(g, dtype=np.float64)


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        return np.full_like(_as_array(g), self.value)


@dataclass(frozen=True)
class Proportional:
    k: float

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        return np.maximum(self.k * _as_array(g), 0.0)


@dataclass(frozen=True)
class Sqrt:
    k: float

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        return self.k * np.sqrt(np.maximum(_as_array(g), 0.0))


@dataclass(frozen=True)
class Inverse:
    k: float
    g_floor: float = 1e-6
    """µS; keeps σ finite at g = 0 (σ = k / max(g, g_floor))."""

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        return self.k / np.maximum(_as_array(g), self.g_floor)


@dataclass(frozen=True)
class Polynomial:
    coeffs: tuple[float, ...]
    """c₀, c₁, … (µS for σ laws, 1 for dimensionless laws)."""
    normalized: bool = True
    """True: x = g / g_max; False: x = g in µS."""
    g_ref: float | None = None
    """µS, the g_max the fit was made for (required when normalized)."""
    rescale: bool = True
    """A normalized σ law (µS) is scaled by g_max / g_ref, aihwkit's
    ``prog_coeff_g_max_reference`` convention; a dimensionless law (a drift exponent, a relative
    1/f amplitude) is a function of x alone and is not (``rescale = False``)."""

    def unclamped(self, g: np.ndarray, g_max: float) -> np.ndarray:
        """The fitted polynomial itself, negative values included (for card validation)."""
        x = _as_array(g) / g_max if self.normalized else _as_array(g)
        value = np.polynomial.polynomial.polyval(x, np.asarray(self.coeffs, dtype=np.float64))
        if self.normalized and self.rescale:
            return value * (g_max / self.g_ref)
        return value

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        return np.maximum(self.unclamped(g, g_max), 0.0)


@dataclass(frozen=True)
class LogLinear:
    """clamp(a·ln(max(x, x_floor)) + b, lo, hi) with x = g / g_max (aihwkit's PCM fits)."""
    a: float
    b: float
    lo: float = -math.inf
    hi: float = math.inf
    x_floor: float = 1e-7

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        x = np.maximum(np.abs(_as_array(g)) / g_max, self.x_floor)
        return np.clip(self.a * np.log(x) + self.b, self.lo, self.hi)


@dataclass(frozen=True)
class Power:
    """clamp(k·max(x, x_floor)^p, lo, hi) with x = g / g_max (aihwkit's PCM Q_s = min(0.0088 /
    x^0.65, 0.2))."""
    k: float
    p: float
    lo: float = 0.0
    hi: float = math.inf
    x_floor: float = 1e-7

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        x = np.maximum(np.abs(_as_array(g)) / g_max, self.x_floor)
        return np.clip(self.k * x ** self.p, self.lo, self.hi)


@dataclass(frozen=True)
class Log10Linear:
    """a·log10(g) + b with g in µS, clamped at 0 (the CMO read-noise amplitude)."""
    a: float
    b: float = 0.0
    g_floor: float = 1e-6

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        return np.maximum(self.a * np.log10(np.maximum(_as_array(g), self.g_floor)) + self.b, 0.0)


@dataclass(frozen=True)
class Piecewise:
    """Sub-law ``laws[i]`` on x = g / g_max below ``breaks[i]`` (the last one above all breaks)."""
    breaks: tuple[float, ...]
    laws: tuple

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        g = _as_array(g)
        x = np.abs(g) / g_max
        index = np.searchsorted(np.asarray(self.breaks), x, side="right")
        out = np.empty_like(g)
        for i, law in enumerate(self.laws):
            mask = index == i
            if mask.any():
                out[mask] = law(g[mask], g_max)
        return out


def one_over_f_factor(t: float, t_read: float) -> float:
    """sqrt(ln((t + t_read) / (2·t_read))): the integrated 1/f noise of a read at time t (s)."""
    if t_read <= 0:
        raise ValueError(f"t_read must be > 0 s, got {t_read}")
    ratio = (t + t_read) / (2.0 * t_read)
    return math.sqrt(math.log(ratio)) if ratio > 1.0 else 0.0


@dataclass(frozen=True)
class OneOverF:
    """Accumulated 1/f read noise σ(g, t) = A(g)·sqrt(ln((t + t_read)/(2 t_read))), µS."""
    amplitude: object
    """Q_s(g) when ``relative`` (σ = g·Q_s·factor), else an absolute amplitude law in µS."""
    t_read: float
    """s, the read (integration) time."""
    relative: bool = True

    def __call__(self, g: np.ndarray, g_max: float, t: float,
                 g_now: np.ndarray | None = None) -> np.ndarray:
        """σ at time ``t`` (s since programming) of devices programmed to ``g``; ``g_now`` is the
        drifted conductance (defaults to ``g``). As in aihwkit, a relative law takes Q_s at the
        programmed and the magnitude at the drifted conductance; an absolute law uses ``g_now``."""
        g = _as_array(g)
        now = g if g_now is None else _as_array(g_now)
        amp = np.abs(now) * self.amplitude(g, g_max) if self.relative else \
            self.amplitude(now, g_max)
        return amp * one_over_f_factor(t, self.t_read)


@dataclass(frozen=True)
class DriftLaw:
    """Per-device drift exponent ν = |μ_ν(g) + σ_ν(g)·ξ|·scale (aihwkit 1.1.0
    ``PCMLikeNoiseModel``), and the power law G(t) = G_p·(t / t_0)^(−ν) for t > t_0."""
    nu_mean: object
    nu_std: object
    t0: float
    """s, the reference time of the power law."""

    def moments(self, g: np.ndarray, g_max: float) -> tuple[np.ndarray, np.ndarray]:
        return self.nu_mean(g, g_max), self.nu_std(g, g_max)


@dataclass(frozen=True)
class Table:
    """σ(g) measured at conductances ``g`` (µS, increasing), interpolated between them by a
    monotone piecewise cubic (Fritsch–Carlson/PCHIP: no overshoot, so σ stays inside the range
    of neighbouring measurements) and held at the end values outside; the law a fit falls back
    to when no family describes the data (bayesim.devices.fit)."""
    g: tuple[float, ...]
    sigma: tuple[float, ...]

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        from scipy.interpolate import PchipInterpolator

        knots, values = np.asarray(self.g), np.asarray(self.sigma)
        x = np.clip(_as_array(g), knots[0], knots[-1])
        if knots.size == 1:
            return np.full_like(x, values[0])
        return np.maximum(PchipInterpolator(knots, values)(x), 0.0)


@dataclass(frozen=True, eq=False)
class Tabulated:
    """σ(g) given at equally spaced conductances of [g_lo, g_hi] (µS), linearly interpolated
    between them and held at the end values outside: a law evaluated once on a fine grid (the
    machine's laws at the sampling clock, which combine several of the card's)."""
    g_lo: float
    g_hi: float
    values: np.ndarray
    """float64, at least two points."""

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        g = _as_array(g)
        out = np.empty(g.shape)
        if self.g_hi > self.g_lo:
            uniform_interp(np.ascontiguousarray(g.reshape(-1)), self.g_lo,
                           (self.g_hi - self.g_lo) / (self.values.size - 1), self.values,
                           out.reshape(-1))
        else:
            out[...] = self.values[0]
        return out


def tabulate(fn, g_min: float, g_max: float, points: int = 1025) -> Tabulated:
    """:class:`Tabulated` of ``fn(g)`` (a vectorised function of µS) on ``points`` equally spaced
    conductances of [g_min, g_max]; 1,025 points keep the interpolation error of the shipped
    cards' laws below 0.1 % of σ away from the clamp of Q_s at small x."""
    grid = np.linspace(g_min, g_max, points)
    return Tabulated(float(g_min), float(g_max), np.ascontiguousarray(fn(grid), dtype=np.float64))


def folded_exp_moment(a: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """E[exp(−a·|Z|)] for Z ~ N(mean, std²) (elementwise; ``a`` ≥ 0): the drift factor moment
    E[(t/t₀)^(−kν)] of a folded-normal exponent ν = |Z| with a = k·ln(t/t₀), in closed form
    e^{−am + a²s²/2}·Φ(m/s − as) + e^{am + a²s²/2}·Φ(−m/s − as) (the folded normal's moment
    generating function; e^{−a|m|} when s = 0)."""
    a, mean, std = np.broadcast_arrays(np.asarray(a, dtype=np.float64),
                                       np.asarray(mean, dtype=np.float64),
                                       np.asarray(std, dtype=np.float64))
    shape = a.shape
    a, mean, std = (np.atleast_1d(v) for v in (a, mean, std))
    out = np.exp(-a * np.abs(mean))
    spread = std > 0
    if spread.any():
        aa, m, s = a[spread], mean[spread], std[spread]
        half = 0.5 * (aa * s) ** 2  # in logs: e^{…} and Φ(…) under- and overflow apart
        out[spread] = (np.exp(-aa * m + half + _log_normal_cdf(m / s - aa * s))
                       + np.exp(aa * m + half + _log_normal_cdf(-m / s - aa * s)))
    return out.reshape(shape)


def censored_moments(mean: np.ndarray, std: np.ndarray, lo: float, hi: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(E[X], Var[X]) of X = clip(Y, lo, hi), Y ~ N(mean, std²), elementwise (the censored
    normal; a write's clipping to the conductance window): with a = (lo − m)/s, b = (hi − m)/s,
    E[X] = lo·Φ(a) + hi·(1 − Φ(b)) + m·(Φ(b) − Φ(a)) + s·(φ(a) − φ(b)) and
    E[X²] = lo²Φ(a) + hi²(1 − Φ(b)) + (m² + s²)(Φ(b) − Φ(a)) + 2ms(φ(a) − φ(b))
    + s²(aφ(a) − bφ(b))."""
    m, s = np.broadcast_arrays(np.asarray(mean, dtype=np.float64),
                               np.asarray(std, dtype=np.float64))
    first = np.clip(m, lo, hi).astype(np.float64)
    second = first * first
    spread = s > 0
    if spread.any():
        mm, ss = m[spread], s[spread]
        a, b = (lo - mm) / ss, (hi - mm) / ss
        cdf_a, cdf_b = _normal_cdf(a), _normal_cdf(b)
        pdf_a, pdf_b = _normal_pdf(a), _normal_pdf(b)
        inside = cdf_b - cdf_a
        low = np.where(cdf_a > 0, lo * cdf_a, 0.0)  # an infinite bound carries no mass
        high = np.where(cdf_b < 1, hi * (1 - cdf_b), 0.0)
        low2 = np.where(cdf_a > 0, lo * lo * cdf_a, 0.0)
        high2 = np.where(cdf_b < 1, hi * hi * (1 - cdf_b), 0.0)
        first[spread] = low + high + mm * inside + ss * (pdf_a - pdf_b)
        second[spread] = (low2 + high2 + (mm * mm + ss * ss) * inside
                          + 2 * mm * ss * (pdf_a - pdf_b)
                          + ss * ss * (_times(a, pdf_a) - _times(b, pdf_b)))
    return first, np.maximum(second - first * first, 0.0)


def censored_components(mean: np.ndarray, std: np.ndarray, lo: float, hi: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X = clip(Y, lo, hi), Y ~ N(mean, std²), as a mixture of three parts: the mass clipped to
    ``lo``, the mass clipped to ``hi`` and the normal truncated to (lo, hi). Returns (weights,
    means, variances), each of shape (3, *mean.shape), in that order."""
    m, s = np.broadcast_arrays(np.asarray(mean, dtype=np.float64),
                               np.asarray(std, dtype=np.float64))
    safe = np.where(s > 0, s, 1.0)
    a, b = (lo - m) / safe, (hi - m) / safe
    cdf_a = np.where(s > 0, _normal_cdf(a), (m <= lo).astype(np.float64))
    cdf_b = np.where(s > 0, _normal_cdf(b), (m < hi).astype(np.float64))
    pdf_a, pdf_b = _normal_pdf(a), _normal_pdf(b)
    inside = np.maximum(cdf_b - cdf_a, 0.0)
    ok = inside > 1e-300
    shift = np.where(ok, (pdf_a - pdf_b) / np.where(ok, inside, 1.0), 0.0)
    t_mean = np.where(s > 0, m + s * shift, np.clip(m, lo, hi))
    spread = 1.0 + np.where(ok, (_times(a, pdf_a) - _times(b, pdf_b)) /
                            np.where(ok, inside, 1.0), 0.0) - shift * shift
    t_var = np.where(s > 0, s * s * np.maximum(spread, 0.0), 0.0)
    weights = np.stack([cdf_a, 1.0 - cdf_b, inside])
    means = np.stack([np.full(m.shape, lo), np.full(m.shape, hi), t_mean])
    return weights, means, np.stack([np.zeros(m.shape), np.zeros(m.shape), t_var])


def _times(z: np.ndarray, pdf: np.ndarray) -> np.ndarray:
    """z·φ(z), 0 where z is infinite."""
    return np.where(np.isfinite(z), z * pdf, 0.0)


def _normal_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * np.square(z)) / math.sqrt(2.0 * math.pi)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return torch.special.ndtr(torch.from_numpy(np.asarray(z, dtype=np.float64))).numpy()


def _log_normal_cdf(z: np.ndarray) -> np.ndarray:
    return torch.special.log_ndtr(torch.from_numpy(np.asarray(z, dtype=np.float64))).numpy()


@dataclass(frozen=True)
class Relaxation:
    """G-independent relaxation after programming (CMO/HfOx, aihwkit ReRamCMONoiseModel):
    mean shift a_mean·ln t (µS) and extra spread a_std·ln t + b_std (µS), for t > 1 s."""
    a_mean: float
    a_std: float
    b_std: float

    def shift(self, t: float) -> float:
        return self.a_mean * math.log(t) if t > 1.0 else 0.0

    def spread(self, t: float) -> float:
        return max(self.a_std * math.log(t) + self.b_std, 0.0) if t > 1.0 else 0.0


@dataclass(frozen=True)
class TimedPrograms:
    """σ_prog(g) fits measured at fixed times after programming (NeuRRAM, Wan et al. 2022); the
    fit of time ``times[i]`` is ``laws[i]``. Times in s, ascending."""
    times: tuple[float, ...]
    laws: tuple

    def law_at(self, t: float, allow_extrapolation: bool) -> object:
        for time, law in zip(self.times, self.laws, strict=True):
            if math.isclose(t, time, rel_tol=1e-9):
                return law
        if not allow_extrapolation:
            return None
        index = max(0, int(np.searchsorted(np.asarray(self.times), t, side="right")) - 1)
        return self.laws[index]


@dataclass(frozen=True)
class Scaled:
    """``factor`` × another σ law (a sweep's read- or programming-noise scale; 0 switches it
    off)."""
    law: object
    factor: float

    def __call__(self, g: np.ndarray, g_max: float) -> np.ndarray:
        return self.factor * self.law(g, g_max)


def scaled(law: object | None, factor: float) -> object | None:
    """``law`` × ``factor`` (None stays None; a factor of 1 returns ``law`` itself)."""
    if law is None or factor == 1.0:
        return law
    return Scaled(law, float(factor))


def closed_form(law: object | None) -> tuple[str, float] | None:
    """``(family, k)`` of a σ law the mapping can invert in closed form: 'sqrt' (σ = k·√g),
    'proportional' (σ = k·g) or 'constant' (σ = k), with any Scaled factors folded into k;
    None for any other law (or none)."""
    factor = 1.0
    while isinstance(law, Scaled):
        factor *= law.factor
        law = law.law
    if isinstance(law, Sqrt):
        return "sqrt", law.k * factor
    if isinstance(law, Proportional):
        return "proportional", law.k * factor
    if isinstance(law, Constant):
        return "constant", law.value * factor
    return None
