"""Device-constrained training: a variational family whose σ the chip can realise (Bonnet et al.,
Nat. Commun. 14, 7530 (2023), doi 10.1038/s41467-023-43317-9, "technological loss").

On a differential pair with the common-mode knob (M1, or M4 with n devices per side), a weight
N(μ, σ²) is realisable exactly when σ lies between what the pair gives at the lowest and at the
highest common mode that keep both devices in the window,

    σ_lo(μ) = σ_w(c = g_min + |d|),   σ_hi(μ) = σ_w(c = g_max − |d|),   d = α·μ/(2n),

with σ_w(c)² = n·(s²(c + d) + s²(c − d))/α² (mapping.py). For the monotone laws this is closed
form: square root s² = q·G gives σ_w² = 2nq·c/α², proportional s = k·G gives
2nk²(c² + d²)/α², constant s = a gives 2n·a²/α² (no knob: σ_lo = σ_hi).

:func:`constrain_model` attaches a transform that clamps every weight's σ into [σ_lo(μ), σ_hi(μ)]
in the forward pass *and* in the KL, so the ELBO is optimised over realisable posteriors only; the
bounds depend on μ, so gradients also move μ to where its σ fits. The layer scales α are fixed
before training (chosen on the unconstrained model for feasibility, as the machine would). After
fine-tuning, :func:`export_constrained` writes the clamped σ back into ρ, and compiling with the
same α (``hardware.alpha`` = the list of layer scales) realises every σ without re-mapping losses.
"""

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesim.bnn.layers import attach_generator, bayesian_layers, inverse_softplus
from bayesim.crossbar.mapping import choose_alpha
from bayesim.devices.laws import closed_form
from bayesim.errors import ConfigError
from bayesim.machine import HardwareConfig, device_for, layer_alphas
from bayesim.machine.schemes import scheme_for


@dataclass(frozen=True)
class DeviceConstraint:
    """The :class:`~bayesim.bnn.layers.ParameterTransform` that clamps σ into the realisable
    range of one layer (units: µS for g and k-laws, weight units for μ and σ)."""

    kind: str
    """'sqrt', 'proportional' or 'constant'."""
    k: float
    """√q for sqrt (σ = k·√G), k for proportional, the value a for constant."""
    alpha: float
    g_min: float
    g_max: float
    n: int = 1

    def bounds(self, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = (self.alpha * mu.abs() / (2 * self.n)).clamp(max=(self.g_max - self.g_min) / 2)
        lo_c, hi_c = self.g_min + d, self.g_max - d
        scale = 2 * self.n * self.k ** 2 / self.alpha ** 2
        if self.kind == "sqrt":
            lo, hi = scale * lo_c, scale * hi_c
        elif self.kind == "proportional":
            lo, hi = scale * (lo_c ** 2 + d ** 2), scale * (hi_c ** 2 + d ** 2)
        else:
            lo = hi = torch.full_like(mu, scale)
        return torch.sqrt(lo.clamp_min(0)), torch.sqrt(torch.maximum(hi, lo).clamp_min(0))

    def variational(self, mu: torch.Tensor, sigma: torch.Tensor, role: str
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        if role != "weight":
            return mu, sigma  # biases stay digital
        lo, hi = self.bounds(mu)
        return mu, torch.clamp(sigma, lo, hi)

    def sample(self, w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, role: str
               ) -> torch.Tensor:
        return w


def constrain_model(model: nn.Module, hw: HardwareConfig) -> tuple[nn.Module, list[float]]:
    """A copy of ``model`` whose weight σ are clamped into what the chip of ``hw`` realises
    (M1, or M4 with ``devices_per_weight``), and the layer scales α (µS per weight unit) used."""
    if hw.mapping not in ("M1", "M4"):
        raise ConfigError(f"device-constrained training ties σ to the per-read noise of M1/M4, "
                          f"not {hw.mapping}")
    if not hw.common_mode:
        raise ConfigError("device-constrained training uses the common-mode knob; set "
                          "hardware.common_mode = true")
    device = device_for(hw)
    closed = closed_form(device.read_law)
    if closed is None:
        raise ConfigError(f"device-constrained training needs a square-root, proportional or "
                          f"constant per-read noise law; the card's is "
                          f"{type(device.read_law).__name__}")
    kind, k = closed
    n = scheme_for(hw).devices_per_side(hw)
    constrained = copy.deepcopy(model)
    layers = bayesian_layers(constrained)
    alphas = layer_alphas(hw.alpha, len(layers))
    chosen = []
    for layer, alpha in zip(layers, alphas, strict=True):
        if layer.transform is not None:
            raise ConfigError("device-constrained training starts from an fp32 checkpoint, not a "
                              "quantized one")
        if alpha is None:
            mu = layer.weight_mu.detach().double().numpy()
            sigma = layer.weight_sigma.detach().double().numpy()
            alpha = choose_alpha(mu, sigma, device.read_law, device.g_min, device.g_max, n=n,
                                 policy="feasibility")
        layer.transform = DeviceConstraint(kind, k, float(alpha), device.g_min, device.g_max, n)
        chosen.append(float(alpha))
    attach_generator(constrained, 0)
    return constrained, chosen


def export_constrained(model: nn.Module) -> nn.Module:
    """A plain fp32 model with ρ = softplus⁻¹(clamped σ): the constrained posterior itself."""
    plain = copy.deepcopy(model)
    with torch.no_grad():
        for layer in bayesian_layers(plain):
            transform = layer.transform
            if isinstance(transform, DeviceConstraint):
                _, sigma = transform.variational(layer.weight_mu, layer.weight_sigma, "weight")
                layer.weight_rho.copy_(inverse_softplus(sigma, floor=1e-30))
            layer.transform = None
    generator = bayesian_layers(model)[0].generator if bayesian_layers(model) else None
    for layer in bayesian_layers(plain):
        layer.generator = generator
    return plain


def constraint_report(model: nn.Module) -> list[dict[str, Any]]:
    """Per layer: α and the fraction of σ the clamp changed (the unconstrained ρ lay outside)."""
    out = []
    for index, layer in enumerate(bayesian_layers(model)):
        transform = layer.transform
        if not isinstance(transform, DeviceConstraint):
            continue
        with torch.no_grad():
            lo, hi = transform.bounds(layer.weight_mu)
            sigma = F.softplus(layer.weight_rho)
            outside = ((sigma < lo) | (sigma > hi)).double().mean().item()
        out.append({"layer": index, "alpha_uS_per_unit": transform.alpha,
                    "fraction_clamped": outside, "law": transform.kind})
    return out
