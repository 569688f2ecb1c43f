"""Sweeps: general specs run point by point with cached models (spec.py, runner.py, store.py)
and the reproduction grid of the quantization paper (qbnn.py)."""
