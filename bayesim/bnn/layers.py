"""Mean-field Gaussian layers: ``BayesLinear`` and ``BayesConv2d``.

Every weight and bias has a posterior ``N(μ, σ²)`` with ``σ = softplus(ρ)`` and a Gaussian prior
``N(prior_mean, prior_std²)`` (a *standard deviation*, not a variance; stored in the state dict so a
checkpoint restores it). The KL divergence is the closed form summed over all parameters.

Sampling modes (set with :func:`sampling`):

* ``"sample"`` — a fresh ε on every forward. With ``estimator="reparam"`` one weight sample is
  shared by the whole batch (``w = μ + σ·ε``); with ``estimator="local"`` (local reparameterisation,
  Kingma et al. 2015) the pre-activations are sampled per example from
  ``N(x·μ, x²·σ²)``, which lowers gradient variance in training.
* ``"mean"`` — the posterior means, deterministic.
* ``"fixed"`` — one ε drawn when the mode is entered and reused until it is redrawn: one network
  sample applied to any number of batches. Monte-Carlo evaluation uses this so that the weights of
  sample ``s`` do not depend on how the inputs are batched.

All draws come from one ``torch.Generator`` per model (:func:`attach_generator`), never from the
global RNG.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

Mode = Literal["sample", "mean", "fixed"]
Estimator = Literal["reparam", "local"]
MODES: tuple[str, ...] = ("sample", "mean", "fixed")

DEFAULT_RHO_INIT = -5.0
"""softplus(−5) ≈ 0.0067: posterior std at initialisation, small against a Kaiming-scale μ
(docs/bnn.md, "Layers"; uncertainty-baselines uses −7, bayesian-torch −3)."""

_MIN_VARIANCE = 1e-16


class ParameterTransform(Protocol):
    """A hook that changes how a layer's parameters are used, e.g. quantization (bayesim.quant).

    ``role`` is ``"weight"`` or ``"bias"``. ``variational`` maps (μ, σ) to the distribution actually
    used (for sampling *and* for the KL); ``sample`` maps a drawn (or mean) parameter to the value
    used in the forward pass.
    """

    def variational(self, mu: torch.Tensor, sigma: torch.Tensor, role: str
                    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def sample(self, w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, role: str
               ) -> torch.Tensor: ...


KL_SIGMA_FLOOR = 1e-8
"""σ_q below this (a point mass, e.g. a σ that a uniform quantizer rounded to 0) enters the KL as
this value, so the objective stays finite."""


def inverse_softplus(sigma: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """ρ with softplus(ρ) = σ, computed in float64 as ρ = σ + log(−expm1(−σ)) (stable for small
    and large σ) and returned in float32, bayesim's parameter dtype. ``floor`` clamps σ from
    below first (0: no clamp; σ ≤ 0 then gives −inf or NaN, which callers check)."""
    s = sigma.double()
    if floor > 0:
        s = s.clamp_min(floor)
    return (s + torch.log(-torch.expm1(-s))).float()


def kl_normal(mu_q: torch.Tensor, sigma_q: torch.Tensor, mu_p: torch.Tensor,
              sigma_p: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) summed over all elements, in nats."""
    ratio = (sigma_q.clamp_min(KL_SIGMA_FLOOR) / sigma_p) ** 2
    return 0.5 * (ratio + ((mu_q - mu_p) / sigma_p) ** 2 - 1.0 - torch.log(ratio)).sum()


class BayesianLayer(nn.Module):
    """Parameters, prior, KL and sampling shared by the mean-field layers."""

    def __init__(self, weight_shape: tuple[int, ...], fan_in: int, bias: bool, prior_std: float,
                 prior_mean: float, rho_init: float, estimator: Estimator) -> None:
        super().__init__()
        if not prior_std > 0:
            raise ValueError(f"prior_std must be > 0, got {prior_std}")
        self.fan_in = fan_in
        self.weight_mu = nn.Parameter(torch.empty(weight_shape))
        self.weight_rho = nn.Parameter(torch.empty(weight_shape))
        n_out = weight_shape[0]
        self.bias_mu = nn.Parameter(torch.empty(n_out)) if bias else None
        self.bias_rho = nn.Parameter(torch.empty(n_out)) if bias else None
        self.register_buffer("prior_mean", torch.tensor(float(prior_mean)))
        self.register_buffer("prior_std", torch.tensor(float(prior_std)))
        self.rho_init = float(rho_init)
        self.mode: Mode = "sample"
        self.estimator: Estimator = estimator
        self.generator: torch.Generator | None = None
        self.transform: ParameterTransform | None = None
        self._fixed_eps: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._fixed_params: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """μ ~ U(±1/√fan_in) (PyTorch's Linear/Conv default: Kaiming-uniform, a = √5); ρ = ρ₀."""
        bound = 1.0 / math.sqrt(self.fan_in)
        with torch.no_grad():
            self.weight_mu.uniform_(-bound, bound, generator=generator)
            self.weight_rho.fill_(self.rho_init)
            if self.bias_mu is not None and self.bias_rho is not None:
                self.bias_mu.uniform_(-bound, bound, generator=generator)
                self.bias_rho.fill_(self.rho_init)

    @property
    def weight_sigma(self) -> torch.Tensor:
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> torch.Tensor | None:
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def distribution(self, role: str = "weight") -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, σ) of the weights or biases as used, i.e. after the transform (if any)."""
        if role == "weight":
            mu, sigma = self.weight_mu, self.weight_sigma
        else:
            mu, sigma = self.bias_mu, self.bias_sigma  # type: ignore[assignment]
        if self.transform is not None:
            mu, sigma = self.transform.variational(mu, sigma, role)
        return mu, sigma

    def kl(self) -> torch.Tensor:
        """KL(q ‖ p) of this layer's weights and biases as used (after the transform), summed
        (nats)."""
        total = kl_normal(*self.distribution("weight"), self.prior_mean, self.prior_std)
        if self.bias_mu is not None:
            total = total + kl_normal(*self.distribution("bias"), self.prior_mean,
                                      self.prior_std)
        return total

    def _randn(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator, dtype=like.dtype,
                           device=like.device)

    def draw_fixed_noise(self) -> None:
        """Draw the ε used by the ``"fixed"`` mode (weights first, then bias)."""
        with torch.no_grad():
            eps_w = self._randn(self.weight_mu)
            eps_b = None if self.bias_mu is None else self._randn(self.bias_mu)
        self._fixed_eps = (eps_w, eps_b)
        self._fixed_params = None

    def current_parameters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight and bias this forward uses in the ``"mean"``, ``"fixed"`` or ``"sample"`` mode
        (reparameterised, so gradients reach μ and ρ)."""
        if self.mode == "fixed":
            if self._fixed_params is not None and not torch.is_grad_enabled():
                return self._fixed_params  # one network sample, reused across batches
            if self._fixed_eps is None:
                self.draw_fixed_noise()
            eps_w, eps_b = self._fixed_eps  # type: ignore[misc]
        elif self.mode == "sample":
            eps_w = self._randn(self.weight_mu)
            eps_b = None if self.bias_mu is None else self._randn(self.bias_mu)
        else:
            eps_w = eps_b = None
        weight = self._parameter("weight", eps_w)
        bias = None if self.bias_mu is None else self._parameter("bias", eps_b)
        if self.mode == "fixed" and not torch.is_grad_enabled():
            self._fixed_params = (weight, bias)
        return weight, bias

    def _parameter(self, role: str, eps: torch.Tensor | None) -> torch.Tensor:
        mu, sigma = self.distribution(role)
        value = mu if eps is None else mu + sigma * eps
        if self.transform is not None:
            value = self.transform.sample(value, mu, sigma, role)
        return value

    def operation(self, x: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor | None) -> torch.Tensor:
        """The deterministic operation (linear map or convolution) with given parameters."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "sample" and self.estimator == "local":
            # (a transform that quantizes samples cannot be used here: bayesim.quant refuses it)
            weight_mu, weight_sigma = self.distribution("weight")
            bias_mu, bias_var = None, None
            if self.bias_mu is not None:
                bias_mu, bias_sigma = self.distribution("bias")
                bias_var = bias_sigma**2
            mean = self.operation(x, weight_mu, bias_mu)
            var = self.operation(x * x, weight_sigma**2, bias_var)
            return mean + torch.sqrt(var.clamp_min(_MIN_VARIANCE)) * self._randn(mean)
        weight, bias = self.current_parameters()
        return self.operation(x, weight, bias)


class BayesLinear(BayesianLayer):
    """Mean-field Gaussian fully connected layer, ``y = x·Wᵀ + b``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 prior_std: float = 1.0, prior_mean: float = 0.0,
                 rho_init: float = DEFAULT_RHO_INIT, estimator: Estimator = "reparam") -> None:
        self.in_features, self.out_features = in_features, out_features
        super().__init__((out_features, in_features), in_features, bias, prior_std, prior_mean,
                         rho_init, estimator)

    def operation(self, x, weight, bias):  # type: ignore[override]
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, bias={self.bias_mu is not None}, "
                f"prior_std={float(self.prior_std):g}, estimator={self.estimator}")


class BayesConv2d(BayesianLayer):
    """Mean-field Gaussian 2D convolution (square kernel, stride and zero padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, *, prior_std: float = 1.0,
                 prior_mean: float = 0.0, rho_init: float = DEFAULT_RHO_INIT,
                 estimator: Estimator = "reparam") -> None:
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        super().__init__(shape, in_channels * kernel_size**2, bias, prior_std, prior_mean,
                         rho_init, estimator)

    def operation(self, x, weight, bias):  # type: ignore[override]
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"prior_std={float(self.prior_std):g}, estimator={self.estimator}")


def bayesian_layers(model: nn.Module) -> list[BayesianLayer]:
    """The Bayesian layers of ``model`` in module order."""
    return [m for m in model.modules() if isinstance(m, BayesianLayer)]


def kl_divergence(model: nn.Module) -> torch.Tensor:
    """Closed-form KL of all Bayesian parameters of ``model``, summed over parameters and layers."""
    layers = bayesian_layers(model)
    if not layers:
        return torch.zeros(())
    return torch.stack([layer.kl() for layer in layers]).sum()


def attach_generator(model: nn.Module, seed: int) -> torch.Generator:
    """Give all Bayesian layers of ``model`` one shared generator seeded with ``seed``."""
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    for layer in bayesian_layers(model):
        layer.generator = gen
    return gen


def model_generator(model: nn.Module) -> torch.Generator:
    """The model's generator (attaching a fresh one seeded with 0 if it has none)."""
    layers = bayesian_layers(model)
    if layers and layers[0].generator is not None:
        return layers[0].generator
    return attach_generator(model, 0)


@contextmanager
def sampling(model: nn.Module, mode: Mode, seed: int | None = None) -> Iterator[nn.Module]:
    """Switch every Bayesian layer of ``model`` to ``mode`` inside the block.

    Args:
        model: a model with Bayesian layers.
        mode: ``"sample"``, ``"mean"`` or ``"fixed"``.
        seed: if given, the model's generator is re-seeded first, so the block's draws are a pure
            function of ``seed``; in ``"fixed"`` mode the fixed ε are drawn on entry.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    layers = bayesian_layers(model)
    previous = [layer.mode for layer in layers]
    if seed is not None:
        model_generator(model).manual_seed(int(seed))
    for layer in layers:
        layer.mode = mode
        if mode == "fixed":
            layer.draw_fixed_noise()
    try:
        yield model
    finally:
        for layer, prev in zip(layers, previous, strict=True):
            layer.mode = prev
            layer._fixed_eps = None
            layer._fixed_params = None
