"""Bayesian models: an MLP of configurable widths and activation, and LeNet-5."""

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from bayesim.bnn.layers import (
    DEFAULT_RHO_INIT,
    BayesConv2d,
    BayesLinear,
    attach_generator,
    bayesian_layers,
)
from bayesim.schema import StrictModel

PACT_ALPHA_INIT = 6.0
"""Initial clip of PACT: ReLU6's bound."""


class PACT(nn.Module):
    """ReLU with a learned clip, ``y = clamp(x, 0, α)`` (Choi et al. 2018, "PACT"); one trainable
    scalar α per layer, initialised to 6; ∂y/∂α = 1 where x > α."""

    def __init__(self, alpha: float = PACT_ALPHA_INIT) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.relu(x), self.alpha)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardtanh": nn.Hardtanh,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "pact": PACT,
}
INPUT_SHAPE = (1, 28, 28)
N_CLASSES = 10


class ModelConfig(StrictModel):
    """Architecture and prior of a mean-field BNN."""

    arch: Literal["lenet5", "mlp"] = "lenet5"
    hidden: list[int] = Field(default_factory=lambda: [512, 512])
    """MLP hidden widths (ignored by LeNet-5)."""
    activation: Literal["relu", "relu6", "hardtanh", "tanh", "gelu", "pact"] = "relu"
    prior_std: float = Field(default=1.0, gt=0)
    """Std of the N(prior_mean, prior_std²) prior on every weight and bias; 1.0 is the common
    default of bayesian-torch, TyXe and uncertainty-baselines (reference/bnn_software.md)."""
    prior_mean: float = 0.0
    rho_init: float = DEFAULT_RHO_INIT
    """Initial ρ of every parameter; σ = softplus(ρ)."""
    estimator: Literal["reparam", "local"] = "reparam"
    """Gradient estimator in training: one weight sample per batch, or local reparameterisation."""

    def layer_kwargs(self) -> dict:
        return {"prior_std": self.prior_std, "prior_mean": self.prior_mean,
                "rho_init": self.rho_init, "estimator": self.estimator}


class MLP(nn.Sequential):
    """Flatten → [BayesLinear → activation] × len(hidden) → BayesLinear(classes)."""

    def __init__(self, config: ModelConfig, in_features: int = 784, n_classes: int = N_CLASSES):
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in config.hidden:
            layers += [BayesLinear(width, h, **config.layer_kwargs()),
                       ACTIVATIONS[config.activation]()]
            width = h
        layers.append(BayesLinear(width, n_classes, **config.layer_kwargs()))
        super().__init__(*layers)


class LeNet5(nn.Sequential):
    """LeNet-5 for 28×28 inputs (LeCun et al. 1998, with zero padding 2 on the first convolution):
    conv 6@5×5 → pool → conv 16@5×5 → pool → 120 → 84 → classes; max pooling 2×2."""

    def __init__(self, config: ModelConfig, n_classes: int = N_CLASSES):
        kw = config.layer_kwargs()
        act = ACTIVATIONS[config.activation]
        super().__init__(
            BayesConv2d(1, 6, 5, padding=2, **kw), act(), nn.MaxPool2d(2),
            BayesConv2d(6, 16, 5, **kw), act(), nn.MaxPool2d(2),
            nn.Flatten(),
            BayesLinear(16 * 5 * 5, 120, **kw), act(),
            BayesLinear(120, 84, **kw), act(),
            BayesLinear(84, n_classes, **kw),
        )


def build_model(config: ModelConfig, seed: int) -> nn.Module:
    """Build the model of ``config`` with μ initialised from ``seed`` and a per-model generator."""
    init = torch.Generator()
    init.manual_seed(int(seed))
    model = LeNet5(config) if config.arch == "lenet5" else MLP(config)
    for layer in bayesian_layers(model):
        layer.reset_parameters(init)
    attach_generator(model, seed)
    return model


def count_weights(model: nn.Module) -> int:
    """Number of Bayesian weights and biases (each has one μ and one ρ)."""
    return sum(p.numel() for name, p in model.named_parameters() if name.endswith("_mu"))
