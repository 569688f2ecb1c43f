"""Stochastic weight sharing: the 2D-Gaussian algebra against independent oracles (scipy, torch
distributions), the codebook's rules, the shared sampler by its statistics, gradients of both
variants, storage round trip, the machine mapping measured by what it realises, and bad input."""

import math
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import scipy.linalg
import torch
from scipy import stats

from bayesim.bnn.models import ModelConfig, build_model
from bayesim.config import ExperimentConfig
from bayesim.errors import CheckpointError, ConfigError
from bayesim.evaluate import Predictor
from bayesim.machine import BayesianMachine, HardwareConfig
from bayesim.quant.strategies import QuantConfig
from bayesim.schema import validate
from bayesim.sharing.codebook import (
    ELLIPSE,
    OUTLIER,
    Codebook,
    SharingConfig,
    build_codebook,
    check_config_for,
    merge_gaussians,
    top2_blend,
)
from bayesim.sharing.gaussians import (
    CHI2_2DOF_95,
    covariance,
    fit_covariances,
    kl_gaussians,
    log_density,
    mahalanobis_squared,
    wasserstein2_squared,
)
from bayesim.sharing.model import SharedNet, flat_posterior
from bayesim.sharing.predictor import SharedPredictor, quantize_shared
from bayesim.sharing.storage import is_shared_checkpoint, load_shared, save_shared
from tests.statcheck import Z, assert_ks, assert_moments


def random_chol(k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, 2, 2, generator=g, dtype=torch.float64)
    return torch.linalg.cholesky(a @ a.transpose(-1, -2) + 0.1 * torch.eye(2, dtype=torch.float64))


def w2_reference(c1, s1, c2, s2) -> float:
    """W₂² by scipy's general matrix square root (an independent implementation)."""
    r1 = scipy.linalg.sqrtm(s1)
    cross = scipy.linalg.sqrtm(r1 @ s2 @ r1).real
    return float(np.sum((c1 - c2) ** 2) + np.trace(s1 + s2 - 2 * cross))


def test_wasserstein_matches_scipy_and_the_diagonal_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    c1, c2 = torch.randn(50, 2, generator=g, dtype=torch.float64), \
        torch.randn(50, 2, generator=g, dtype=torch.float64)
    s1, s2 = covariance(random_chol(50, 1)), covariance(random_chol(50, 2))
    ours = wasserstein2_squared(c1, s1, c2, s2)
    for i in range(50):
        ref = w2_reference(c1[i].numpy(), s1[i].numpy(), c2[i].numpy(), s2[i].numpy())
        assert ours[i].item() == pytest.approx(ref, rel=1e-8, abs=1e-10)
    assert torch.allclose(ours, wasserstein2_squared(c2, s2, c1, s1), rtol=1e-8)  # symmetric
    zeros = torch.zeros(50, dtype=torch.float64)
    assert torch.allclose(wasserstein2_squared(c1, s1, c1, s1), zeros, atol=1e-8)
    a, b = torch.tensor([0.3, 2.0], dtype=torch.float64), torch.tensor([1.5, 0.2],
                                                                        dtype=torch.float64)
    diag = wasserstein2_squared(torch.zeros(2, dtype=torch.float64), torch.diag(a),
                                torch.ones(2, dtype=torch.float64), torch.diag(b))
    assert diag.item() == pytest.approx(2.0 + float(((a.sqrt() - b.sqrt()) ** 2).sum()))


def test_ellipse_threshold_is_the_chi2_quantile_and_d2_is_chi2_distributed() -> None:
    assert pytest.approx(stats.chi2.ppf(0.95, 2), rel=1e-12) == CHI2_2DOF_95
    chol = random_chol(1, 3)[0]
    center = torch.tensor([0.5, -1.0], dtype=torch.float64)
    n = 20_000
    g = torch.Generator().manual_seed(4)
    x = center + torch.randn(n, 2, generator=g, dtype=torch.float64) @ chol.T
    d2 = mahalanobis_squared(x, center, chol).numpy()
    assert_ks(d2, "chi2", 2, label="Mahalanobis d²")
    outside = float(np.mean(d2 > CHI2_2DOF_95))
    assert abs(outside - 0.05) <= Z * math.sqrt(0.05 * 0.95 / n)


def test_log_density_and_kl_match_scipy_and_torch() -> None:
    chol = random_chol(4, 5)
    centers = torch.randn(4, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    ours = log_density(x, centers, chol)
    for i in range(4):
        ref = stats.multivariate_normal(centers[i].numpy(), covariance(chol)[i].numpy()).logpdf(
            x[i].numpy())
        assert ours[i].item() == pytest.approx(ref, rel=1e-10)
    chol0 = random_chol(4, 8)
    q = torch.distributions.MultivariateNormal(centers, scale_tril=chol)
    p = torch.distributions.MultivariateNormal(centers.flip(0), scale_tril=chol0)
    expected = torch.distributions.kl_divergence(q, p).sum()
    assert kl_gaussians(centers, chol, centers.flip(0), chol0).item() == pytest.approx(
        expected.item(), rel=1e-9)


def test_fitted_covariance_is_each_clusters_sample_covariance() -> None:
    g = np.random.default_rng(0)
    points = g.normal(size=(300, 2))
    labels = g.integers(0, 3, 300)
    chol = fit_covariances(torch.from_numpy(points), torch.from_numpy(labels), 3)
    for k in range(3):
        assert np.allclose(covariance(chol)[k].numpy(), np.cov(points[labels == k].T),
                           atol=1e-10)


def test_top2_blend_alpha_is_the_responsibility() -> None:
    centers = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    chol = torch.eye(2).repeat(3, 1, 1) * 0.7
    x = torch.tensor([[0.4, 0.1], [0.9, -0.2]])
    pair, alpha = top2_blend(x, centers, chol)
    assert pair.tolist() == [[0, 1], [1, 0]]
    for i in range(2):
        pa, pb = (stats.multivariate_normal(centers[j].numpy(), 0.49 * np.eye(2)).pdf(
            x[i].numpy()) for j in pair[i].tolist())
        assert alpha[i].item() == pytest.approx(pa / (pa + pb), rel=1e-5)


def make_book(centers, chol, labels, mu) -> Codebook:
    labels = torch.as_tensor(labels, dtype=torch.int16)
    return Codebook(labels, torch.as_tensor(centers, dtype=torch.float32),
                    torch.as_tensor(chol, dtype=torch.float32), torch.zeros(0, dtype=torch.int64),
                    torch.zeros(0), torch.zeros(0), torch.zeros(0, dtype=torch.int64),
                    torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0), [len(mu)])


def test_merge_rules() -> None:
    tiny = 1e-5 * torch.eye(2)
    centers = [[0.1, 0.01], [0.1001, 0.01], [0.3, 0.02]]
    labels = [0, 0, 1, 1, 2, 2]
    mu = torch.tensor([0.1, 0.1, 0.1001, 0.1001, 0.3, 0.3])
    book = make_book(centers, tiny.repeat(3, 1, 1), labels, mu)
    config = SharingConfig(tau_d=1e-6)
    merged, count = merge_gaussians(book, mu, torch.zeros(3, 2), 1e-2, config)
    assert count == 1 and merged.n_gaussians == 2
    assert merged.labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert torch.allclose(merged.centers[0], torch.tensor([0.10005, 0.01]))
    assert torch.allclose(covariance(merged.chol.double())[0], covariance(tiny[None].double())[0],
                          rtol=1e-5)
    # each rule alone blocks the merge
    for change in ({"tau_d": 1e-9}, {"tau_v": 1e-12}):
        _, blocked = merge_gaussians(book, mu + torch.tensor([0, 1e-3, 0, 0, 0, 0]), torch.zeros(
            3, 2), 1e-2, SharingConfig(**{"tau_d": 1e-6, **change}))
        assert blocked == 0, change
    steep = torch.zeros(3, 2)
    steep[1] = 100.0  # lr·‖∇c‖ = 1 ≥ τ_g
    assert merge_gaussians(book, mu, steep, 1e-2, config)[1] == 0


def test_codebook_outlier_and_ellipse_rules() -> None:
    g = torch.Generator().manual_seed(0)
    n = 4000
    mu = torch.randn(n, generator=g) * 0.05
    mu[:10] = 0.5  # beyond τ_w
    sigma = 0.01 + 0.002 * torch.rand(n, generator=g)
    importance = torch.rand(n, generator=g)
    config = SharingConfig(n_clusters=8, tau_w=0.2, gradient_top_percent=2.0, min_cluster_size=5)
    book = build_codebook(mu, sigma, importance, [n], config, seed=0)
    labels = book.labels.long()
    assert bool((labels[:10] == OUTLIER).all())
    top = torch.topk(importance, int(0.02 * n)).indices
    assert bool((labels[top] == OUTLIER).all())
    assert book.outlier_index.tolist() == torch.nonzero(labels == OUTLIER).squeeze(1).tolist()
    assert torch.equal(book.outlier_loc, mu[book.outlier_index])
    inliers = labels >= 0
    assert int(torch.bincount(labels[inliers]).min()) > config.min_cluster_size or \
        book.n_gaussians == 0
    points = torch.stack([mu, sigma], 1).double()
    own = labels[book.ellipse_index]
    assert bool((own == ELLIPSE).all())
    counts = book.counts()
    assert counts["inliers"] + counts["outliers"] + counts["ellipse_points"] == n
    d2 = mahalanobis_squared(points[inliers], book.centers.double()[labels[inliers]],
                             book.chol.double()[labels[inliers]])
    assert float(d2.max()) <= config.ellipse_threshold * (1 + 1e-6)


@pytest.fixture(scope="module")
def shared_net() -> SharedNet:
    model = build_model(ModelConfig(arch="mlp", hidden=[24]), seed=0)
    mu, sigma, sizes = flat_posterior(model)
    importance = torch.rand(mu.numel(), generator=torch.Generator().manual_seed(1))
    book = build_codebook(mu, sigma, importance, sizes, SharingConfig(n_clusters=12), seed=0)
    net = SharedNet(model, book)
    net.generator = torch.Generator().manual_seed(2)
    return net


def test_inliers_of_a_gaussian_share_one_draw_from_its_marginal(shared_net: SharedNet) -> None:
    net = shared_net
    k = int(torch.bincount(net.inlier_label).argmax())
    members = net.inlier_index[net.inlier_label == k]
    outliers = net.outlier_index
    draws, outlier_draws = [], []
    with torch.no_grad():
        for _ in range(3000):
            flat = net.sample_flat()
            assert bool((flat[members] == flat[members[0]]).all())
            draws.append(float(flat[members[0]]))
            outlier_draws.append(float(flat[outliers[0]]))
        ellipse = net.sample_flat()[net.ellipse_index]
        assert torch.equal(ellipse, net.sample_flat()[net.ellipse_index])  # deterministic
    mean, std = float(net.centers[k, 0].detach()), float(net.chol[k, 0, 0].detach())
    assert_moments(np.array(draws), mean, std, label="shared draw")
    assert_ks((np.array(draws) - mean) / std, "norm", label="shared draw")
    assert_moments(np.array(outlier_draws), float(net.outlier_loc[0].detach()),
                   float(net.outlier_sigma[0].detach()), label="outlier draw")


@pytest.mark.parametrize("gradient", [True, False])
def test_likelihood_gradient_reaches_the_codebook_only_when_not_detached(
        shared_net: SharedNet, gradient: bool) -> None:
    net = SharedNet(shared_net.skeleton, shared_net.codebook(), gradient=gradient)
    net.generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 10
    (torch.nn.functional.cross_entropy(net(x), y) + net.kl()).backward()
    grads = [p.grad for p in (net.center_offset, net.outlier_offset)]
    if gradient:
        assert all(g is not None and float(g.abs().sum()) > 0 for g in grads)
    else:
        assert all(g is None or float(g.abs().sum()) == 0 for g in grads)
    assert net.kl().item() == pytest.approx(0.0, abs=1e-3)  # empirical-Bayes prior at the start


def test_predictor_is_chunk_invariant_and_round_trips_through_storage(
        shared_net: SharedNet, tmp_path: Path) -> None:
    predictor = SharedPredictor(shared_net, batch_size=7)
    assert isinstance(predictor, Predictor)
    x = torch.randn(20, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    whole = predictor.sample_probs(x, 5, seed=11)
    tail = predictor.sample_probs(x, 3, seed=11, sample_offset=2)
    assert torch.equal(whole[2:], tail)
    path = save_shared(tmp_path / "shared.safetensors", shared_net,
                       ModelConfig(arch="mlp", hidden=[24]), seed=0)
    assert is_shared_checkpoint(path)
    loaded = load_shared(path)
    assert torch.equal(SharedPredictor(loaded.net, 7).sample_probs(x, 5, seed=11), whole)
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert f.get_tensor("labels").dtype == torch.int16
        memory = predictor.memory()
        assert memory["bytes"]["labels"] == 2 * shared_net.n_weights
    tensors = safetensors.torch.load_file(str(path))
    meta = safetensors.safe_open(str(path), framework="pt").metadata()
    tensors["centers"] = tensors["centers"] + 1e-3
    safetensors.torch.save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_shared(tmp_path / "bad.safetensors")


def test_accounting_counts_five_per_gaussian_and_two_per_outlier(shared_net: SharedNet) -> None:
    memory = SharedPredictor(shared_net).memory()
    counts = shared_net.codebook().counts()
    assert memory["trainable_parameters"] == 5 * counts["gaussians"] + 2 * counts["outliers"]
    n, b = shared_net.n_weights, memory["n_biases"]
    assert memory["mean_field_bytes"] == 8 * (n + b)
    expected = (2 * n + 20 * counts["gaussians"] + 8 * counts["outliers"]
                + 8 * counts["ellipse_points"] + 4 * b)
    assert memory["total_bytes"] == expected


def test_quantized_codebook_uses_the_grids(shared_net: SharedNet) -> None:
    quantized = quantize_shared(shared_net, QuantConfig(strategy="JQ", bits=3))
    mu, sigma = quantized.sources()
    k = quantized.n_gaussians
    for part in (slice(0, k), slice(k, None)):  # entries and outliers: one grid each
        assert torch.unique(mu[part]).numel() <= 2 ** 3 - 1
        assert torch.unique(sigma[part]).numel() <= 2 ** 3
    x = torch.randn(4, 1, 28, 28)
    assert SharedPredictor(quantized).sample_probs(x, 2, 0).shape == (2, 4, 10)
    assert SharedPredictor(quantized).memory()["bytes"]["quantized_sources"] > 0


def test_machine_programs_one_state_per_codebook_entry(shared_net: SharedNet) -> None:
    """Under M1 with one chip-wide α on an analog card, the inliers of the whole chip are
    programmed to exactly K distinct (G⁺, G⁻) targets, one per codebook entry, each realising one
    σ for all its weights."""
    model = shared_net.export_mean_field()
    hw = HardwareConfig(device="rram_lin2023", mapping="M1", alpha_scope="chip",
                        decomposition_inputs=0)
    machine = BayesianMachine.compile(model, hw)
    assert len({float(layer.pairs.alpha) for layer in machine.layers}) == 1
    g = np.stack([np.concatenate([layer.pairs.g_plus.reshape(-1) for layer in machine.layers]),
                  np.concatenate([layer.pairs.g_minus.reshape(-1) for layer in machine.layers])],
                 1)
    realised = np.concatenate([layer.pairs.sigma_realised.reshape(-1)
                               for layer in machine.layers])
    inliers = shared_net.inlier_index.numpy()
    labels = shared_net.inlier_label.numpy()
    assert np.unique(g[inliers], axis=0).shape[0] == shared_net.n_gaussians
    for k in range(shared_net.n_gaussians):
        assert np.unique(g[inliers[labels == k]], axis=0).shape[0] == 1
    states = machine.device_states()
    assert shared_net.n_gaussians <= states["pairs"] <= shared_net.n_gaussians + \
        shared_net.outlier_index.numel() + shared_net.ellipse_index.numel()
    for k in range(shared_net.n_gaussians):  # one state, one realised σ
        assert np.ptp(realised[inliers[labels == k]]) == 0


def test_bad_input_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="exceeds the model's 100 weights"):
        check_config_for(SharingConfig(n_clusters=101), 100)
    for bad in ({"tau_w": -0.1}, {"gradient_top_percent": 100}, {"n_clusters": 40_000},
                {"ellipse_threshold": 0}, {"min_cluster_size": 0}):
        with pytest.raises(ConfigError, match="sharing"):
            validate(ExperimentConfig, {"sharing": bad})
