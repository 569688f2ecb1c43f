"""The codebook of a shared-Gaussian model (bayesim.sharing) as a picture: its 2D Gaussians'
95 % ellipses and the outliers in the (μ, σ) plane, and how many weights each Gaussian serves."""

import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from bayesim.plots.figures import save_figure
from bayesim.sharing.gaussians import CHI2_2DOF_95
from bayesim.sharing.model import SharedNet

CODEBOOK_NAME = "codebook.png"


def plot_codebook(net: SharedNet, path: str | os.PathLike[str]) -> Path:
    """Left: every Gaussian's 95 % ellipse (χ²₂ = 5.991) over (μ, σ) and the outliers' (m, s);
    right: members per Gaussian, largest first (log scale)."""
    book = net.codebook()
    centers = book.centers.double().numpy()
    chol = book.chol.double().numpy()
    angle = np.linspace(0.0, 2 * math.pi, 60)
    circle = math.sqrt(CHI2_2DOF_95) * np.stack([np.cos(angle), np.sin(angle)])
    fig, (ax, ax_n) = plt.subplots(1, 2, figsize=(11, 4.2),
                                   gridspec_kw={"width_ratios": [3, 2]})
    for c, factor in zip(centers, chol, strict=True):
        ring = c[:, None] + factor @ circle
        ax.plot(ring[0], ring[1], color="tab:blue", lw=0.6, alpha=0.7)
    ax.plot(centers[:, 0], centers[:, 1], ".", color="tab:blue", ms=3,
            label=f"{len(centers)} shared Gaussians (95 % ellipses)")
    ax.plot(book.outlier_loc.numpy(), book.outlier_sigma.numpy(), ".", color="tab:red", ms=2,
            alpha=0.5, label=f"{book.outlier_index.numel()} outliers (m, s)")
    counts = book.counts()
    ax.set_title(f"codebook of {counts['weights']:,} weights: {counts['inliers']:,} inliers, "
                 f"{counts['ellipse_points']:,} ellipse points", fontsize=10)
    ax.set_xlabel("μ (weight units)")
    ax.set_ylabel("σ (weight units)")
    ax.legend(fontsize=8, loc="upper right")
    sizes = torch.bincount(book.labels[book.labels >= 0].long(),
                           minlength=book.n_gaussians).numpy()
    ax_n.semilogy(np.arange(1, sizes.size + 1), np.sort(sizes)[::-1], color="tab:blue")
    ax_n.set_xlabel("Gaussian (largest first)")
    ax_n.set_ylabel("inlier weights it serves")
    ax_n.set_title(f"one draw per Gaussian serves {sizes.mean():.0f} weights on average",
                   fontsize=10)
    ax_n.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, Path(path))
