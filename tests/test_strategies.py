import math

import pytest
import torch

from bayesim.bnn.layers import bayesian_layers, kl_divergence, kl_normal, sampling
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.errors import CheckpointError, ConfigError
from bayesim.evaluate import SoftwarePredictor
from bayesim.quant.quantizers import quantize_log, quantize_uniform
from bayesim.quant.strategies import QuantConfig, model_memory, quantization_of, quantize_model


@pytest.fixture
def model() -> torch.nn.Module:
    m = build_model(ModelConfig(arch="mlp", hidden=[32], rho_init=-3.0), seed=0)
    with torch.no_grad():  # spread σ over two decades, as after training
        for layer in bayesian_layers(m):
            layer.weight_rho.add_(torch.randn(layer.weight_rho.shape,
                                              generator=torch.Generator().manual_seed(1)))
    return m


def first(model: torch.nn.Module):
    return bayesian_layers(model)[0]


def test_fp_strategy_changes_nothing(model) -> None:
    q = quantize_model(model, QuantConfig(strategy="fp"))
    x = torch.randn(5, 1, 28, 28)
    with sampling(model, "fixed", seed=3), sampling(q, "fixed", seed=3):
        assert torch.equal(model(x), q(x))
    assert quantization_of(q) is None
    assert SoftwarePredictor(q).kind == "fp32"


def test_vpq_quantizes_the_distribution_not_the_sample(model) -> None:
    q = quantize_model(model, QuantConfig(strategy="VPQ", bits=3))
    layer, ref = first(q), first(model)
    mu_q, sigma_q = layer.distribution("weight")
    assert torch.equal(mu_q, quantize_uniform(ref.weight_mu, 3))
    assert torch.equal(sigma_q, quantize_log(ref.weight_sigma, 3))
    assert sigma_q.unique().numel() <= 8 and mu_q.unique().numel() <= 7
    # the KL sees the quantized distribution
    expected = kl_normal(mu_q, sigma_q, layer.prior_mean, layer.prior_std)
    expected = expected + kl_normal(layer.bias_mu, layer.bias_sigma, layer.prior_mean,
                                    layer.prior_std)  # biases stay fp32
    assert layer.kl().item() == pytest.approx(expected.item(), rel=1e-6)
    with sampling(q, "sample", seed=0):
        w, _ = layer.current_parameters()
    assert w.unique().numel() > 1000  # samples are full precision


def test_vpq_samples_follow_the_quantized_gaussian(model) -> None:
    q = quantize_model(model, QuantConfig(strategy="VPQ", bits=4))
    layer = bayesian_layers(q)[1]  # 32 × 10: cheap to re-quantize on every draw
    mu_q, sigma_q = (t.detach()[3, 7].double() for t in layer.distribution("weight"))
    with torch.no_grad(), sampling(q, "sample", seed=0):
        draws = torch.stack([layer.current_parameters()[0][3, 7] for _ in range(20_000)])
    n = draws.numel()
    assert abs(float(draws.double().mean() - mu_q)) < 5 * float(sigma_q) / math.sqrt(n)
    assert abs(float(draws.double().std() / sigma_q) - 1) < 5 * math.sqrt(1 / (2 * (n - 1)))


@pytest.mark.parametrize("strategy", ["SPQ", "JQ"])
def test_sampled_weights_lie_on_a_static_grid(model, strategy: str) -> None:
    q = quantize_model(model, QuantConfig(strategy=strategy, bits=4))
    layer = first(q)
    values = []
    for seed in range(3):
        with sampling(q, "fixed", seed=seed):
            w, b = layer.current_parameters()
            fp_bias = layer.bias_mu + layer.bias_sigma * layer._fixed_eps[1]
        values.append(w.detach())
        assert w.unique().numel() <= 15
        assert torch.equal(b, fp_bias)  # biases stay fp32
    steps = torch.cat(values).unique()
    step = float(steps[steps > 0].min())
    assert torch.allclose(steps / step, torch.round(steps / step), atol=1e-4)  # one shared grid
    mu, sigma = layer.distribution("weight")
    if strategy == "SPQ":
        assert torch.equal(mu, first(model).weight_mu)
    with sampling(q, "mean"):
        w_mean, _ = layer.current_parameters()
    assert w_mean.unique().numel() <= 15


def test_gradients_pass_the_quantizers(model) -> None:
    q = quantize_model(model, QuantConfig(strategy="JQ", bits=4))
    with sampling(q, "sample", seed=0):
        loss = q(torch.randn(8, 1, 28, 28)).logsumexp(-1).sum() + kl_divergence(q)
    loss.backward()
    layer = first(q)
    assert layer.weight_mu.grad.abs().sum() > 0 and layer.weight_rho.grad.abs().sum() > 0


def test_bad_inputs(model) -> None:
    local = build_model(ModelConfig(arch="mlp", hidden=[4], estimator="local"), seed=0)
    with pytest.raises(ConfigError, match="local reparameterisation"):
        quantize_model(local, QuantConfig(strategy="SPQ"))
    quantize_model(local, QuantConfig(strategy="VPQ"))  # fine: VPQ never forms samples either
    with torch.no_grad():
        first(model).weight_rho[0, 0] = -200.0  # softplus underflows to 0 in float32
    with pytest.raises(CheckpointError, match="σ ≤ 0"):
        quantize_model(model, QuantConfig(strategy="JQ"), source="ckpt")
    with pytest.raises(ValueError):
        QuantConfig(bits=17)


def test_memory_of_jq4_is_eight_times_smaller(model) -> None:
    q = quantize_model(model, QuantConfig(strategy="JQ", bits=4))
    predictor = SoftwarePredictor(q)
    assert predictor.kind == "digital"
    mem = predictor.memory()
    assert mem["bits_per_weight"] == 8.0 and mem["compression_vs_fp32"] == 8.0
    assert mem["sample_bits"] == 4 and mem["n_weights"] == 784 * 32 + 32 * 10
    assert 7.9 < mem["compression_vs_fp32_with_biases"] < 8.0  # 42 fp32 biases
    assert model_memory(model, None)["compression_vs_fp32"] == 1.0
    assert predictor.describe()["label"] == "JQ-4"
