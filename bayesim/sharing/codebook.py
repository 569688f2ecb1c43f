"""The codebook of stochastic weight sharing: one global k-means over the (μ, σ) points of every
weight, outliers, one 2D Gaussian per cluster, ellipse points with alpha blending, and the
Wasserstein merge (Lin et al., AISTATS 2025, Algorithm 1; released code
github.com/gfhvbjk/Anonymous, init_gmm.py and 2DGBNNs_train.py).

A network's weights (all Bayesian layers, biases excluded, concatenated in module order and
flattened) fall into three kinds, recorded in one int16 label per weight:

* ``label ≥ 0`` — an **inlier** of shared Gaussian k: N(c_k, L_k L_kᵀ) over (μ, σ);
* ``label = OUTLIER`` (−1) — keeps its own mean-field Gaussian N(m_j, s_j²);
* ``label = ELLIPSE`` (−2) — lies outside its cluster's 95 % ellipse; its value is the
  deterministic blend ``α·c_a[0] + (1 − α)·c_b[0]`` of the two most likely Gaussians.

Choices where the sources leave a gap or the released code differs (all [R], docs/sharing.md):

* the points are (μ, σ) with σ = softplus(ρ): the paper clusters (μ, ρ) but its σ-map makes its ρ
  numerically equal to σ (within 3e-4), whereas our ρ is a log-scale parameter;
* the importance ranking uses |∂L/∂μ| averaged over the last fine-tuning epoch (the paper says
  |∇μ|; the code ranks the signed gradient of one batch);
* a Gaussian's centre is the mean of its members after outliers left (the code keeps the k-means
  centre, which differs only for clusters that lost members);
* α are the posterior responsibilities of the top-2 Gaussians (softmax of log-densities); the
  code's softmax over raw densities saturates, and its e^12 test mostly falls back to α_a·c_a.
"""

from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field

from bayesim.errors import ConfigError
from bayesim.schema import StrictModel
from bayesim.sharing.gaussians import (
    CHI2_2DOF_95,
    covariance,
    fit_covariances,
    log_density,
    mahalanobis_squared,
    wasserstein2_squared,
)

OUTLIER = -1
ELLIPSE = -2
MAX_CLUSTERS = int(np.iinfo(np.int16).max)
"""Labels are int16 (the paper's storage format), so at most 32,767 shared Gaussians."""
_DENSITY_CHUNK = 4096


class SharingConfig(StrictModel):
    """Stochastic weight sharing: codebook, outlier and merge rules, and the training stages.
    Defaults are the released code's (github.com/gfhvbjk/Anonymous, commit ad31235) unless
    marked [R]."""

    n_clusters: int = Field(default=256, ge=1, le=MAX_CLUSTERS)
    """K of the global k-means. The code's 6,000 is for 11 M weights; 256 (its older
    kmeans_init.py) suits LeNet-5's 61 k weights, ~240 per cluster [C, R]."""
    tau_w: float = Field(default=0.2, gt=0)
    """Outlier if |μ| ≥ τ_w (weight units) [C]."""
    gradient_top_percent: float = Field(default=1.0, ge=0, lt=100)
    """Outlier if |∂L/∂μ| is in the top p % [C: 1 %]."""
    min_cluster_size: int = Field(default=20, ge=1)
    """Members of a cluster of at most this many become outliers [C: 20]."""
    ellipse_threshold: float = Field(default=CHI2_2DOF_95, gt=0)
    """Mahalanobis d² above which an inlier is an ellipse point (χ²₂ at 95 %) [C]."""
    tau_d: float = Field(default=1.5e-7, ge=0)
    """Merge when W₂² < τ_d (squared weight units) [C]."""
    tau_g: float = Field(default=0.15, gt=0)
    """… and lr·‖∂L/∂c‖ < τ_g for both Gaussians [C]."""
    tau_v: float = Field(default=1e-3, gt=0)
    """… and the variance of both clusters' member μ is below τ_v [C]."""
    merge_neighbours: int = Field(default=2, ge=1)
    """Nearest other centres checked for a merge [C: 2]."""
    gradient: bool = True
    """True: the likelihood's gradient reaches the shared Gaussians and outliers. False: the
    released code's variant, whose sampled weights are detached (only the KL trains)."""
    pretrain_epochs: int = Field(default=5, ge=1)
    """Stage 0, deterministic training (CE on the means, Adam at train.lr) [R: the code trains
    200 SGD epochs on CIFAR]."""
    finetune_epochs: int = Field(default=2, ge=1)
    """Stage 1, stochastic fine-tuning from the pretrained means; its gradients rank outliers."""
    finetune_kl_weight: float = Field(default=0.3, ge=0)
    """KL factor of Stage 1's ELBO [R: the code's Stage 1 is CE only, which can only shrink σ;
    with the ELBO, σ measures how much noise a weight tolerates, which the clustering then sees]."""
    finetune_mu_lr: float = Field(default=1e-4, gt=0)
    """Adam lr of μ in Stage 1 (small: μ stays near the pretrained network) [R; code: SGD 1e-5]."""
    finetune_rho_lr: float = Field(default=1e-2, gt=0)
    """Adam lr of ρ in Stage 1 [R; code: SGD 1e-3]."""
    epochs: int = Field(default=3, ge=0)
    """Stage 2, ELBO epochs of the shared model, a merge after each [R; code: 200]."""
    lr: float = Field(default=1e-2, gt=0)
    """Adam lr of Stage 2, in units of each Gaussian's (and outlier's) prior scale: the
    parameters are whitened by the prior (bayesim.sharing.model) [R; code: Pyro Adam 1e-5 on raw
    values over 200 epochs]."""
    kl_weight: float = Field(default=1.0, ge=0)
    """KL factor of Stage 2 against the empirical-Bayes prior (KL/N_train per example)."""


@dataclass
class Codebook:
    """Labels, shared Gaussians, outliers and ellipse points of one network (module docstring).

    Tensors: ``labels`` int16 [N]; ``centers`` [K, 2] and ``chol`` [K, 2, 2] (float32, Σ = L·Lᵀ over
    (μ, σ)); ``outlier_index`` int64 [O] with ``outlier_loc``/``outlier_sigma`` [O];
    ``ellipse_index`` int64 [E], ``ellipse_pair`` int64 [E, 2] and ``ellipse_alpha`` [E] (weight of
    the first of the pair). ``layer_sizes`` splits the flat weight vector into the layers."""

    labels: torch.Tensor
    centers: torch.Tensor
    chol: torch.Tensor
    outlier_index: torch.Tensor
    outlier_loc: torch.Tensor
    outlier_sigma: torch.Tensor
    ellipse_index: torch.Tensor
    ellipse_pair: torch.Tensor
    ellipse_alpha: torch.Tensor
    layer_sizes: list[int]

    @property
    def n_weights(self) -> int:
        return int(self.labels.numel())

    @property
    def n_gaussians(self) -> int:
        return int(self.centers.shape[0])

    @property
    def inlier_index(self) -> torch.Tensor:
        return torch.nonzero(self.labels >= 0).squeeze(1)

    def counts(self) -> dict[str, int]:
        return {"weights": self.n_weights, "gaussians": self.n_gaussians,
                "inliers": int((self.labels >= 0).sum()),
                "outliers": int(self.outlier_index.numel()),
                "ellipse_points": int(self.ellipse_index.numel())}


def check_config_for(config: SharingConfig, n_weights: int) -> None:
    """Refuse a codebook that cannot exist for ``n_weights`` weights."""
    if config.n_clusters > n_weights:
        raise ConfigError(f"sharing.n_clusters = {config.n_clusters} exceeds the model's "
                          f"{n_weights} weights; choose K ≤ {n_weights}")
    if config.min_cluster_size >= n_weights:
        raise ConfigError(f"sharing.min_cluster_size = {config.min_cluster_size} would make every "
                          f"weight an outlier; choose a value below {n_weights}")


def _top_percent(values: torch.Tensor, percent: float) -> torch.Tensor:
    """Mask of the ``percent`` % largest values (ties broken by index)."""
    n = int(round(values.numel() * percent / 100.0))
    mask = torch.zeros(values.numel(), dtype=torch.bool)
    if n > 0:
        mask[torch.topk(values, n, sorted=False).indices] = True
    return mask


def kmeans(points: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Labels of scikit-learn's k-means (Lloyd, k-means++ init, one run) over [N, 2] points; the
    paper's global clustering (cuML there)."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed % (2**32))
    return model.fit_predict(points.astype(np.float64)).astype(np.int64)


def build_codebook(mu: torch.Tensor, sigma: torch.Tensor, importance: torch.Tensor,
                   layer_sizes: list[int], config: SharingConfig, seed: int) -> Codebook:
    """Cluster the flat weight posteriors (μ, σ) [N] into a codebook (Algorithm 1, steps 2–6).

    Args:
        mu, sigma: the fine-tuned posterior of every weight (weight units).
        importance: |∂L/∂μ| per weight (the gradient rule ranks it).
        layer_sizes: weights per layer, in order (their sum is N).
        config: K and the outlier rules.
        seed: seeds k-means.
    """
    n = mu.numel()
    check_config_for(config, n)
    points = torch.stack([mu.detach().double(), sigma.detach().double()], 1)
    raw = torch.from_numpy(kmeans(points.numpy(), config.n_clusters, seed))
    outlier = (mu.abs() >= config.tau_w) | _top_percent(importance.abs().double(),
                                                        config.gradient_top_percent)
    sizes = torch.bincount(raw[~outlier], minlength=config.n_clusters)
    outlier |= sizes[raw] <= config.min_cluster_size
    kept = torch.unique(raw[~outlier])
    if kept.numel() == 0:
        raise ConfigError("every weight became an outlier; raise sharing.tau_w or lower "
                          "sharing.gradient_top_percent / sharing.min_cluster_size")
    remap = torch.full((config.n_clusters,), OUTLIER, dtype=torch.int64)
    remap[kept] = torch.arange(kept.numel())
    labels = torch.where(outlier, torch.tensor(OUTLIER), remap[raw])
    inliers = torch.nonzero(labels >= 0).squeeze(1)
    k = kept.numel()
    counts = torch.bincount(labels[inliers], minlength=k).double()
    centers = torch.zeros(k, 2, dtype=torch.float64).index_add_(0, labels[inliers],
                                                                points[inliers]) / counts[:, None]
    chol = fit_covariances(points[inliers], labels[inliers], k)
    outlier_index = torch.nonzero(labels == OUTLIER).squeeze(1)
    book = Codebook(labels.to(torch.int16), centers.float(), chol.float(), outlier_index,
                    mu.detach()[outlier_index].float().clone(),
                    sigma.detach()[outlier_index].float().clone(),
                    torch.zeros(0, dtype=torch.int64), torch.zeros(0, 2, dtype=torch.int64),
                    torch.zeros(0), list(layer_sizes))
    return mark_ellipse_points(book, points, config.ellipse_threshold)


def top2_blend(points: torch.Tensor, centers: torch.Tensor, chol: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """For points [E, 2]: the two Gaussians of highest density ([E, 2] indices, most likely
    first) and α = p_a / (p_a + p_b), the responsibility of the first (alpha blending)."""
    if centers.shape[0] < 2:
        raise ValueError("alpha blending needs at least two Gaussians")
    pairs, alphas = [], []
    c, L = centers.double(), chol.double()
    for a in range(0, points.shape[0], _DENSITY_CHUNK):
        x = points[a:a + _DENSITY_CHUNK].double()
        dens = log_density(x[:, None, :], c[None], L[None])  # [e, K]
        top = torch.topk(dens, 2, dim=1)
        pairs.append(top.indices)
        alphas.append(torch.softmax(top.values, dim=1)[:, 0])
    return torch.cat(pairs), torch.cat(alphas).float()


def mark_ellipse_points(book: Codebook, points: torch.Tensor, threshold: float) -> Codebook:
    """Relabel the inliers outside their Gaussian's ``threshold`` ellipse (d² > threshold) as
    ellipse points blended from their top-2 Gaussians; ``points`` are the (μ, σ) of all weights."""
    inliers = book.inlier_index
    if inliers.numel() == 0 or book.n_gaussians < 2:
        return book
    own = book.labels[inliers].long()
    d2 = mahalanobis_squared(points[inliers].double(), book.centers.double()[own],
                             book.chol.double()[own])
    outside = inliers[d2 > threshold]
    if outside.numel() == 0:
        return book
    pair, alpha = top2_blend(points[outside], book.centers, book.chol)
    labels = book.labels.clone()
    labels[outside] = ELLIPSE
    return Codebook(labels, book.centers, book.chol, book.outlier_index, book.outlier_loc,
                    book.outlier_sigma, outside, pair, alpha, book.layer_sizes)


def merge_gaussians(book: Codebook, member_mu: torch.Tensor, center_grad: torch.Tensor,
                    lr: float, config: SharingConfig) -> tuple[Codebook, int]:
    """One Wasserstein merge pass (Algorithm 1, step 7): for each Gaussian i in order, each of its
    ``merge_neighbours`` nearest unmerged centres j is merged into i when W₂²(i, j) < τ_d,
    lr·‖∇c‖ < τ_g for both and the member-μ variance of both is below τ_v. The merged Gaussian has
    c = (c_i + c_j)/2 and Σ = (Σ_i + Σ_j)/2; labels are remapped. Returns the new codebook and the
    number of merges.

    Args:
        member_mu: μ of every weight (the member variance is taken over the inliers of each
            Gaussian).
        center_grad: ∂L/∂c [K, 2] of the last step (zeros if unknown).
        lr: the learning rate that scales the gradient rule.
    """
    k = book.n_gaussians
    if k < 2:
        return book, 0
    centers = book.centers.double().clone()
    cov = covariance(book.chol.double())
    inliers = book.inlier_index
    own = book.labels[inliers].long()
    n = torch.bincount(own, minlength=k).double()
    mean = torch.zeros(k, dtype=torch.float64).index_add_(0, own, member_mu[inliers].double())
    sq = torch.zeros(k, dtype=torch.float64).index_add_(0, own, member_mu[inliers].double() ** 2)
    variance = torch.where(n > 1, (sq - mean ** 2 / n.clamp_min(1)) / (n - 1).clamp_min(1),
                           torch.zeros_like(n))
    calm = lr * center_grad.double().norm(dim=1) < config.tau_g
    ok = calm & (variance < config.tau_v)
    neighbours = min(config.merge_neighbours, k - 1)
    distance = torch.cdist(centers, centers)
    distance.fill_diagonal_(float("inf"))
    nearest = torch.topk(distance, neighbours, largest=False).indices
    target = torch.arange(k)
    merged = torch.zeros(k, dtype=torch.bool)
    count = 0
    for i in range(k):
        if merged[i] or not ok[i]:
            continue
        for j in nearest[i].tolist():
            if merged[j] or j == i or not ok[j]:
                continue
            w2 = wasserstein2_squared(centers[i], cov[i], centers[j], cov[j])
            if float(w2) < config.tau_d:
                centers[i] = (centers[i] + centers[j]) / 2
                cov[i] = (cov[i] + cov[j]) / 2
                merged[j] = True
                target[target == j] = i
                count += 1
    if count == 0:
        return book, 0
    survivors = torch.nonzero(~merged).squeeze(1)
    new_index = torch.full((k,), -1, dtype=torch.int64)
    new_index[survivors] = torch.arange(survivors.numel())
    relabel = new_index[target]
    labels = book.labels.clone()
    labels[inliers] = relabel[own].to(torch.int16)
    chol = torch.linalg.cholesky(cov[survivors])
    return Codebook(labels, centers[survivors].float(), chol.float(), book.outlier_index,
                    book.outlier_loc, book.outlier_sigma, book.ellipse_index,
                    relabel[book.ellipse_pair], book.ellipse_alpha, book.layer_sizes), count
