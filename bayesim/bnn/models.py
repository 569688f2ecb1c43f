"""Bayesian models: an MLP of configurable widths and activation, LeNet-5 and a residual network
with BatchNorm, each registered by name in :data:`ARCHITECTURES` (adding one is one class and one
:func:`register_architecture`)."""

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field, field_validator
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

    arch: str = "lenet5"
    """A name in ARCHITECTURES: ``lenet5``, ``mlp``, ``resnet``."""
    hidden: list[int] = Field(default_factory=lambda: [512, 512])
    """MLP hidden widths (ignored by the others)."""
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64], min_length=1)
    """ResNet: channels of its stages (the first stage keeps the resolution, each further one
    halves it); He et al. 2016's CIFAR ResNets use 16, 32, 64."""
    blocks: int = Field(default=1, ge=1)
    """ResNet: basic blocks per stage (1: ResNet-8, 3: ResNet-20 — 6·blocks + 2 layers)."""
    activation: Literal["relu", "relu6", "hardtanh", "tanh", "gelu", "pact"] = "relu"
    prior_std: float = Field(default=1.0, gt=0)
    """Std of the N(prior_mean, prior_std²) prior on every weight and bias; 1.0 is the common
    default of bayesian-torch 0.5.0 (``prior_variance=1``), TyXe (``IIDPrior(Normal(0, 1))``) and
    uncertainty-baselines (``baselines/mnist/variational_inference.py``)."""
    prior_mean: float = 0.0
    rho_init: float = DEFAULT_RHO_INIT
    """Initial ρ of every parameter; σ = softplus(ρ)."""
    estimator: Literal["reparam", "local"] = "reparam"
    """Gradient estimator in training: one weight sample per batch, or local reparameterisation."""

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {value!r}; choose one of "
                             f"{', '.join(sorted(ARCHITECTURES))}")
        return value

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


class BasicBlock(nn.Module):
    """A residual block: conv 3×3 → BN → act → conv 3×3 → BN, plus the shortcut (identity, or a
    1×1 convolution and BN where the stride or the width changes), then act (He et al. 2016).
    Convolutions are Bayesian and bias-free (BN's shift is the bias); BN stays deterministic."""

    def __init__(self, c_in: int, c_out: int, stride: int, config: "ModelConfig") -> None:
        super().__init__()
        kw = config.layer_kwargs()
        act = ACTIVATIONS[config.activation]
        self.conv1 = BayesConv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False, **kw)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = act()
        self.conv2 = BayesConv2d(c_out, c_out, 3, padding=1, bias=False, **kw)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                BayesConv2d(c_in, c_out, 1, stride=stride, bias=False, **kw),
                nn.BatchNorm2d(c_out))
        self.act2 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-style residual BNN for 28×28 inputs (He et al. 2016, §4.2): conv 3×3 → BN → act,
    then ``len(channels)`` stages of ``blocks`` basic blocks (stride 2 from the second stage on:
    28 → 14 → 7), global average pooling and a Bayesian linear classifier. ``channels`` 16, 32,
    64 with 1 block per stage is ResNet-8 (77,072 weights), with 3 ResNet-20 (270,608)."""

    def __init__(self, config: "ModelConfig", n_classes: int = N_CLASSES) -> None:
        super().__init__()
        kw = config.layer_kwargs()
        c0 = config.channels[0]
        self.stem = BayesConv2d(INPUT_SHAPE[0], c0, 3, padding=1, bias=False, **kw)
        self.bn = nn.BatchNorm2d(c0)
        self.act = ACTIVATIONS[config.activation]()
        blocks: list[nn.Module] = []
        c_in = c0
        for stage, c_out in enumerate(config.channels):
            for b in range(config.blocks):
                blocks.append(BasicBlock(c_in, c_out, 2 if stage > 0 and b == 0 else 1, config))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = BayesLinear(c_in, n_classes, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.act(self.bn(self.stem(x))))
        return self.fc(torch.flatten(self.pool(h), 1))


ARCHITECTURES: dict[str, Callable[["ModelConfig"], nn.Module]] = {}
"""Architecture name → builder taking the ModelConfig (the ``model.arch`` of a config)."""


def register_architecture(name: str, builder: Callable[["ModelConfig"], nn.Module]) -> None:
    """Make ``builder`` available as ``model.arch = name`` (checkpoints store the name)."""
    ARCHITECTURES[name] = builder


register_architecture("mlp", MLP)
register_architecture("lenet5", LeNet5)
register_architecture("resnet", ResNet)


def build_model(config: ModelConfig, seed: int) -> nn.Module:
    """Build the model of ``config`` with μ initialised from ``seed`` and a per-model generator."""
    init = torch.Generator()
    init.manual_seed(int(seed))
    model = ARCHITECTURES[config.arch](config)
    for layer in bayesian_layers(model):
        layer.reset_parameters(init)
    attach_generator(model, seed)
    return model


def count_weights(model: nn.Module) -> int:
    """Number of Bayesian weights and biases (each has one μ and one ρ)."""
    return sum(p.numel() for name, p in model.named_parameters() if name.endswith("_mu"))
