import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesim.quant.memory import memory_report, sample_bits, stored_bits_per_weight
from bayesim.quant.quantizers import (
    log_range,
    quantize_log,
    quantize_uniform,
    quantize_uniform_unsigned,
    uniform_scale,
)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_uniform_codes_zero_and_symmetry(bits: int) -> None:
    x = torch.rand(50_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.cat([x, -x])  # uniform on [-1, 1]: every code is populated, both ends reached
    q = quantize_uniform(x, bits)
    scale = uniform_scale(x, bits)
    codes = torch.round(q / scale)
    levels = 2 ** (bits - 1) - 1
    assert set(codes.unique().tolist()) == set(range(-levels, levels + 1))  # all 2^b − 1 used
    assert float(quantize_uniform(torch.zeros(3, dtype=torch.float64), bits).abs().max()) == 0.0
    assert torch.equal(quantize_uniform(-x, bits), -q)  # symmetric grid
    assert float((q - x).abs().max()) <= float(scale) / 2 + 1e-12  # error ≤ half a step
    assert float(q.abs().max()) == pytest.approx(float(x.abs().max()))  # max maps onto a code


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=50),
       st.integers(1, 16))
def test_uniform_is_monotone_and_idempotent(values: list[float], bits: int) -> None:
    x = torch.tensor(sorted(values), dtype=torch.float64)
    q = quantize_uniform(x, bits)
    assert bool((q[1:] >= q[:-1]).all())
    scale = uniform_scale(x, bits)
    assert torch.allclose(quantize_uniform(q, bits, scale=scale), q)  # round trip


def test_uniform_one_bit_is_binary() -> None:
    x = randn(1000)
    q = quantize_uniform(x, 1)
    assert set(q.unique().tolist()) == {-float(x.abs().mean()), float(x.abs().mean())}


def test_uniform_per_channel_scales() -> None:
    x = randn(4, 50)
    x[2] *= 100
    q = quantize_uniform(x, 4, per_channel=True)
    scale = uniform_scale(x, 4, per_channel=True)
    assert scale.shape == (4, 1)
    for c in range(4):
        assert float(q[c].abs().max()) == pytest.approx(float(x[c].abs().max()))
    # per-tensor quantization of the same data wipes out the small channels
    assert int((quantize_uniform(x, 4)[0] == 0).sum()) > int((q[0] == 0).sum())


def test_uniform_straight_through_gradient_is_clipped() -> None:
    x = torch.tensor([-3.0, -0.4, 0.2, 0.9, 2.5], requires_grad=True)
    scale = torch.tensor(1.0 / 7)  # 4 bits: codes up to 7 → clip range ±1.07
    quantize_uniform(x, 4, scale=scale).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 6, 8])
def test_log_quantizer_uses_all_codes_and_never_zero(bits: int) -> None:
    # log-uniform over 6 decades: every code of the log grid is populated
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = 10.0 ** (-6 + 6 * u)
    q = quantize_log(sigma, bits, min_quantile=0.0)
    assert q.unique().numel() == 2 ** bits
    assert float(q.min()) > 0
    assert float(q.max()) == pytest.approx(float(sigma.max()), rel=1e-12)
    # relative error is bounded by half a log step
    l_min, l_max = log_range(sigma, bits, 0.0)
    half_step = (l_max - l_min) / (2 ** bits - 1) / 2
    assert float(torch.log2(q / sigma).abs().max()) <= half_step + 1e-9


def test_log_quantizer_keeps_small_sigma_resolvable_where_uniform_collapses() -> None:
    sigma = torch.exp(randn(10_000) - 6)  # σ ≈ 1e-3 … 5e-2
    small = sigma < torch.quantile(sigma, 0.2)
    log_q = quantize_log(sigma, 4)
    uni_q = quantize_uniform_unsigned(sigma, 4)
    assert log_q[small].unique().numel() >= 3
    assert float(log_q.min()) > 0
    assert int((uni_q == 0).sum()) > 0  # the uniform ablation maps small σ to exactly zero
    rel = lambda q: float(((q - sigma).abs() / sigma)[small].median())  # noqa: E731
    assert rel(log_q) < rel(uni_q)


def test_log_quantizer_range_policy_and_monotonicity() -> None:
    sigma = torch.tensor([1e-9, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2])
    lo, hi = log_range(sigma, 2, min_quantile=0.2)
    assert hi == pytest.approx(math.log2(1.6e-2))
    assert lo > math.log2(1e-9)  # the outlier near zero does not stretch the grid
    q = quantize_log(sigma, 2, min_quantile=0.2)
    assert bool((q[1:] >= q[:-1]).all()) and float(q[0]) == pytest.approx(2.0 ** lo)
    constant = torch.full((5,), 0.01)
    assert torch.allclose(quantize_log(constant, 3), constant)
    with pytest.raises(ValueError, match="σ > 0"):
        quantize_log(torch.tensor([0.1, 0.0]), 4)


def test_log_quantizer_straight_through() -> None:
    sigma = torch.tensor([0.01, 0.02, 0.05], requires_grad=True)
    (quantize_log(sigma, 3) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert sigma.grad.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("bad", [0, 17, -1, 2.5, True])
def test_bits_out_of_range(bad) -> None:
    with pytest.raises(ValueError, match="bits must be an integer from 1 to 16"):
        quantize_uniform(torch.ones(2), bad)


def test_memory_table_of_the_paper() -> None:
    """Borras et al., arXiv 2512.10602 (8× at 4 bits): bits stored per weight and reduction vs the
    64-bit fp32 BNN."""
    assert stored_bits_per_weight("fp", 4, 4) == 64
    assert stored_bits_per_weight("SPQ", 4, 4) == 64 and sample_bits("SPQ", 4) == 4
    expected = {8: 4.0, 6: 64 / 12, 4: 8.0, 3: 64 / 6, 2: 16.0}
    for b, ratio in expected.items():
        for strategy in ("VPQ", "JQ"):
            r = memory_report(strategy, b, b, b, n_weights=1000, n_tensors=2)
            assert r["bits_per_weight"] == 2 * b
            assert r["compression_vs_fp32"] == pytest.approx(ratio)
    assert sample_bits("VPQ", 4) == 32
    with pytest.raises(ValueError, match="unknown strategy"):
        stored_bits_per_weight("XQ", 4, 4)
