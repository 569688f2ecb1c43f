"""Sweeps (docs/sweeps.md).

- ``spec``: a sweep spec — a base config, ``[[grid]]`` tables or random draws over any dotted
  config path, seeds, the run (fp32, digital, analog, shared) and software references;
- ``runner``: points run locally or on Dask, models trained once and cached, every point's
  metrics from the report it writes;
- ``store``: the resumable SQLite store of points, exported as results.csv / Parquet;
- ``results``: a finished sweep directory as the plots and tables read it (SweepResults).

The quantization paper's reproduction grid (experiments/seed_qbnn.toml: strategy × bits × QAT
epochs, and its ablations) is such a spec too, run with ``run = "digital"``.

A new swept parameter needs no code: any key of the experiment config is a dotted path of a
``[[grid]]`` table. A new metric is a key of the report that ``runner`` copies into the row.
"""
