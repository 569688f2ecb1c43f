"""Figures (matplotlib, Agg backend), each written as PNG and PDF by ``figures.save_figure``.

- ``report``: one run — reliability diagram, EE/MI histograms, realised vs target σ, cost;
- ``compare``: several runs overlaid (`bayesim compare`);
- ``sweep``: the design-guideline plots of a sweep (heatmap, lines and the presets ``bits``,
  ``drift``, ``samples``, ``feasibility``, ``pareto``, ``energy``);
- ``devices``: a device card (`bayesim devices plot`); ``device_fit``: a fitted card over its
  measurements (`bayesim devices fit --plot`);
- ``sharing``: a shared-Gaussian codebook.

A new sweep plot kind: a preset in ``sweep.PRESETS`` (its x axis and grouping) when a line plot
will do, otherwise a function beside ``heatmap`` dispatched in ``sweep.plot``.
"""

import matplotlib

matplotlib.use("Agg")
