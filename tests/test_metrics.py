"""Metrics against independent oracles: scikit-learn and torchmetrics."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from torchmetrics.functional.classification import multiclass_calibration_error

from bayesim import metrics


def random_mc_probs(s: int, b: int, c: int, seed: int, sharpness: float = 3.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    logits = sharpness * torch.randn(s, b, c, generator=gen, dtype=torch.float64)
    return torch.softmax(logits, -1)


def random_labels(b: int, c: int, seed: int) -> torch.Tensor:
    return torch.randint(0, c, (b,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_and_aupr_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    neg = rng.integers(0, 6, size=300).astype(float)  # few distinct values → many ties
    pos = rng.integers(2, 9, size=200).astype(float)
    y = np.r_[np.zeros(neg.size), np.ones(pos.size)]
    s = np.r_[neg, pos]
    assert metrics.auroc(torch.tensor(neg), torch.tensor(pos)) == pytest.approx(
        roc_auc_score(y, s), abs=1e-12)
    assert metrics.aupr(torch.tensor(neg), torch.tensor(pos)) == pytest.approx(
        average_precision_score(y, s), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=40),
       st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=40))
def test_auroc_aupr_property_against_sklearn(neg: list[float], pos: list[float]) -> None:
    y = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
    s = np.r_[neg, pos]
    neg_t, pos_t = torch.tensor(neg, dtype=torch.float64), torch.tensor(pos, dtype=torch.float64)
    assert metrics.auroc(neg_t, pos_t) == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert metrics.aupr(neg_t, pos_t) == pytest.approx(average_precision_score(y, s), abs=1e-9)


def test_auroc_extremes_and_errors() -> None:
    assert metrics.auroc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert metrics.auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert metrics.auroc(torch.ones(5), torch.ones(7)) == 0.5  # all tied
    with pytest.raises(ValueError):
        metrics.auroc(torch.tensor([]), torch.tensor([1.0]))
    with pytest.raises(ValueError):
        metrics.auroc(torch.tensor([float("nan")]), torch.tensor([1.0]))


@pytest.mark.parametrize("seed", range(4))
def test_ece_mce_match_torchmetrics(seed: int) -> None:
    probs = random_mc_probs(20, 500, 10, seed, sharpness=2.0)
    labels = random_labels(500, 10, seed + 100)
    pbar = probs.mean(0)
    for ours, norm in ((metrics.ece, "l1"), (metrics.mce, "max")):
        oracle = multiclass_calibration_error(pbar, labels, num_classes=10, n_bins=15, norm=norm)
        # torchmetrics accumulates in float32
        assert ours(probs, labels) == pytest.approx(float(oracle), abs=1e-6)


def test_ece_with_confidence_exactly_one() -> None:
    # one-hot predictions (confidence exactly 1.0) mixed with soft ones below the last bin:
    # both conventions put the 1.0s in a bin of their own here, so they must agree
    gen = torch.Generator().manual_seed(0)
    soft = torch.softmax(0.5 * torch.randn(200, 10, generator=gen, dtype=torch.float64), -1)
    hard = torch.nn.functional.one_hot(torch.arange(100) % 10, 10).double()
    probs = torch.cat([soft, hard])
    labels = torch.cat([random_labels(200, 10, 1), (torch.arange(100) + (torch.arange(100) < 30))
                        % 10])  # 30 of the one-hot predictions are wrong
    assert probs.max(-1).values[:200].max() < 14 / 15
    oracle = multiclass_calibration_error(probs, labels, num_classes=10, n_bins=15, norm="l1")
    assert metrics.ece(probs, labels) == pytest.approx(float(oracle), abs=1e-6)
    # and the confidence-1.0 bin has accuracy 0.7: it contributes 100/300 * 0.3
    bins = metrics.calibration_bins(probs, labels)
    assert bins["count"][-1] == 100 and bins["accuracy"][-1] == pytest.approx(0.7)


def test_ece_bins_are_closed_on_the_right() -> None:
    # confidence 0.6 lies on a boundary of 5 bins: (0.4, 0.6] holds it, as in Guo et al. / DDU
    probs = torch.tensor([[0.6, 0.4], [0.9, 0.1]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    bins = metrics.calibration_bins(probs, labels, n_bins=5)
    assert bins["count"] == [0, 0, 1, 0, 1]
    assert metrics.ece(probs, labels, n_bins=5) == pytest.approx(0.5 * 0.4 + 0.5 * 0.9)
    assert metrics.mce(probs, labels, n_bins=5) == pytest.approx(0.9)


def test_nll_brier_accuracy_against_sklearn_and_numpy() -> None:
    probs = random_mc_probs(30, 400, 10, 7)
    labels = random_labels(400, 10, 8)
    pbar = probs.mean(0).numpy()
    assert metrics.nll(probs, labels) == pytest.approx(
        log_loss(labels.numpy(), pbar, labels=list(range(10))), rel=1e-10)
    onehot = np.eye(10)[labels.numpy()]
    assert metrics.brier(probs, labels) == pytest.approx(((pbar - onehot) ** 2).sum(1).mean())
    assert metrics.accuracy(probs, labels) == pytest.approx(
        (pbar.argmax(1) == labels.numpy()).mean())


def test_nll_is_stable_for_tiny_probabilities() -> None:
    probs = torch.full((4, 1, 2), 0.0, dtype=torch.float64)
    probs[..., 0] = 1.0
    probs[0, 0, 1], probs[0, 0, 0] = 1e-300, 1.0 - 1e-300
    value = metrics.nll(probs, torch.tensor([1]))
    # zeros are clamped to the smallest float64 (2.2e-308), a relative effect below 1e-7 here
    assert value == pytest.approx(-(math.log(1e-300) - math.log(4)), rel=1e-6)


def test_entropy_decomposition_against_numpy() -> None:
    probs = random_mc_probs(25, 64, 10, 3)
    p = probs.numpy()
    pbar = p.mean(0)
    pe = -(pbar * np.log(pbar)).sum(-1)
    ee = (-(p * np.log(p)).sum(-1)).mean(0)
    np.testing.assert_allclose(metrics.predictive_entropy(probs), pe, rtol=1e-12)
    np.testing.assert_allclose(metrics.expected_entropy(probs), ee, rtol=1e-12)
    np.testing.assert_allclose(metrics.mutual_information(probs), pe - ee, rtol=1e-9, atol=1e-15)
    mi = metrics.mutual_information(probs)
    assert (mi >= 0).all() and (metrics.predictive_entropy(probs) <= math.log(10) + 1e-12).all()


def test_single_sample_input_and_zero_mi() -> None:
    probs = random_mc_probs(1, 16, 10, 0)[0]  # [B, C] counts as S = 1
    assert metrics.as_mc(probs).shape == (1, 16, 10)
    assert torch.equal(metrics.mutual_information(probs), torch.zeros(16, dtype=torch.float64))
    identical = probs.unsqueeze(0).expand(5, -1, -1)
    assert metrics.mutual_information(identical).max() < 1e-12
    with pytest.raises(ValueError, match=r"\[S, B, C\]"):
        metrics.as_mc(torch.zeros(3))


def test_zero_probabilities_give_finite_entropies() -> None:
    probs = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])
    assert metrics.expected_entropy(probs).item() == 0.0
    assert metrics.predictive_entropy(probs).item() == pytest.approx(math.log(2))
    assert metrics.mutual_information(probs).item() == pytest.approx(math.log(2))
