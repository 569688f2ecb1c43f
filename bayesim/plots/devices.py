"""The card of one device technology as a picture: σ_prog(G), σ_read(G) and accumulated σ(G, t)
on one σ axis, the drift exponent ν(G), and the drift of G over time on a log time axis labelled
in human units with t₀ marked."""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, NullFormatter

from bayesim.devices.model import DeviceModel
from bayesim.plots.figures import save_figure
from bayesim.units import human_time

TIME_TICKS = (1e-3, 1.0, 60.0, 3600.0, 86400.0, 365.25 * 86400 / 12, 365.25 * 86400,
              10 * 365.25 * 86400)
"""Tick positions of a log time axis, s: 1 ms, 1 s, 1 min, 1 h, 1 day, 1 month, 1 year, 10
years (at least a factor 12 apart, so their labels do not collide)."""


def _times(model: DeviceModel) -> list[float]:
    """Inference times of the accumulated-noise panel, s: t₀ (the card's first calibrated time)
    and the round times 1 h, 1 day, 1 month, 1 year inside the calibrated range."""
    lo, hi = model.calibrated_t
    if hi <= lo:
        return [lo]
    rounds = [t for t in (3600.0, 86400.0, 365.25 * 86400 / 12, 365.25 * 86400) if lo < t <= hi]
    return [lo, *rounds] if rounds else [lo, hi]


def _time_axis(ax: plt.Axes, lo: float, hi: float) -> None:
    """Log x axis from ``lo`` to ``hi`` s with ticks at :data:`TIME_TICKS` in human units."""
    ticks = [t for t in TIME_TICKS if lo <= t <= hi] or [lo, hi]
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticks(ticks, [human_time(t) for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_device(model: DeviceModel, path: str | os.PathLike[str]) -> Path:
    """Write the four-panel device figure to ``path`` (PNG, and PDF beside it)."""
    g = np.linspace(*model.calibrated_g, 200)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    axes[0, 0].sharey(axes[0, 1])  # σ against σ: one scale
    ax = axes[0, 0]
    if model.timed_program is not None:
        for t, law in zip(model.timed_program.times, model.timed_program.laws, strict=True):
            ax.plot(g, law(g, model.g_max), label=f"σ_prog, {human_time(t)} after programming")
    else:
        ax.plot(g, model.sigma_program(g), label="σ_prog (write)")
    ax.plot(g, model.sigma_read(g), "--", label=f"σ_read per read ({model.read_shape})")
    ax.set(xlabel="conductance G (µS)", ylabel="σ (µS)", title="programming and per-read noise")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    for t in _times(model):
        when = (f"t = {human_time(t)}" if model.t0 <= 0 else
                f"at t₀ = {human_time(model.t0)}" if t == 0 else f"t₀ + {human_time(t)}")
        ax.plot(g, model.sigma_accumulated(g, t), label=when)
    ax.set(xlabel="conductance G (µS)", ylabel="σ (µS)",
           title="accumulated 1/f read noise at inference time t")
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    mean, std = model.drift_nu(g)
    ax.plot(g, mean, label="mean ν")
    ax.fill_between(g, mean - std, mean + std, alpha=0.3, label="± std ν")
    ax.set(xlabel="target conductance G (µS)", ylabel="drift exponent ν",
           title="drift exponent (drawn once per device)")
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    lo, hi = model.calibrated_t
    # time since programming, t₀ + t: the drift law G = G_p ((t + t₀)/t₀)^(−ν) starts at t₀
    since = np.geomspace(max(model.t0 + lo, 1e-3), max(model.t0 + hi, 1e-2), 100)
    for frac in (0.25, 0.5, 1.0):
        g0 = model.calibrated_g[0] + frac * (model.calibrated_g[1] - model.calibrated_g[0])
        nu = float(model.drift_nu(np.array([g0]))[0][0])
        ratio = since / model.t0 if model.t0 > 0 else np.ones_like(since)
        ax.plot(since, g0 * ratio ** (-nu), label=f"G_p = {g0:.3g} µS (mean ν)")
    if model.t0 > 0:
        ax.axvline(model.t0, color="grey", ls=":", lw=1.2,
                   label=f"t₀ = {human_time(model.t0)}: G = G_p (drift reference)")
    _time_axis(ax, float(since[0]), float(since[-1]))
    ax.set(xlabel="time since programming, t₀ + t", ylabel="G (µS)", title="drift of G")
    ax.legend(fontsize=8)
    span = (f"t = {human_time(lo)} – {human_time(hi)}" + (" after t₀" if model.t0 > 0 else ""))
    fig.suptitle(f"{model.name}: G in [{model.g_min:g}, {model.g_max:g}] µS, calibrated for "
                 f"inference at {span}")
    fig.tight_layout()
    return save_figure(fig, Path(path))
