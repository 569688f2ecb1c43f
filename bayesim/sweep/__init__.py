"""Sweeps: for now the reproduction grid of the quantization paper (qbnn.py)."""
