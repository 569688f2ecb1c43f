"""A fitted card over the data it came from (`bayesim devices fit --plot`): for each noise law the
measured σ per conductance bin (root-mean-square residual, error bar σ/√(2n)) on the fitted σ(G),
and for drift each device's ν on ν_mean(G) ± ν_std."""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bayesim.devices.drift_fit import drift_slopes, drift_traces
from bayesim.devices.fit import binned_sigma, read_residuals
from bayesim.devices.measurements import Measurements
from bayesim.devices.model import DeviceModel
from bayesim.plots.figures import save_figure


def plot_fit(model: DeviceModel, datasets: dict[str, Measurements],
             out: str | os.PathLike[str]) -> Path:
    """The figure of ``model`` fitted to ``datasets`` (kind → measurements) as PNG and PDF."""
    panels = []
    if "programming" in datasets:
        d = datasets["programming"]
        panels.append(("σ_prog", d.g_target, d.g - d.g_target, None, model.sigma_program))
    if "reads" in datasets:
        d = datasets["reads"]
        means, resid = read_residuals(d)
        panels.append(("σ_read", means[d.device], resid, None, model.sigma_read))
        if d.g_target is not None:
            target = d.g_target[np.r_[0, np.flatnonzero(np.diff(d.device)) + 1]]
            n = d.per_device()
            panels.append(("σ_prog (device means)", target, means - target,
                           model.sigma_read(np.clip(means, *model.calibrated_g)) ** 2 / n,
                           model.sigma_program))
    drift = datasets.get("drift")
    fig, axes = plt.subplots(1, len(panels) + (drift is not None), figsize=(
        4.5 * (len(panels) + (drift is not None)), 3.8), squeeze=False)
    for ax, (label, g, e, extra, law) in zip(axes[0], panels, strict=False):
        centre, sigma, count = binned_sigma(g, e, extra)
        err = sigma / np.sqrt(2 * count)
        ax.errorbar(centre, sigma, yerr=err, fmt="o", ms=4, capsize=2, label="measured (binned)")
        grid = np.linspace(*model.calibrated_g, 200)
        ax.plot(grid, law(grid), label="card's law")
        if law == model.sigma_program:  # what the chip draws: the law clipped to the window
            clipped = np.sqrt(model.state_variance(grid, 0.0, evolve=False))
            if np.max(np.abs(clipped - law(grid))) > 0.01 * np.max(law(grid)):
                ax.plot(grid, clipped, "--", label="clipped to the window")
        ax.set_xlabel("G (µS)")
        ax.set_ylabel(f"{label} (µS)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if drift is not None:
        ax = axes[0][-1]
        slopes = drift_slopes(drift, drift_traces(drift)[0])
        ax.scatter(slopes.g, slopes.nu, s=4, alpha=0.4, label="devices")
        grid = np.linspace(*model.calibrated_g, 200)
        mean, std = model.drift_nu(grid)
        ax.plot(grid, mean, color="black", label="card's ν_mean ± ν_std")
        ax.fill_between(grid, mean - std, mean + std, color="black", alpha=0.15)
        ax.set_xlabel("G at programming (µS)")
        ax.set_ylabel("drift exponent ν (1)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{model.name}: the card's laws over the measurements", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, Path(out))
