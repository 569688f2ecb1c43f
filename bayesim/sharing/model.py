"""The shared-Gaussian network: a codebook (bayesim.sharing.codebook) driving the layers of a
bayesim architecture (Lin et al., AISTATS 2025; released code github.com/gfhvbjk/Anonymous,
2DGBNNs_train.py).

One Monte-Carlo sample draws **one** value per shared Gaussian, z_k[0] = c_k[0] + L_k[0,0]·ε_k
(the μ-coordinate of z_k ~ N(c_k, L_k L_kᵀ); with a lower Cholesky factor it depends on ε_k[0]
only), and every inlier of Gaussian k takes that same value; each outlier draws its own
w_j = m_j + s_j·ε_j; ellipse points take the deterministic blend α·c_a[0] + (1 − α)·c_b[0]. The
layers then run their plain operation (linear map or convolution) on these weights, functionally,
so the likelihood's gradient reaches c, L, m and s (``gradient = True``). ``gradient = False`` is
the released code's variant: the sampled weights are detached, so only the KL term trains the
variational parameters (its 2DGBNNs_train.py passes the samples through ``.detach()``). Biases
are deterministic and frozen at the fine-tuned means, as the code keeps every non-weight parameter
of the earlier stages.

The objective is the ELBO against the **empirical-Bayes prior**: the prior of every Gaussian and
outlier is its initial fit, so KL = 0 at the start (as in the released 2DGBNNs_train.py).
"""

import copy

import torch
from torch import nn

from bayesim.bnn.layers import BayesianLayer, bayesian_layers, inverse_softplus, kl_normal
from bayesim.quant.strategies import Quantizer
from bayesim.sharing.codebook import Codebook
from bayesim.sharing.gaussians import kl_gaussians

_SIGMA_FLOOR = 1e-10
"""Smallest outlier σ at initialisation (the code clamps at 1e-10)."""


def flat_posterior(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(μ, σ) of every weight of ``model``'s Bayesian layers, flattened in module order, and the
    weights per layer."""
    layers = bayesian_layers(model)
    mu = torch.cat([layer.weight_mu.detach().reshape(-1) for layer in layers])
    sigma = torch.cat([layer.weight_sigma.detach().reshape(-1) for layer in layers])
    return mu, sigma, [layer.weight_mu.numel() for layer in layers]


class SharedNet(nn.Module):
    """A network whose weights come from a :class:`Codebook` (module docstring).

    Args:
        skeleton: the architecture (bayesim MLP or LeNet-5) whose Bayesian layers supply the
            operations, weight shapes and biases (their means); it is copied and frozen.
        book: the codebook; its Gaussians and outliers become the trainable parameters, and their
            initial values the prior.
        gradient: whether the likelihood's gradient reaches the sampled weights.
    """

    def __init__(self, skeleton: nn.Module, book: Codebook, gradient: bool = True) -> None:
        super().__init__()
        self.skeleton = copy.deepcopy(skeleton).requires_grad_(False).eval()
        self.gradient = gradient
        self.quantizer: Quantizer | None = None
        self.generator: torch.Generator | None = None
        self.mode = "sample"
        layers = bayesian_layers(self.skeleton)
        sizes = [layer.weight_mu.numel() for layer in layers]
        if sizes != list(book.layer_sizes):
            raise ValueError(f"the codebook covers layers of {book.layer_sizes} weights, the "
                             f"architecture has {sizes}")
        self.layer_sizes = sizes
        self.layer_shapes = [tuple(layer.weight_mu.shape) for layer in layers]
        chol = book.chol.float()
        self.register_buffer("labels", book.labels.to(torch.int16).clone())
        self.register_buffer("outlier_index", book.outlier_index.long().clone())
        self.register_buffer("ellipse_index", book.ellipse_index.long().clone())
        self.register_buffer("ellipse_pair", book.ellipse_pair.long().clone())
        self.register_buffer("ellipse_alpha", book.ellipse_alpha.float().clone())
        self.register_buffer("prior_centers", book.centers.float().clone())
        self.register_buffer("prior_chol", chol.clone())
        self.register_buffer("prior_outlier_loc", book.outlier_loc.float().clone())
        self.register_buffer("prior_outlier_sigma",
                             book.outlier_sigma.float().clamp_min(_SIGMA_FLOOR).clone())
        k, o = book.n_gaussians, book.outlier_index.numel()
        # whitened (non-centred) parameters, zero at the prior: c = c0 + L0·u, L = L0·T with T
        # lower triangular (log-diagonal, off-diagonal), m = m0 + s0·u_o, s = s0·exp(v_o). Adam's
        # steps are then in units of the prior's own scale, which spans 1e-6 (an untrained σ
        # coordinate) to 1e-2 across Gaussians
        self.center_offset = nn.Parameter(torch.zeros(k, 2))
        self.chol_log_diag = nn.Parameter(torch.zeros(k, 2))
        self.chol_lower = nn.Parameter(torch.zeros(k))
        self.outlier_offset = nn.Parameter(torch.zeros(o))
        self.outlier_log_scale = nn.Parameter(torch.zeros(o))
        inliers = torch.nonzero(self.labels >= 0).squeeze(1)
        self.register_buffer("inlier_index", inliers)
        self.register_buffer("inlier_label", self.labels[inliers].long())

    # ---- parameters ----
    @property
    def transform(self) -> torch.Tensor:
        """T [K, 2, 2], lower triangular with positive diagonal: L = L0·T."""
        diag = torch.exp(self.chol_log_diag)
        zeros = torch.zeros_like(self.chol_lower)
        return torch.stack([torch.stack([diag[:, 0], zeros], -1),
                            torch.stack([self.chol_lower, diag[:, 1]], -1)], -2)

    @property
    def centers(self) -> torch.Tensor:
        """c [K, 2] over (μ, σ)."""
        return self.prior_centers + (self.prior_chol @ self.center_offset.unsqueeze(-1)
                                     ).squeeze(-1)

    @property
    def chol(self) -> torch.Tensor:
        """Lower Cholesky factors L [K, 2, 2] of the shared Gaussians."""
        return self.prior_chol @ self.transform

    @property
    def outlier_loc(self) -> torch.Tensor:
        return self.prior_outlier_loc + self.prior_outlier_sigma * self.outlier_offset

    @property
    def outlier_sigma(self) -> torch.Tensor:
        return self.prior_outlier_sigma * torch.exp(self.outlier_log_scale)

    @property
    def n_gaussians(self) -> int:
        return int(self.centers.shape[0])

    @property
    def n_weights(self) -> int:
        return int(self.labels.numel())

    def codebook(self) -> Codebook:
        """The current parameters as a :class:`Codebook` (detached)."""
        return Codebook(self.labels.clone(), self.centers.detach().clone(),
                        self.chol.detach().clone(), self.outlier_index.clone(),
                        self.outlier_loc.detach().clone(), self.outlier_sigma.detach().clone(),
                        self.ellipse_index.clone(), self.ellipse_pair.clone(),
                        self.ellipse_alpha.clone(), list(self.layer_sizes))

    def load_codebook(self, book: Codebook) -> None:
        """Set the variational parameters to ``book``'s values (same labels and sizes); the
        prior stays."""
        if book.n_gaussians != self.n_gaussians or \
                book.outlier_index.numel() != self.outlier_index.numel():
            raise ValueError("the codebook's sizes differ from the model's")
        prior_chol = self.prior_chol.double()
        offset = torch.linalg.solve_triangular(
            prior_chol, (book.centers.double() - self.prior_centers.double()).unsqueeze(-1),
            upper=False).squeeze(-1)
        transform = torch.linalg.solve_triangular(prior_chol, book.chol.double(), upper=False)
        with torch.no_grad():
            self.center_offset.copy_(offset)
            self.chol_log_diag.copy_(torch.log(torch.diagonal(transform, dim1=-2, dim2=-1)))
            self.chol_lower.copy_(transform[:, 1, 0])
            self.outlier_offset.copy_((book.outlier_loc - self.prior_outlier_loc)
                                      / self.prior_outlier_sigma)
            self.outlier_log_scale.copy_(torch.log(book.outlier_sigma.clamp_min(_SIGMA_FLOOR)
                                                   / self.prior_outlier_sigma))

    def center_gradient(self) -> torch.Tensor:
        """∂L/∂c [K, 2] of the last backward pass (zeros before any): the whitened gradient
        mapped back, ∂L/∂c = L0⁻ᵀ·∂L/∂u."""
        grad = self.center_offset.grad
        if grad is None:
            return torch.zeros(self.n_gaussians, 2)
        return torch.linalg.solve_triangular(self.prior_chol.transpose(-1, -2),
                                             grad.unsqueeze(-1), upper=True).squeeze(-1)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [self.center_offset, self.chol_log_diag, self.chol_lower, self.outlier_offset,
                self.outlier_log_scale]

    def n_trainable(self) -> int:
        """5 per shared Gaussian (2 centre, 3 Cholesky) + 2 per outlier."""
        return sum(p.numel() for p in self.trainable_parameters())

    # ---- the distribution of the weights ----
    def sources(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, σ) of the K shared draws followed by the O outlier draws, after the quantizer's
        ``variational`` map if one is attached. The entries and the outliers are quantized as
        two tensors, each with its own range: the outliers are by construction the largest
        weights (|μ| ≥ τ_w), and one range over both put every entry of a 4-bit codebook on
        the zero code (seed 0 of experiments/seed_sharing_quant.toml, docs/results/sharing.md)."""
        parts = [(self.centers[:, 0], self.chol[:, 0, 0]), (self.outlier_loc, self.outlier_sigma)]
        if self.quantizer is not None:
            parts = [self.quantizer.variational(mu, sigma, "weight") if mu.numel() else (mu, sigma)
                     for mu, sigma in parts]
        return torch.cat([parts[0][0], parts[1][0]]), torch.cat([parts[0][1], parts[1][1]])

    def _assemble(self, values: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """Flat weights from the K + O source values (inliers, outliers) and the source means
        (ellipse blends)."""
        k = self.n_gaussians
        a, b = self.ellipse_pair[:, 0], self.ellipse_pair[:, 1]
        blend = self.ellipse_alpha * mu[a] + (1.0 - self.ellipse_alpha) * mu[b]
        w = values.new_zeros(self.n_weights)
        w = w.index_put((self.inlier_index,), values[self.inlier_label])
        w = w.index_put((self.outlier_index,), values[k:])
        return w.index_put((self.ellipse_index,), blend)

    def marginals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-weight marginal (μ, σ) of the flat weights: the entry's (c[0], L[0,0]) for an
        inlier, (m, s) for an outlier, (blend, 0) for an ellipse point."""
        mu, sigma = self.sources()
        k = self.n_gaussians
        mean = self._assemble(mu, mu)
        std = sigma.new_zeros(self.n_weights)
        std = std.index_put((self.inlier_index,), sigma[self.inlier_label])
        std = std.index_put((self.outlier_index,), sigma[k:])
        return mean, std

    def sample_flat(self) -> torch.Tensor:
        """One network sample (``mode = "sample"``) or the means (``"mean"``), flat."""
        mu, sigma = self.sources()
        if self.mode == "mean":
            values = mu
        else:
            eps = torch.randn(mu.shape, generator=self.generator, dtype=mu.dtype)
            values = mu + sigma * eps
        return self._assemble(values, mu)

    def layer_weights(self) -> list[torch.Tensor]:
        """One sample of every layer's weight tensor (SPQ/JQ: quantized per layer)."""
        flat = self.sample_flat()
        if not self.gradient:
            flat = flat.detach()
        weights = list(torch.split(flat, self.layer_sizes))
        if self.quantizer is not None and self.quantizer.quantizes_sample:
            mean, std = (t.detach() for t in self.marginals())
            weights = [self.quantizer.sample(w, m, s, "weight") for w, m, s in
                       zip(weights, torch.split(mean, self.layer_sizes),
                           torch.split(std, self.layer_sizes), strict=True)]
        return [w.reshape(shape) for w, shape in zip(weights, self.layer_shapes, strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, self.layer_weights())

    def run(self, x: torch.Tensor, layer_weights: list[torch.Tensor]) -> torch.Tensor:
        """The architecture applied to ``x`` with the given weights (one per Bayesian layer)."""
        weights = iter(layer_weights)
        h = x
        for module in self.skeleton:
            if isinstance(module, BayesianLayer):
                bias = None if module.bias_mu is None else module.bias_mu
                h = module.operation(h, next(weights), bias)
            else:
                h = module(h)
        return h

    def kl(self) -> torch.Tensor:
        """KL(q ‖ p) against the empirical-Bayes prior, nats: K 2D Gaussians + O outliers."""
        shared = kl_gaussians(self.centers.double(), self.chol.double(),
                              self.prior_centers.double(), self.prior_chol.double())
        outliers = kl_normal(self.outlier_loc, self.outlier_sigma, self.prior_outlier_loc,
                             self.prior_outlier_sigma)
        return shared.float() + outliers

    def export_mean_field(self) -> nn.Module:
        """A mean-field copy of the architecture whose weights are the per-weight marginals
        (:meth:`marginals`) and whose biases are point masses: what a chip that programs one
        device pair per weight can realise (bayesim.machine). A weight's σ of 0 (an ellipse
        point, a bias) becomes ρ = −30, σ ≈ 1e-13."""
        model = copy.deepcopy(self.skeleton)
        mean, std = (t.detach() for t in self.marginals())
        for layer, m, s in zip(bayesian_layers(model), torch.split(mean, self.layer_sizes),
                               torch.split(std, self.layer_sizes), strict=True):
            with torch.no_grad():
                layer.weight_mu.copy_(m.reshape(layer.weight_mu.shape))
                rho = torch.where(s > 0, inverse_softplus(s, floor=_SIGMA_FLOOR),
                                  torch.full_like(s, -30.0))
                layer.weight_rho.copy_(rho.reshape(layer.weight_rho.shape))
                if layer.bias_rho is not None:
                    layer.bias_rho.fill_(-30.0)
        return model.requires_grad_(True)

