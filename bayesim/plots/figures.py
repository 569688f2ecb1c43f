"""Saving figures: PNG and PDF written atomically (no half-written file on failure), figure
closed."""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bayesim.atomic import write_with


def save_figure(fig: Figure, path: Path, dpi: int = 130) -> Path:
    """Write ``fig`` to ``path`` (PNG, ``dpi``) and beside it to the same name with ``.pdf``
    (vector, for a paper); returns the PNG's path."""
    path = Path(path).with_suffix(".png")
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    write_with(path.with_suffix(".pdf"),
               lambda tmp: fig.savefig(tmp, format="pdf", bbox_inches="tight"))
    plt.close(fig)
    return path
