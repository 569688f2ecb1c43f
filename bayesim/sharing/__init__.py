"""Stochastic weight sharing: a codebook of 2D Gaussians over (μ, σ), merged by Wasserstein
distance, with alpha blending (Lin et al., AISTATS 2025, arXiv 2505.17856)."""

from bayesim.sharing.codebook import Codebook, SharingConfig, build_codebook, merge_gaussians
from bayesim.sharing.model import SharedNet
from bayesim.sharing.predictor import SharedPredictor, quantize_shared
from bayesim.sharing.storage import load_shared, save_shared, storage_report

__all__ = ["Codebook", "SharedNet", "SharedPredictor", "SharingConfig", "build_codebook",
           "load_shared", "merge_gaussians", "quantize_shared", "save_shared", "storage_report"]
