"""Plots (matplotlib, Agg backend): report figures now, design-guideline plots later."""

import matplotlib

matplotlib.use("Agg")
