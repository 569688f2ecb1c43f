"""Training by stochastic variational inference (Bayes by Backprop).

The objective per minibatch is the negative ELBO scaled per training example::

    loss = CE_mean + kl_weight · β(t) · KL_sum / N_train

where CE_mean is the cross-entropy averaged over the batch (and over ``mc_train`` weight samples),
KL_sum the closed-form KL summed over all parameters, and β(t) a linear warm-up from 0 to 1 over
``kl_warmup_epochs`` epochs. ``kl_weight = 1`` is the true ELBO; smaller values temper the posterior
(Laplace-Redux's BBB baseline uses 0.1). Other libraries' scalings differ: per batch and a mean per
tensor (bayesian-torch 0.5.0, ``base_variational_layer.py`` and its README), a mean over parameters
(torchbnn 1.2, ``BKLLoss``).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bayesim.bnn.layers import Mode, kl_divergence, sampling
from bayesim.data.dirty import Subset
from bayesim.errors import ConfigError
from bayesim.schema import StrictModel
from bayesim.seeding import generator


class TrainConfig(StrictModel):
    """Optimiser and ELBO settings."""

    epochs: int = Field(default=50, ge=1)
    """Passes over the training set; 50 for the 8,000-example dirty-mnist demo set (the posterior
    std moves about lr per Adam step, so small data sets need many epochs to converge)."""
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    """Adam learning rate (Adam defaults otherwise; 1e-3 as in uncertainty-baselines)."""
    kl_weight: float = Field(default=0.3, ge=0)
    """Multiplier of KL_sum/N_train; 1 is the ELBO, < 1 a tempered posterior. Default 0.3: on
    dirty-mnist (embedded subset, LeNet-5, seed 0) the full ELBO left the model under-confident
    (ECE 0.043) while 0.3 gave ECE 0.019 at equal accuracy (docs/bnn.md; Laplace-Redux's BBB
    baseline tempers with 0.1)."""
    kl_warmup_epochs: float = Field(default=0.0, ge=0)
    """Epochs over which the KL factor rises linearly from 0 to kl_weight."""
    mc_train: int = Field(default=1, ge=1)
    """Weight samples per training step (1 is the common default; the KL is analytic)."""

    def fine_tuning(self, epochs: int, lr: float) -> "TrainConfig":
        """The config of a fine-tuning run from this one (QAT, device-constrained training):
        ``epochs`` at ``lr``, this batch size, KL weight and MC samples, no KL warm-up."""
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=lr,
                           kl_weight=self.kl_weight, mc_train=self.mc_train)


@dataclass
class EpochStats:
    epoch: int
    loss: float
    nll: float
    kl: float
    accuracy: float
    kl_factor: float


def elbo_loss(logits: torch.Tensor, targets: torch.Tensor, kl: torch.Tensor, n_train: int,
              kl_weight: float = 1.0) -> torch.Tensor:
    """``CE_mean + kl_weight · KL_sum / n_train`` (negative ELBO per training example)."""
    return F.cross_entropy(logits, targets) + kl_weight * kl / n_train


def fit(model: nn.Module, data: Subset, config: TrainConfig, seed: int,
        on_step: Callable[[int, int], None] | None = None,
        on_epoch: Callable[[EpochStats], None] | None = None, *,
        mode: Mode = "sample", optimiser: torch.optim.Optimizer | None = None,
        kl: Callable[[], torch.Tensor] | None = None,
        after_backward: Callable[[int], None] | None = None) -> list[EpochStats]:
    """Train ``model`` on ``data`` with Adam; returns per-epoch statistics.

    Args:
        model: a model with Bayesian layers (its generator draws the weight noise).
        data: normalised training images and labels.
        config: optimiser and ELBO settings.
        seed: seeds the minibatch order (the model's generator seeds the weight noise).
        on_step: called with (step, total_steps) after every optimiser step (progress bars).
        on_epoch: called with the statistics of every finished epoch.
        mode: the layers' sampling mode while training ("mean": a deterministic network).
        optimiser: replaces Adam over all parameters at ``config.lr`` (e.g. parameter groups).
        kl: the KL term (nats); default the closed form of the model's Bayesian layers.
        after_backward: called with the epoch index after every backward pass, before the
            optimiser step (gradient capture).
    """
    n_train = len(data)
    if optimiser is None:
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    kl_term = kl or (lambda: kl_divergence(model))
    steps_per_epoch = (n_train + config.batch_size - 1) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = config.kl_warmup_epochs * steps_per_epoch
    history: list[EpochStats] = []
    step = 0
    model.train()
    with sampling(model, mode):
        for epoch in range(config.epochs):
            order = torch.randperm(n_train, generator=generator(seed, "train", "shuffle", epoch))
            sums = torch.zeros(4, dtype=torch.float64)  # loss, nll, correct, kl
            for start in range(0, n_train, config.batch_size):
                index = order[start:start + config.batch_size]
                x, y = data.x[index], data.y[index]
                factor = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
                nll = torch.zeros(())
                for _ in range(config.mc_train):
                    logits = model(x)
                    nll = nll + F.cross_entropy(logits, y) / config.mc_train
                kl = kl_term()
                loss = nll + config.kl_weight * factor * kl / n_train
                if not torch.isfinite(loss):
                    raise ConfigError(f"training diverged: the loss is {loss.item()} at epoch "
                                      f"{epoch + 1}, step {step + 1}; lower train.lr "
                                      f"(now {config.lr})")
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if after_backward:
                    after_backward(epoch)
                optimiser.step()
                step += 1
                with torch.no_grad():
                    sums += torch.tensor([loss.item() * len(index), nll.item() * len(index),
                                          (logits.argmax(1) == y).sum().item(), kl.item()],
                                         dtype=torch.float64)
                if on_step:
                    on_step(step, total_steps)
            stats = EpochStats(epoch + 1, float(sums[0] / n_train), float(sums[1] / n_train),
                               float(sums[3] / steps_per_epoch), float(sums[2] / n_train),
                               config.kl_weight * factor)
            history.append(stats)
            if on_epoch:
                on_epoch(stats)
    model.eval()
    return history

