"""Saving figures: PNG written atomically (no half-written file on failure), figure closed."""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bayesim.atomic import write_with


def save_figure(fig: Figure, path: Path, dpi: int = 130) -> Path:
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    return path
