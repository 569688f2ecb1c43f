"""A posterior bayesim did not train: a LeNet-5 whose σ look like a variational fit from another
library (Pyro's AutoNormal on MNIST): σ spanning three decades inside every layer, σ > |μ| for
most weights of the 400 → 120 layer, and output biases near +10.

Built in seconds and deterministically, on the synthetic bar images of conftest.py:

1. a deterministic LeNet-5 (bayesim's module, μ only) is trained for 3 epochs;
2. every weight's *importance* is |μ|·rms(its input) over the training images;
3. σ = c·10^(−3·q), q the weight's importance quantile in its layer: the most important weight
   gets c·10^−3, the least important c — three decades in every layer, the structure of a
   variational posterior in which unimportant weights revert towards the prior;
4. in the 400 → 120 layer the 75 % least important weights are pruned towards 0 (μ × 0.05), as
   variational fits do, so that σ > |μ| for most of them;
5. c is the largest scale (bisection) at which the software predictor still classifies every
   test image right from S = 30 samples while a single sample is right for only
   :data:`PER_SAMPLE_ACCURACY` of them: the posterior is as wide as the task allows, so that any
   excess noise on the chip shows;
6. the output layer's biases are shifted by +10 (softmax is invariant to it; on the chip the
   biases are digital, so that shift only checks that large biases pass through).
"""

import functools
import math

import torch
import torch.nn.functional as F

from bayesim.bnn.layers import BayesConv2d, bayesian_layers, sampling
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.evaluate import SoftwarePredictor
from tests.conftest import synthetic_images

PER_SAMPLE_ACCURACY = 0.8


def _rho(sigma: torch.Tensor) -> torch.Tensor:
    return torch.where(sigma > 20, sigma, torch.log(torch.expm1(sigma)))


@functools.lru_cache(maxsize=1)
def wide_posterior_lenet() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """(model, test images [200, 1, 28, 28], labels) of the module docstring."""
    images, labels = synthetic_images(1200, "digits", 5)
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels).long()
    x_train, y_train, x_test, y_test = x[:1000], y[:1000], x[1000:], y[1000:]
    model = build_model(ModelConfig(arch="lenet5"), seed=0)
    params = [p for name, p in model.named_parameters() if name.endswith("_mu")]
    optimiser = torch.optim.Adam(params, lr=3e-3)
    torch.manual_seed(0)
    with sampling(model, "mean"):
        for _ in range(3):
            for a in range(0, 1000, 50):
                optimiser.zero_grad()
                F.cross_entropy(model(x_train[a:a + 50]), y_train[a:a + 50]).backward()
                optimiser.step()
    layers = bayesian_layers(model)
    rms = _input_rms(model, x_train[:200])
    with torch.no_grad():
        importance = []
        for layer, r in zip(layers, rms, strict=True):
            mu = layer.weight_mu.reshape(layer.weight_mu.shape[0], -1)
            importance.append((mu.abs() * r[None, :]).reshape(-1))
        fc1 = layers[2]
        weak = importance[2] <= torch.quantile(importance[2], 0.75)
        fc1.weight_mu.reshape(-1)[weak] *= 0.05
        quantiles = [torch.argsort(torch.argsort(imp)).double() / max(imp.numel() - 1, 1)
                     for imp in importance]

        def widen(scale: float) -> None:
            for layer, q in zip(layers, quantiles, strict=True):
                sigma = scale * torch.pow(10.0, -3.0 * q).reshape(layer.weight_mu.shape)
                layer.weight_rho.copy_(_rho(sigma.float()))
                layer.bias_rho.copy_(_rho(torch.full_like(layer.bias_mu, 1e-3 * scale)))

        _large_hidden_biases(layers[3], layers[4])
        lo, hi = 1e-2, 3.0
        for _ in range(9):
            mid = math.sqrt(lo * hi)
            widen(mid)
            samples = SoftwarePredictor(model).sample_probs(x_test, 30, seed=11)
            per_sample = float((samples.argmax(-1) == y_test).double().mean())
            confident = bool((samples.mean(0).argmax(-1) == y_test).all()) and \
                per_sample >= PER_SAMPLE_ACCURACY
            lo, hi = (mid, hi) if confident else (lo, mid)
        widen(lo)
        layers[-1].bias_mu += 10.0
    return model.eval(), x_test, y_test


def _large_hidden_biases(layer, following, n_units: int = 8, shift: float = 10.0) -> None:
    """+``shift`` on the biases of ``n_units`` units of ``layer`` (a ReLU layer: they stay
    active), taken back in ``following``'s biases, so that the mean network is unchanged while
    those units carry activations ten times the others' into the next layer's DAC."""
    units = torch.arange(n_units) * (layer.bias_mu.numel() // n_units)
    layer.bias_mu[units] += shift
    following.bias_mu -= shift * following.weight_mu[:, units].sum(dim=1)


def _input_rms(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per Bayesian layer, the rms of each of its inputs (a convolution's: of each (channel, kernel
    offset) entry of its im2col rows) over the images ``x``."""
    out: list[torch.Tensor] = []
    hooks = []
    for layer in bayesian_layers(model):
        def hook(module, args, _out=out):
            h = args[0]
            if isinstance(module, BayesConv2d):
                h = F.unfold(h, module.kernel_size, padding=module.padding,
                             stride=module.stride).transpose(1, 2).reshape(-1, h.shape[1] *
                                                                           module.kernel_size ** 2)
            _out.append(h.reshape(h.shape[0], -1).pow(2).mean(0).sqrt())
        hooks.append(layer.register_forward_pre_hook(hook))
    with torch.no_grad(), sampling(model, "mean"):
        model(x)
    for h in hooks:
        h.remove()
    return out


def posterior_facts(model: torch.nn.Module) -> list[dict[str, float]]:
    """Per layer: decades spanned by σ, the fraction with σ > |μ|, the largest |bias|."""
    facts = []
    for layer in bayesian_layers(model):
        mu, sigma = (t.detach() for t in layer.distribution("weight"))
        facts.append({"decades": float(torch.log10(sigma.max() / sigma.min())),
                      "sigma_above_mu": float((sigma > mu.abs()).double().mean()),
                      "max_abs_bias": float(layer.bias_mu.detach().abs().max())})
    return facts
