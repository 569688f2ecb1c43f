"""DeviceModel: the physics of one memory-device technology, built from a device card.

Units: conductances in µS, times in s (docs/devices.md, "Units and time"). Time convention
(aihwkit's, so that cross-checks line up; aihwkit 1.1.0 ``src/aihwkit/inference/noise/pcm.py``):
``t`` is the inference time *after* the drift reference t₀; the power law and the 1/f noise are
evaluated at t + t₀, so ``t = 0`` reads the freshly programmed (t₀-old) array and still carries
the accumulated 1/f noise of t₀.

Random draws use the counter-based streams of bayesim.rng (keyed by the seed and the
purpose), so ``program(g, seed)`` and ``read(g, n, seed)`` are pure functions of their arguments.
"""

import math
from dataclasses import dataclass, field

import numpy as np

import bayesim.devices.kernels as kernels
from bayesim.devices.laws import (
    DriftLaw,
    OneOverF,
    Relaxation,
    TimedPrograms,
    censored_components,
    censored_moments,
    folded_exp_moment,
)
from bayesim.errors import DeviceRangeError
from bayesim.rng import NOISE_SHAPES, Stream, stream_key


@dataclass(frozen=True)
class DeviceModel:
    """Conductance range, level grid, noise laws and calibrated range of one device technology."""
    name: str
    g_min: float
    g_max: float
    levels: int
    """Number of programmable levels on [g_min, g_max]; 0 = analog (continuous)."""
    calibrated_g: tuple[float, float]
    calibrated_t: tuple[float, float]
    program_law: object | None = None
    program_shape: str = "gaussian"
    timed_program: TimedPrograms | None = None
    read_law: object | None = None
    """Per-read (per-MVM) noise σ(G), µS: the Bayesian machine's sampler."""
    read_shape: str = "gaussian"
    accumulated: OneOverF | None = None
    drift: DriftLaw | None = None
    relaxation: Relaxation | None = None
    d2d_rel: float = 0.0
    p_stuck_min: float = 0.0
    p_stuck_max: float = 0.0
    allow_extrapolation: bool = False
    card: dict = field(default_factory=dict, compare=False, repr=False)

    # ---- range checks ----
    def check_g(self, g: np.ndarray, what: str = "conductance") -> np.ndarray:
        g = np.asarray(g, dtype=np.float64)
        lo, hi = self.calibrated_g
        if not self.allow_extrapolation and g.size and (g.min() < lo - 1e-9 or g.max() > hi + 1e-9):
            bad = g.min() if g.min() < lo else g.max()
            raise DeviceRangeError(
                f"{self.name}: {what} {bad:.4g} µS lies outside the calibrated range "
                f"[{lo:g}, {hi:g}] µS; map weights into that range or set allow_extrapolation")
        return g

    def check_t(self, t: float) -> float:
        lo, hi = self.calibrated_t
        if not math.isfinite(t) or t < 0:
            raise DeviceRangeError(f"{self.name}: time must be a finite number ≥ 0 s, got {t}")
        if not self.allow_extrapolation and not lo <= t <= hi:
            raise DeviceRangeError(
                f"{self.name}: t = {t:g} s lies outside the calibrated time range [{lo:g}, {hi:g}]"
                f" s; choose a time inside it or set allow_extrapolation")
        return t

    # ---- laws ----
    def sigma_program(self, g: np.ndarray) -> np.ndarray:
        """Programming (write) noise σ at target ``g`` (µS)."""
        g = self.check_g(g, "target conductance")
        law = self.program_law
        if law is None and self.timed_program is not None:
            law = self.timed_program.laws[0]
        return np.zeros_like(g) if law is None else law(g, self.g_max)

    def sigma_relaxed(self, g: np.ndarray, t: float) -> np.ndarray:
        """Spread of programmed conductances ``t`` s after programming, for cards with fits at
        fixed times (NeuRRAM); equals σ_prog elsewhere."""
        g = self.check_g(g)
        if self.timed_program is None:
            return self.sigma_program(g)
        law = self.timed_program.law_at(self.check_t(t), self.allow_extrapolation)
        if law is None:
            raise DeviceRangeError(
                f"{self.name}: the programming spread is measured only at t = "
                f"{', '.join(f'{x:g}' for x in self.timed_program.times)} s; use one of these "
                f"or set allow_extrapolation (then the fit of the latest earlier time is used)")
        return law(g, self.g_max)

    def sigma_read(self, g: np.ndarray, t: float | None = None) -> np.ndarray:
        """Per-read noise σ (µS) of a device at conductance ``g``. The laws depend on time only
        through the conductance: a read at time ``t`` (checked against the calibrated range when
        given) sees the drifted conductance, which the caller passes as ``g``."""
        if t is not None:
            self.check_t(t)
        g = self.check_g(g)
        return np.zeros_like(g) if self.read_law is None else self.read_law(g, self.g_max)

    def sigma_accumulated(self, g: np.ndarray, t: float) -> np.ndarray:
        """Accumulated 1/f read noise σ (µS) at inference time ``t`` (drawn once per t)."""
        self.check_t(t)
        g = self.check_g(g)
        if self.accumulated is None:
            return np.zeros_like(g)
        return self.accumulated(g, self.g_max, t + self.t0)

    @property
    def t0(self) -> float:
        return self.drift.t0 if self.drift is not None else 0.0

    def drift_nu(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of the drift exponent ν at target ``g``; zeros without drift."""
        g = self.check_g(g)
        if self.drift is None:
            return np.zeros_like(g), np.zeros_like(g)
        return self.drift.moments(g, self.g_max)

    # ---- time evolution in closed form (the mapping's targets) ----
    def evolves(self, t: float) -> bool:
        """Whether a programmed state changes between programming and a read at ``t`` s (drift,
        accumulated 1/f noise, relaxation, or a spread measured to grow after the first fit)."""
        return (self.drift is not None or self.accumulated is not None
                or self.relaxation is not None
                or (self.timed_program is not None and t > self.timed_program.times[0]))

    def drift_factor_moments(self, g: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(E[D], E[D²]) of the drift factor D = ((t + t₀)/t₀)^(−ν) of devices programmed to
        ``g``, ν = |N(μ_ν(g), σ_ν(g))| (laws.folded_exp_moment); ones without drift."""
        g = np.asarray(g, dtype=np.float64)
        if self.drift is None:
            return np.ones_like(g), np.ones_like(g)
        log_ratio = math.log((t + self.t0) / self.t0) if self.t0 > 0 else 0.0
        mean, std = self.drift_nu(g)
        return (folded_exp_moment(log_ratio, mean, std),
                folded_exp_moment(2.0 * log_ratio, mean, std))

    def state_variance(self, g: np.ndarray, t: float, evolve: bool = True,
                       compensated: bool = True, d2d: bool = False) -> np.ndarray:
        """Variance (µS²) of the state of a device programmed to target ``g`` and read at ``t``
        s, over independent programmings — the variances of :meth:`program` and :meth:`at_time`,
        which are independent draws:

        - the write: programming noise (with the device-to-device window spread when ``d2d``,
          the programmings being on different devices), clipped to [g_min, g_max] (censored
          normal moments, laws.censored_moments: at g_min half the variance is clipped away);
        - when ``evolve`` (``hardware.drift``): the spread of the drift factor D,
          Var(G_p·D) = E[G_p²]·E[D²] − E[G_p]²·E[D]², the accumulated 1/f noise at t + t₀
          (amplitude at E[G_t²]), the relaxation spread and the growth of a spread fitted at
          fixed times;
        - ``compensated``: divided by E[D]², the frame of global drift compensation (whose gain
          is about 1/E[D]); else the drifted conductance's own.

        - the clipping of :meth:`at_time`, with the relaxation's mean shift: the written state as
          a mixture of its part clipped to g_min, its part clipped to g_max and the rest, each
          part evolved and clipped again as a Gaussian of its moments (exact for the clipped
          parts under a relative 1/f law, which leaves G = 0 at 0)."""
        g = np.asarray(g, dtype=np.float64)
        s = self.sigma_program(g)
        if d2d and self.d2d_rel > 0:
            s = np.sqrt(s * s * (1 + self.d2d_rel ** 2) + self.d2d_variance(g))
        if not (evolve and self.evolves(t)):
            return censored_moments(g, s, self.g_min, self.g_max)[1]
        m1, m2 = self.drift_factor_moments(g, t)
        added = np.zeros_like(g)  # noise at_time adds whatever the state
        if self.relaxation is not None:
            added += self.relaxation.spread(t) ** 2
        if self.timed_program is not None and t > self.timed_program.times[0]:
            first = self.timed_program.times[0]
            added += np.maximum(np.square(self.sigma_relaxed(g, t))
                                - np.square(self.sigma_relaxed(g, first)), 0.0)
        shift = self.relaxation.shift(t) if self.relaxation is not None else 0.0
        # the written state is a mixture (clipped to g_min, clipped to g_max, inside); each part
        # drifts, takes its 1/f noise and is clipped again, as a Gaussian
        weights, means, variances = censored_components(g, s, self.g_min, self.g_max)
        first_moment = np.zeros_like(g)
        second_moment = np.zeros_like(g)
        for w, mean, var in zip(weights, means, variances, strict=True):
            second = (var + mean * mean) * m2  # E[G_t²] before the 1/f noise
            var_t = second - np.square(mean * m1) + added
            if self.accumulated is not None:
                var_t = var_t + np.square(self.accumulated(g, self.g_max, t + self.t0,
                                                           np.sqrt(second)))
            c_mean, c_var = censored_moments(mean * m1 + shift, np.sqrt(np.maximum(var_t, 0.0)),
                                             self.g_min, self.g_max)
            first_moment += w * c_mean
            second_moment += w * (c_var + c_mean * c_mean)
        var = np.maximum(second_moment - first_moment * first_moment, 0.0)
        return var / (m1 * m1) if compensated else var

    def d2d_variance(self, g: np.ndarray) -> np.ndarray:
        """Variance (µS²) of the device-to-device window spread of :meth:`program`,
        G = g_min + (G − g_min)·(1 + d2d_rel·ξ), at the target: d2d_rel²·(g − g_min)²."""
        g = np.asarray(g, dtype=np.float64)
        return (self.d2d_rel * (g - self.g_min)) ** 2

    def read_sigma_at(self, g: np.ndarray, t: float, evolve: bool = True,
                      compensated: bool = True) -> np.ndarray:
        """Per-read σ (µS) of a device programmed to ``g`` and read at ``t`` s, in the frame of
        :meth:`state_variance` (the drifted conductance's σ_read, over the mean drift factor
        when ``compensated``)."""
        g = np.asarray(g, dtype=np.float64)
        if self.read_law is None:
            return np.zeros_like(g)
        if not (evolve and self.drift is not None):
            return self.read_law(g, self.g_max)
        m1, _ = self.drift_factor_moments(g, t)
        sigma = self.read_law(g * m1, self.g_max)
        return sigma / m1 if compensated else sigma

    # ---- sampling ----
    def program(self, g_target: np.ndarray, seed: int, layer: int = 0, tile: int = 0,
                frozen_seed: int | None = None) -> np.ndarray:
        """Programmed conductances (µS, float64, same shape) for targets ``g_target``: the
        programming noise is keyed by ``seed``, the device-to-device spread and the stuck-at
        faults — properties of the devices, not of a write — by ``frozen_seed`` (the chip
        seed; default ``seed``), so re-programming a chip keeps its faulty devices."""
        g = np.asarray(g_target, dtype=np.float64)
        flat = np.ascontiguousarray(g.reshape(-1))
        sigma = self.sigma_program(flat)  # also checks the calibrated range
        out = np.empty_like(flat)
        devices = seed if frozen_seed is None else frozen_seed
        kernels.write_kernel(
            flat, np.ascontiguousarray(sigma), float(self.g_min),
            float(self.g_max), int(self.levels), float(self.d2d_rel), float(self.p_stuck_min),
            float(self.p_stuck_max), NOISE_SHAPES[self.program_shape],
            stream_key(seed, Stream.PROGRAM, layer, tile),
            stream_key(devices, Stream.D2D, layer, tile),
            stream_key(devices, Stream.FAULT, layer, tile), out)
        return out.reshape(g.shape)

    def drift_exponents(self, g_target: np.ndarray, seed: int, layer: int = 0,
                        tile: int = 0) -> np.ndarray:
        """Per-device ν, drawn once at programming (frozen with the chip)."""
        mean, std = self.drift_nu(g_target)
        flat_mean = np.ascontiguousarray(mean.reshape(-1))
        out = np.empty_like(flat_mean)
        kernels.drift_nu_kernel(flat_mean, np.ascontiguousarray(std.reshape(-1)),
                                stream_key(seed, Stream.DRIFT_NU, layer, tile), out)
        return out.reshape(np.shape(g_target))

    def at_time(self, g_prog: np.ndarray, nu: np.ndarray, t: float, seed: int, layer: int = 0,
                tile: int = 0) -> np.ndarray:
        """Conductances at inference time ``t``: drift from programming, relaxation (mean shift
        and spread; for cards with spreads measured at fixed times, the growth of the spread since
        the first of them) and accumulated 1/f noise, clipped to [g_min, g_max]; one draw per
        device for this t (aihwkit's drift-plus-read step)."""
        self.check_t(t)
        g_prog = np.asarray(g_prog, dtype=np.float64)
        flat = np.ascontiguousarray(g_prog.reshape(-1))
        nu_flat = np.ascontiguousarray(np.asarray(nu, dtype=np.float64).reshape(-1))
        t_eff = t + self.t0
        drifted = np.empty_like(flat)
        kernels.drift_kernel(flat, nu_flat, t_eff / self.t0 if self.t0 > 0 else 1.0, drifted)
        sigma = np.zeros_like(flat) if self.accumulated is None else \
            self.accumulated(flat, self.g_max, t_eff, drifted)
        if self.relaxation is not None:  # independent of the 1/f noise: variances add
            drifted += self.relaxation.shift(t)
            sigma = np.hypot(sigma, self.relaxation.spread(t))
        if self.timed_program is not None and t > self.timed_program.times[0]:
            # fits at fixed times after programming (NeuRRAM): the spread grows from the first
            # fit's (what program() drew) to time t's; the growth is an independent draw
            first = self.timed_program.times[0]
            growth = np.square(self.sigma_relaxed(flat, t)) - \
                np.square(self.sigma_relaxed(flat, first))
            sigma = np.hypot(sigma, np.sqrt(np.maximum(growth, 0.0)))
        out = np.empty_like(flat)
        kernels.gaussian_noise_clip_kernel(drifted, np.ascontiguousarray(sigma),
                                           float(self.g_min), float(self.g_max),
                                           stream_key(seed, Stream.ACCUMULATED, layer, tile), out)
        return out.reshape(g_prog.shape)

    def read(self, g: np.ndarray, n_reads: int, seed: int, layer: int = 0, tile: int = 0,
             sample0: int = 0) -> np.ndarray:
        """``n_reads`` independent per-read samples of every device, shape ``(n_reads, *g.shape)``;
        read ``s`` is sample index ``sample0 + s`` of the READ stream."""
        if n_reads < 1:
            raise DeviceRangeError(f"{self.name}: n_reads must be ≥ 1, got {n_reads}")
        g = np.asarray(g, dtype=np.float64)
        flat = np.ascontiguousarray(g.reshape(-1))
        sigma = self.sigma_read(flat)  # also checks the calibrated range
        out = np.empty((n_reads, flat.size), dtype=np.float64)
        kernels.read_devices_kernel(flat, np.ascontiguousarray(sigma),
                                    NOISE_SHAPES[self.read_shape],
                                    stream_key(seed, Stream.READ, layer, tile), int(sample0), out)
        return out.reshape((n_reads, *g.shape))
