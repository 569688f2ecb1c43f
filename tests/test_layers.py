"""Mean-field layers: KL against torch.distributions, sampling modes, and the sampled
distributions against their formulas (moments and KS tests with sample-size tolerances)."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch.distributions import Normal, kl_divergence

from bayesim.bnn.layers import (
    BayesConv2d,
    BayesLinear,
    attach_generator,
    sampling,
)
from bayesim.bnn.layers import (
    kl_divergence as model_kl,
)

N_DRAWS = 20_000
Z = 5.0  # tolerance in standard errors: a false alarm has probability < 1e-6 per check


def make_linear(estimator: str = "reparam") -> BayesLinear:
    layer = BayesLinear(4, 3, prior_std=0.7, prior_mean=0.1, rho_init=-1.0, estimator=estimator)
    with torch.no_grad():
        layer.weight_mu.copy_(torch.linspace(-1, 1, 12).reshape(3, 4))
        layer.weight_rho.copy_(torch.linspace(-2, 0.5, 12).reshape(3, 4))
        layer.bias_mu.copy_(torch.tensor([0.2, -0.3, 0.0]))
        layer.bias_rho.fill_(-1.5)
    attach_generator(layer, 123)
    return layer


def test_kl_matches_torch_distributions() -> None:
    layer = make_linear()
    q_w = Normal(layer.weight_mu, F.softplus(layer.weight_rho))
    q_b = Normal(layer.bias_mu, F.softplus(layer.bias_rho))
    prior = Normal(torch.tensor(0.1), torch.tensor(0.7))
    expected = kl_divergence(q_w, prior).sum() + kl_divergence(q_b, prior).sum()
    assert layer.kl().item() == pytest.approx(expected.item(), rel=1e-5)
    other = make_linear()  # same parameters, a distinct module
    assert model_kl(torch.nn.Sequential(layer, torch.nn.ReLU(), other)).item() == pytest.approx(
        2 * expected.item(), rel=1e-5)


def test_kl_is_zero_when_posterior_equals_prior() -> None:
    layer = BayesLinear(5, 2, prior_std=0.5)
    with torch.no_grad():
        layer.weight_mu.zero_()
        layer.bias_mu.zero_()
        rho = math.log(math.expm1(0.5))  # softplus(rho) = 0.5
        layer.weight_rho.fill_(rho)
        layer.bias_rho.fill_(rho)
    assert abs(layer.kl().item()) < 1e-5


def test_prior_is_saved_in_the_state_dict() -> None:
    state = make_linear().state_dict()
    assert float(state["prior_std"]) == pytest.approx(0.7)
    assert float(state["prior_mean"]) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="prior_std"):
        BayesLinear(2, 2, prior_std=-1.0)


def test_modes() -> None:
    layer = make_linear()
    x = torch.randn(8, 4)
    with sampling(layer, "mean"):
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu))
    with sampling(layer, "fixed", seed=5):
        a, b = layer(x), layer(x)
    torch.testing.assert_close(a, b)  # one network sample reused
    with sampling(layer, "fixed", seed=5):
        torch.testing.assert_close(layer(x), a)  # and reproducible from the seed
    with sampling(layer, "fixed", seed=6):
        assert not torch.allclose(layer(x), a)
    with sampling(layer, "sample"):
        assert not torch.allclose(layer(x), layer(x))
    assert layer.mode == "sample"  # restored
    with pytest.raises(ValueError, match="mode"), sampling(layer, "bogus"):  # type: ignore[arg-type]
        pass


def test_fixed_mode_batches_share_one_weight_sample() -> None:
    layer = make_linear()
    x = torch.randn(10, 4)
    with sampling(layer, "fixed", seed=1):
        whole = layer(x)
        parts = torch.cat([layer(x[:3]), layer(x[3:])])
    torch.testing.assert_close(whole, parts)


@pytest.mark.parametrize("column", [0, 3])
def test_sampled_weights_follow_the_posterior(column: int) -> None:
    """With x = e_j, the output is w[:, j] + b ~ N(μ_w + μ_b, σ_w² + σ_b²)."""
    layer = make_linear()
    x = torch.zeros(1, 4)
    x[0, column] = 1.0
    with torch.no_grad(), sampling(layer, "sample", seed=0):
        draws = torch.cat([layer(x) for _ in range(N_DRAWS)]).double()
    mean = (layer.weight_mu[:, column] + layer.bias_mu).double().detach()
    var = (F.softplus(layer.weight_rho[:, column]) ** 2 + F.softplus(layer.bias_rho) ** 2)
    var = var.double().detach()
    n = draws.shape[0]
    assert ((draws.mean(0) - mean).abs() < Z * torch.sqrt(var / n)).all()
    # sample variance: standard error ≈ var·sqrt(2/(n-1)) for Gaussian data
    assert ((draws.var(0) - var).abs() < Z * var * math.sqrt(2 / (n - 1))).all()
    for k in range(3):
        z = ((draws[:, k] - mean[k]) / var[k].sqrt()).numpy()
        assert stats.kstest(z, "norm").pvalue > 1e-4


def test_local_reparameterisation_matches_the_preactivation_distribution() -> None:
    """Local reparameterisation draws y ~ N(x·μ + μ_b, x²·σ² + σ_b²) independently per example."""
    layer = make_linear("local")
    x = torch.tensor([[0.5, -1.0, 2.0, 0.3]]).expand(N_DRAWS, 4)
    with torch.no_grad(), sampling(layer, "sample", seed=0):
        draws = layer(x).double()
    mean = (x[0] @ layer.weight_mu.T + layer.bias_mu).double().detach()
    var = ((x[0] ** 2) @ (F.softplus(layer.weight_rho) ** 2).T
           + F.softplus(layer.bias_rho) ** 2).double().detach()
    n = N_DRAWS
    assert ((draws.mean(0) - mean).abs() < Z * torch.sqrt(var / n)).all()
    assert ((draws.var(0) - var).abs() < Z * var * math.sqrt(2 / (n - 1))).all()
    for k in range(3):
        assert stats.kstest(((draws[:, k] - mean[k]) / var[k].sqrt()).numpy(),
                            "norm").pvalue > 1e-4


def test_conv_fixed_sample_equals_conv_with_sampled_kernel() -> None:
    conv = BayesConv2d(2, 3, 3, padding=1, rho_init=-2.0)
    attach_generator(conv, 9)
    x = torch.randn(4, 2, 8, 8)
    with sampling(conv, "fixed", seed=3):
        out = conv(x)
        eps_w, eps_b = conv._fixed_eps
    weight = conv.weight_mu + F.softplus(conv.weight_rho) * eps_w
    bias = conv.bias_mu + F.softplus(conv.bias_rho) * eps_b
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, padding=1))
    assert out.shape == (4, 3, 8, 8)


def test_gradients_reach_mu_and_rho() -> None:
    layer = make_linear()
    loss = layer(torch.randn(6, 4)).pow(2).sum() + layer.kl()
    loss.backward()
    for p in (layer.weight_mu, layer.weight_rho, layer.bias_mu, layer.bias_rho):
        assert p.grad is not None and p.grad.abs().sum() > 0
