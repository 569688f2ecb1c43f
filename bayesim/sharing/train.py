"""The stages of stochastic weight sharing (Lin et al., AISTATS 2025, Algorithm 1; released code):

0. :func:`pretrain` — a deterministic network (cross-entropy on the means);
1. :func:`finetune` — stochastic fine-tuning of (μ, ρ) from the pretrained means, capturing
   |∂L/∂μ| over its last epoch for the outlier rule;
2. :func:`build_shared` — the global k-means codebook (bayesim.sharing.codebook) and a first
   merge pass, wrapped as a :class:`~bayesim.sharing.model.SharedNet`;
3. :func:`fit_shared` — ELBO epochs of the shared model against its empirical-Bayes prior, a
   Wasserstein merge after each epoch. After a merge the model is rebuilt from the current
   values, which also become its prior, and its optimiser restarts, as the released code rebuilds
   model and guide and clears Pyro's parameter store.

All stages reuse :func:`bayesim.bnn.train.fit` (minibatch order from the seed, the same ELBO
scaling: CE_mean + kl_weight·KL/N_train).
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from bayesim.bnn.layers import bayesian_layers
from bayesim.bnn.train import TrainConfig, fit
from bayesim.data.dirty import Subset
from bayesim.seeding import derive_seed
from bayesim.sharing.codebook import SharingConfig, build_codebook, merge_gaussians
from bayesim.sharing.model import SharedNet, flat_posterior

Progress = Callable[[int, int], None] | None


@dataclass
class SharingLog:
    """What the pipeline did: stage histories, codebook counts and merges per epoch."""

    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    merges: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _means(model: nn.Module) -> list[nn.Parameter]:
    return [p for layer in bayesian_layers(model) for p in (layer.weight_mu, layer.bias_mu)
            if p is not None]


def _rhos(model: nn.Module) -> list[nn.Parameter]:
    return [p for layer in bayesian_layers(model) for p in (layer.weight_rho, layer.bias_rho)
            if p is not None]


def pretrain(model: nn.Module, data: Subset, train: TrainConfig, config: SharingConfig, seed: int,
             log: SharingLog, on_step: Progress = None) -> None:
    """Stage 0: train the means of ``model`` as a deterministic network (CE, Adam at
    ``train.lr``, ``config.pretrain_epochs``)."""
    stage = TrainConfig(epochs=config.pretrain_epochs, batch_size=train.batch_size, lr=train.lr,
                        kl_weight=0.0)
    optimiser = torch.optim.Adam(_means(model), lr=train.lr)
    history = fit(model, data, stage, derive_seed(seed, "sharing", "pretrain"), on_step,
                  mode="mean", optimiser=optimiser)
    log.history["pretrain"] = [asdict(h) for h in history]


def finetune(model: nn.Module, data: Subset, train: TrainConfig, config: SharingConfig, seed: int,
             log: SharingLog, on_step: Progress = None) -> torch.Tensor:
    """Stage 1: ELBO fine-tuning of μ and ρ (separate learning rates); returns |∂L/∂μ| of every
    weight averaged over the steps of the last epoch (flat, module order)."""
    stage = TrainConfig(epochs=config.finetune_epochs, batch_size=train.batch_size,
                        lr=config.finetune_mu_lr, kl_weight=config.finetune_kl_weight)
    optimiser = torch.optim.Adam([{"params": _means(model), "lr": config.finetune_mu_lr},
                                  {"params": _rhos(model), "lr": config.finetune_rho_lr}])
    layers = bayesian_layers(model)
    total = [torch.zeros_like(layer.weight_mu) for layer in layers]
    steps = [0]

    def capture(epoch: int) -> None:
        if epoch == config.finetune_epochs - 1:
            for acc, layer in zip(total, layers, strict=True):
                acc += layer.weight_mu.grad.detach().abs()
            steps[0] += 1

    history = fit(model, data, stage, derive_seed(seed, "sharing", "finetune"), on_step,
                  optimiser=optimiser, after_backward=capture)
    log.history["finetune"] = [asdict(h) for h in history]
    return torch.cat([acc.reshape(-1) for acc in total]) / max(1, steps[0])


def build_shared(model: nn.Module, importance: torch.Tensor, config: SharingConfig, seed: int,
                 log: SharingLog) -> SharedNet:
    """Codebook of the fine-tuned ``model`` (k-means, outliers, Gaussians, ellipse points) and a
    first merge pass, as a :class:`SharedNet` with its own generator."""
    mu, sigma, sizes = flat_posterior(model)
    book = build_codebook(mu, sigma, importance, sizes, config, derive_seed(seed, "kmeans"))
    log.counts["clustered"] = book.counts()
    book, merged = merge_gaussians(book, mu, torch.zeros(book.n_gaussians, 2), config.lr, config)
    log.merges.append(merged)
    log.counts["initial"] = book.counts()
    net = SharedNet(model, book, gradient=config.gradient)
    attach_noise(net, seed)
    return net


def attach_noise(net: SharedNet, seed: int) -> None:
    """Give ``net`` the generator of its training noise, seeded from ``seed``."""
    net.generator = torch.Generator()
    net.generator.manual_seed(derive_seed(seed, "sharing", "noise"))


def fit_shared(net: SharedNet, member_mu: torch.Tensor, data: Subset, train: TrainConfig,
               config: SharingConfig, seed: int, log: SharingLog,
               on_step: Progress = None) -> SharedNet:
    """Stage 2: ``config.epochs`` ELBO epochs, each followed by a merge pass (module docstring);
    ``member_mu`` are the fine-tuned means that the merge rule's member variance is taken over.
    Returns the trained (possibly rebuilt) model."""
    stage = TrainConfig(epochs=1, batch_size=train.batch_size, lr=config.lr,
                        kl_weight=config.kl_weight)
    steps_per_epoch = (len(data) + train.batch_size - 1) // train.batch_size
    history = []
    for epoch in range(config.epochs):
        optimiser = torch.optim.Adam(net.trainable_parameters(), lr=config.lr)
        last_grad = [torch.zeros(net.n_gaussians, 2)]

        def capture(_: int, model: SharedNet = net, grad: list = last_grad) -> None:
            grad[0] = model.center_gradient().detach()

        def step(done: int, _total: int, offset: int = epoch * steps_per_epoch) -> None:
            if on_step:
                on_step(offset + done, config.epochs * steps_per_epoch)

        stats = fit(net, data, stage, derive_seed(seed, "sharing", "epoch", epoch), step,
                    optimiser=optimiser, kl=net.kl, after_backward=capture)
        history.append({**asdict(stats[0]), "epoch": epoch + 1})
        book, merged = merge_gaussians(net.codebook(), member_mu, last_grad[0], config.lr, config)
        log.merges.append(merged)
        if merged:
            generator = net.generator
            net = SharedNet(net.skeleton, book, gradient=config.gradient)
            net.generator = generator
    log.history["shared"] = history
    log.counts["final"] = net.codebook().counts()
    return net
