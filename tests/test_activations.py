import pytest
import torch

from bayesim.bnn.layers import sampling
from bayesim.bnn.models import PACT, ModelConfig, build_model
from bayesim.errors import ConfigError
from bayesim.quant.activations import activation_range, quantize_activation_output
from bayesim.quant.strategies import QuantConfig, quantize_model


def test_pact_clips_and_learns_alpha() -> None:
    act = PACT(alpha=2.0)
    x = torch.tensor([-1.0, 0.5, 1.75, 2.5, 9.0], requires_grad=True)
    y = act(x)
    assert y.tolist() == [0.0, 0.5, 1.75, 2.0, 2.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert act.alpha.grad.item() == 2.0  # the two inputs above α
    assert activation_range(act) == (0.0, 2.0)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_activation_quantizer_levels(bits: int) -> None:
    y = torch.linspace(-1, 1, 10_001)
    q = quantize_activation_output(y, -1.0, 1.0, bits)
    assert q.unique().numel() == 2**bits
    assert float(q.min()) == -1.0 and float(q.max()) == 1.0
    assert float((q - y).abs().max()) <= 1.0 / (2**bits - 1) + 1e-6


def test_quantized_activations_in_a_model() -> None:
    model = build_model(ModelConfig(arch="mlp", hidden=[16, 16], activation="relu6"), seed=0)
    q = quantize_model(model, QuantConfig(strategy="JQ", bits=4, activation_bits=3))
    assert set(q.state_dict()) == set(model.state_dict())  # hooks, not new modules
    seen = []
    q[2].register_forward_hook(lambda m, i, o: seen.append(o))
    with sampling(q, "mean"):
        q(torch.randn(64, 1, 28, 28) * 3)
    assert seen[0].unique().numel() <= 8
    assert QuantConfig(strategy="JQ", bits=4, activation_bits=3).label == "JQ-4-a3"


def test_unbounded_activation_cannot_be_quantized() -> None:
    model = build_model(ModelConfig(arch="mlp", hidden=[8], activation="relu"), seed=0)
    with pytest.raises(ConfigError, match="unbounded"):
        quantize_model(model, QuantConfig(activation_bits=4))
