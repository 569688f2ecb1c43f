"""Quantization strategies applied to every Bayesian layer (Borras et al., arXiv 2512.10602).

| strategy | distribution used | forward weight |
|---|---|---|
| ``fp`` | N(μ, σ²) | w = μ + σ·ε |
| ``VPQ`` | N(Q_u(μ), Q_log(σ)²) | w = μ_q + σ_q·ε, full precision |
| ``SPQ`` | N(μ, σ²) | w_q = Q_u(μ + σ·ε) |
| ``JQ`` | N(Q_u(μ), Q_log(σ)²) | w_q = Q_u(μ_q + σ_q·ε) |

The quantizers act through the layers' :class:`~bayesim.bnn.layers.ParameterTransform` hook, so
the KL term of the ELBO sees the *quantized* distribution (the honest objective for VPQ/JQ in
quantization-aware training), and "mean" mode runs the quantized mean network.

Choices the paper leaves open (Borras et al., arXiv 2512.10602), with our defaults:

* biases stay fp32 (``quantize_bias = false``), as bayesian-torch's INT8 PTQ does;
* μ and sampled weights use per-tensor scales (``per_channel = true`` for per-output-channel);
* the sample quantizer of SPQ/JQ has a **static** range per tensor, ``max(|μ| + k·σ)`` with
  ``k = sample_range_sigmas = 3``, so all samples share one grid (a hardware ADC/DAC would too) and
  only the rare draws beyond 3σ of the widest weight clip;
* σ uses the logarithmic quantizer with the quantile range policy of quantizers.py; the uniform σ
  quantizer is the ablation.
"""

import copy
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from bayesim.bnn.layers import BayesianLayer, bayesian_layers
from bayesim.errors import CheckpointError, ConfigError
from bayesim.quant.activations import attach_activation_quantizer
from bayesim.quant.memory import memory_report
from bayesim.quant.quantizers import (
    DEFAULT_MIN_QUANTILE,
    MAX_BITS,
    MIN_BITS,
    quantize_log,
    quantize_uniform,
    quantize_uniform_unsigned,
    uniform_levels,
)
from bayesim.schema import StrictModel

Bits = Field(default=None, ge=MIN_BITS, le=MAX_BITS)


class QuantConfig(StrictModel):
    """How to quantize a mean-field BNN."""

    strategy: Literal["fp", "VPQ", "SPQ", "JQ"] = "JQ"
    bits: int = Field(default=4, ge=MIN_BITS, le=MAX_BITS)
    """Bit width of μ, σ and the sampled weight unless set separately (4: the paper's setting)."""
    mu_bits: int | None = Bits
    sigma_bits: int | None = Bits
    w_bits: int | None = Bits
    sigma_quantizer: Literal["log", "uniform"] = "log"
    per_channel: bool = False
    quantize_bias: bool = False
    sigma_min_quantile: float = Field(default=DEFAULT_MIN_QUANTILE, ge=0.0, lt=1.0)
    sample_range_sigmas: float = Field(default=3.0, gt=0.0)
    activation_bits: int | None = Field(default=None, ge=MIN_BITS, le=MAX_BITS)
    """Quantize activation outputs to this many bits (bounded activations only); None: fp32."""
    qat_epochs: int = Field(default=0, ge=0)
    """Epochs of quantization-aware fine-tuning after PTQ (0: post-training quantization only)."""
    qat_lr: float = Field(default=3e-4, gt=0.0)
    """Adam learning rate of QAT (a third of the fp32 training rate: fine-tuning)."""

    @property
    def resolved_bits(self) -> tuple[int, int, int]:
        """(μ bits, σ bits, sampled-weight bits)."""
        return (self.mu_bits or self.bits, self.sigma_bits or self.bits, self.w_bits or self.bits)

    @property
    def label(self) -> str:
        mu, sigma, w = self.resolved_bits
        if self.strategy == "fp":
            return "fp32"
        widths = f"{mu}" if mu == sigma == w else f"{mu}-{sigma}-{w}"
        label = f"{self.strategy}-{widths}"
        if self.sigma_quantizer == "uniform":
            label += "-uniform-sigma"
        if self.activation_bits is not None:
            label += f"-a{self.activation_bits}"
        return label


class Quantizer:
    """The :class:`ParameterTransform` that realises a :class:`QuantConfig`."""

    def __init__(self, config: QuantConfig) -> None:
        self.config = config
        self.mu_bits, self.sigma_bits, self.w_bits = config.resolved_bits
        self.quantizes_distribution = config.strategy in ("VPQ", "JQ")
        self.quantizes_sample = config.strategy in ("SPQ", "JQ")

    def _applies(self, role: str) -> bool:
        return role == "weight" or self.config.quantize_bias

    def variational(self, mu: torch.Tensor, sigma: torch.Tensor, role: str
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not (self.quantizes_distribution and self._applies(role)):
            return mu, sigma
        mu_q = quantize_uniform(mu, self.mu_bits, per_channel=self.config.per_channel)
        if self.config.sigma_quantizer == "log":
            sigma_q = quantize_log(sigma, self.sigma_bits,
                                   min_quantile=self.config.sigma_min_quantile)
        else:
            sigma_q = quantize_uniform_unsigned(sigma, self.sigma_bits)
        return mu_q, sigma_q

    def sample(self, w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, role: str
               ) -> torch.Tensor:
        if not (self.quantizes_sample and self._applies(role)):
            return w
        levels = uniform_levels(self.w_bits)
        if levels == 0:  # 1 bit: the binary quantizer with its own scale, mean |w|
            return quantize_uniform(w, 1, per_channel=self.config.per_channel)
        reach = mu.detach().abs() + self.config.sample_range_sigmas * sigma.detach()
        dims = tuple(range(1, reach.ndim)) if self.config.per_channel and reach.ndim > 1 else None
        top = reach.amax(dim=dims, keepdim=True) if dims else reach.max()
        scale = torch.where(top > 0, top / levels, torch.ones_like(top))
        return quantize_uniform(w, self.w_bits, scale=scale)


def check_positive_sigma(model: nn.Module, source: str = "the model") -> None:
    """Raise CheckpointError if any σ = softplus(ρ) is not positive (ρ so negative that σ
    underflows to 0 in float32, or NaN)."""
    for index, layer in enumerate(bayesian_layers(model)):
        for role, sigma in (("weight", layer.weight_sigma), ("bias", layer.bias_sigma)):
            if sigma is not None and not bool((sigma > 0).all()):
                raise CheckpointError(
                    f"{source}: layer {index} ({type(layer).__name__}) has {role} σ ≤ 0 or NaN "
                    f"(ρ too negative); it cannot be quantized — retrain or clamp ρ ≥ −80")


def quantize_model(model: nn.Module, config: QuantConfig, source: str = "the model") -> nn.Module:
    """A copy of ``model`` whose Bayesian layers use the quantizers of ``config`` (PTQ)."""
    check_positive_sigma(model, source)
    quantized = copy.deepcopy(model)
    layers = bayesian_layers(quantized)
    transform = Quantizer(config) if config.strategy != "fp" else None
    for layer in layers:
        if transform is not None and transform.quantizes_sample and layer.estimator == "local":
            raise ConfigError(f"strategy {config.strategy} quantizes sampled weights, which local "
                              f"reparameterisation never forms; set model.estimator='reparam'")
        layer.transform = transform
    generator = layers[0].generator if layers else None
    for layer in layers:  # deepcopy gave each layer its own generator copy: share one again
        layer.generator = generator
    if config.activation_bits is not None:
        attach_activation_quantizer(quantized, config.activation_bits)
    return quantized


def quantization_of(model: nn.Module) -> QuantConfig | None:
    """The QuantConfig attached to ``model``'s layers, if any."""
    for layer in bayesian_layers(model):
        if isinstance(layer.transform, Quantizer):
            return layer.transform.config
    return None


def model_memory(model: nn.Module, config: QuantConfig | None) -> dict:
    """The report's ``memory`` section for ``model`` under ``config`` (fp32 if None).

    ``bits_per_weight`` and ``compression_vs_fp32`` count the weights, as the paper's table does
    (Borras et al., arXiv 2512.10602); the ``*_with_biases`` fields add the biases (fp32 unless
    ``quantize_bias``)."""
    layers: list[BayesianLayer] = bayesian_layers(model)
    n_weights = sum(layer.weight_mu.numel() for layer in layers)
    n_biases = sum(layer.bias_mu.numel() for layer in layers if layer.bias_mu is not None)
    config = config or QuantConfig(strategy="fp")
    mu, sigma, w = config.resolved_bits
    report = memory_report(config.strategy, mu, sigma, w, n_weights, len(layers))
    bias_bits = report["bits_per_weight"] if config.quantize_bias else 64.0
    total = report["bits_per_weight"] * n_weights + bias_bits * n_biases
    report["n_biases"] = n_biases
    report["trainable_parameters"] = 2 * (n_weights + n_biases)
    report["bits_per_parameter_with_biases"] = total / (n_weights + n_biases)
    report["compression_vs_fp32_with_biases"] = 64 * (n_weights + n_biases) / total
    report["total_bytes"] = (total + report["overhead_bits"]) / 8
    return report
