"""Mean-field Bayesian neural networks (docs/bnn.md): layers (``BayesLinear``, ``BayesConv2d``,
σ = softplus ρ), models (MLP, LeNet-5, a residual net), SVI training, signed checkpoints.

A new architecture: a module built from these layers and a builder taking the ModelConfig,
registered with ``models.register_architecture(name, builder)``; ``model.arch = name`` then
trains, saves and loads it, and the machine compiles it (its own forward runs digitally).
"""

from bayesim.bnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from bayesim.bnn.layers import (
    BayesConv2d,
    BayesianLayer,
    BayesLinear,
    attach_generator,
    bayesian_layers,
    kl_divergence,
    sampling,
)
from bayesim.bnn.models import MLP, LeNet5, ModelConfig, build_model
from bayesim.bnn.train import TrainConfig, elbo_loss, fit

__all__ = [
    "MLP", "BayesConv2d", "BayesLinear", "BayesianLayer", "Checkpoint", "LeNet5", "ModelConfig",
    "TrainConfig", "attach_generator", "bayesian_layers", "build_model", "elbo_loss", "fit",
    "kl_divergence", "load_checkpoint", "sampling", "save_checkpoint",
]
