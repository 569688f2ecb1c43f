"""Closed-form algebra of 2D Gaussians over the (μ, σ) plane of a BNN's weights
("Stochastic Weight Sharing", Lin et al. AISTATS 2025, arXiv 2505.17856).

Every function is batched over a leading axis of K Gaussians, given as centres ``c`` [K, 2] and
lower Cholesky factors ``L`` [K, 2, 2] (Σ = L·Lᵀ), and works in float64 where precision matters.

* :func:`wasserstein2_squared` — W₂² = ‖c₁ − c₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½), matrix square
  roots by ``eigh`` with negative round-off eigenvalues clamped at 0. The released code clamps
  at 1e-10 instead, which is harmless for unit-scale data but not for weights: a cluster's
  (μ, σ) spread of ~1e-3 makes the eigenvalues of Σ₁^½ Σ₂ Σ₁^½ ~1e-12, the clamp lifts them to
  1e-10, and W₂² comes out *negative* (about −4e-5), below every τ_d, so any two neighbours
  whose other rules pass would merge;
* :func:`mahalanobis_squared` and :data:`CHI2_2DOF_95` — the ellipse test d² > 5.991;
* :func:`log_density` — log N(x; c, Σ) in nats;
* :func:`fit_covariances` — the sample covariance of each cluster's members, as a Cholesky factor;
* :func:`kl_gaussians` — KL(N(c, Σ) ‖ N(c₀, Σ₀)) of the empirical-Bayes prior, in nats.
"""

import math

import torch

CHI2_2DOF_95 = 5.991464547107979
"""χ² quantile with 2 degrees of freedom at 0.95, −2·ln(0.05): a point with Mahalanobis d² above
it lies outside its cluster's 95 % ellipse (Lin et al., AISTATS 2025, Algorithm 1 step 5; released
code 2DGBNNs_train.py)."""
EIGEN_FLOOR = 0.0
"""Eigenvalue clamp of the matrix square roots (module docstring: not the code's 1e-10)."""
COVARIANCE_JITTER = 1e-12
"""Added to the diagonal of every fitted covariance so that a cluster whose members all share
one coordinate (e.g. an untouched ρ) still has a Cholesky factor; std 1e-6 weight units."""


def covariance(chol: torch.Tensor) -> torch.Tensor:
    """Σ = L·Lᵀ for [K, 2, 2] factors."""
    return chol @ chol.transpose(-1, -2)


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of (a batch of) positive semi-definite matrices by ``eigh``."""
    values, vectors = torch.linalg.eigh(matrix)
    root = values.clamp_min(EIGEN_FLOOR).sqrt()
    return (vectors * root.unsqueeze(-2)) @ vectors.transpose(-1, -2)


def wasserstein2_squared(c1: torch.Tensor, cov1: torch.Tensor, c2: torch.Tensor,
                         cov2: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance between N(c1, cov1) and N(c2, cov2), batched over the
    leading axes (units: squared weight units)."""
    root1 = sqrtm_psd(cov1)
    cross = sqrtm_psd(root1 @ cov2 @ root1)
    trace = torch.diagonal(cov1 + cov2 - 2.0 * cross, dim1=-2, dim2=-1).sum(-1)
    return ((c1 - c2) ** 2).sum(-1) + trace


def mahalanobis_squared(x: torch.Tensor, center: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """d² = (x − c)ᵀ Σ⁻¹ (x − c) for points x [N, 2] against Gaussians broadcast to [N, 2] and
    [N, 2, 2] (one per point) or given once ([2], [2, 2])."""
    diff = (x - center).unsqueeze(-1)
    chol = chol.expand(*diff.shape[:-2], 2, 2)
    z = torch.linalg.solve_triangular(chol, diff, upper=False)
    return (z.squeeze(-1) ** 2).sum(-1)


def log_density(x: torch.Tensor, center: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """log N(x; c, L·Lᵀ) in nats, with the broadcasting of :func:`mahalanobis_squared`."""
    log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1).abs()).sum(-1)
    return -0.5 * mahalanobis_squared(x, center, chol) - math.log(2 * math.pi) - log_det


def fit_covariances(points: torch.Tensor, labels: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """Cholesky factors [K, 2, 2] of the unbiased sample covariance of each cluster's members
    (``labels`` in 0..K−1; a cluster needs at least two members), plus
    :data:`COVARIANCE_JITTER` on the diagonal."""
    points = points.double()
    counts = torch.bincount(labels, minlength=n_clusters).double()
    if bool((counts < 2).any()):
        raise ValueError("every cluster needs at least two members to fit a covariance")
    sums = torch.zeros(n_clusters, 2, dtype=torch.float64).index_add_(0, labels, points)
    means = sums / counts[:, None]
    centred = points - means[labels]
    outer = centred.unsqueeze(-1) * centred.unsqueeze(-2)
    cov = torch.zeros(n_clusters, 2, 2, dtype=torch.float64).index_add_(0, labels, outer)
    cov = cov / (counts - 1)[:, None, None]
    cov = cov + COVARIANCE_JITTER * torch.eye(2, dtype=torch.float64)
    return torch.linalg.cholesky(cov)


def kl_gaussians(c: torch.Tensor, chol: torch.Tensor, c0: torch.Tensor, chol0: torch.Tensor
                 ) -> torch.Tensor:
    """Σ_k KL(N(c_k, L_k L_kᵀ) ‖ N(c0_k, L0_k L0_kᵀ)) in nats (closed form, 2 dimensions)."""
    m = torch.linalg.solve_triangular(chol0, chol, upper=False)  # L0⁻¹ L
    trace = (m ** 2).sum((-2, -1))
    maha = mahalanobis_squared(c, c0, chol0)
    log_det = 2.0 * (torch.log(torch.diagonal(chol0, dim1=-2, dim2=-1).abs()).sum(-1)
                     - torch.log(torch.diagonal(chol, dim1=-2, dim2=-1).abs()).sum(-1))
    return 0.5 * (trace + maha - 2.0 + log_det).sum()
