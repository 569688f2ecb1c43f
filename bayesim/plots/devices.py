"""The card of one device technology as a picture: σ_prog(G), σ_read(G) and accumulated σ(G, t),
the drift exponent ν(G), and the drift of G over time."""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bayesim.devices.model import DeviceModel
from bayesim.plots.figures import save_figure


def _times(model: DeviceModel) -> list[float]:
    lo, hi = model.calibrated_t
    if hi <= lo:
        return [lo]
    points = [lo, *np.geomspace(max(lo, 1.0), hi, 4)[1:]]
    return sorted(set(points))


def plot_device(model: DeviceModel, path: str | os.PathLike[str]) -> Path:
    """Write the four-panel device figure to ``path`` (PNG)."""
    g = np.linspace(*model.calibrated_g, 200)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    ax = axes[0, 0]
    if model.timed_program is not None:
        for t, law in zip(model.timed_program.times, model.timed_program.laws, strict=True):
            ax.plot(g, law(g, model.g_max), label=f"σ_prog, {t:g} s after programming")
    else:
        ax.plot(g, model.sigma_program(g), label="σ_prog (write)")
    ax.plot(g, model.sigma_read(g), "--", label=f"σ_read per read ({model.read_shape})")
    ax.set(xlabel="conductance G (µS)", ylabel="σ (µS)", title="programming and per-read noise")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    for t in _times(model):
        ax.plot(g, model.sigma_accumulated(g, t), label=f"t = {t:.3g} s")
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
    t = np.geomspace(max(lo, 1e-3), max(hi, 1e-2), 100)
    for frac in (0.25, 0.5, 1.0):
        g0 = model.calibrated_g[0] + frac * (model.calibrated_g[1] - model.calibrated_g[0])
        nu = float(model.drift_nu(np.array([g0]))[0][0])
        ratio = (t + model.t0) / model.t0 if model.t0 > 0 else np.ones_like(t)
        ax.plot(t, g0 * ratio ** (-nu), label=f"G_p = {g0:.3g} µS (mean ν)")
    ax.set(xscale="log", xlabel="inference time t (s)", ylabel="G (µS)", title="drift of G")
    ax.legend(fontsize=8)
    fig.suptitle(f"{model.name}: G in [{model.g_min:g}, {model.g_max:g}] µS")
    fig.tight_layout()
    return save_figure(fig, Path(path))
