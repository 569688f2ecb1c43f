"""Mean-field Bayesian neural networks: layers, models, SVI training, checkpoints."""

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
