"""Uncertainty and calibration metrics in pure torch, with stated conventions.

Conventions (ECE: Guo et al., ICML 2017; PE/EE/MI: DDU, Mukhoti et al., CVPR 2023, arXiv
2102.11582; docs/bnn.md, "Metric conventions"):

* Inputs are Monte-Carlo probabilities ``[S, B, C]``; a ``[B, C]`` tensor counts as ``S = 1``.
* The predictive distribution averages *probabilities*: ``p̄ = mean_s p_s``.
* Natural logarithms (nats); ``ln 10 ≈ 2.3026`` is the maximum entropy for 10 classes.
* NLL = −mean_i log p̄(y_i | x_i), with ``log p̄`` computed as ``logsumexp_s log p_s − log S``.
* Brier = mean_i Σ_c (p̄_ic − 1[y_i = c])², range [0, 2].
* ECE / MCE: top-label, 15 equal-width bins ``(lo, hi]``; a confidence of exactly 0 joins the first
  bin. ECE = Σ_m |B_m|/N · |acc(B_m) − conf(B_m)|, MCE = max over non-empty bins.
* PE = H[p̄] (total), EE = mean_s H[p_s] (aleatoric), MI = PE − EE clamped at 0 (epistemic).
* AUROC(score_negative, score_positive) = P(score_pos > score_neg) + ½ P(equal): the
  Mann–Whitney statistic, ties counted ½; the positive class is the OOD or ambiguous set and a
  higher score means more uncertain.
* AUPR = average precision with the positive set as the positive class (scikit-learn's step-wise
  definition, no interpolation).

All reductions run in float64.
"""

import math

import torch

N_BINS = 15
_TINY = torch.finfo(torch.float64).tiny


def as_mc(probs: torch.Tensor) -> torch.Tensor:
    """View probabilities as ``[S, B, C]`` float64 (a ``[B, C]`` input becomes ``S = 1``)."""
    if probs.ndim == 2:
        probs = probs.unsqueeze(0)
    if probs.ndim != 3:
        raise ValueError(
            f"probabilities must be [S, B, C] or [B, C], got shape {tuple(probs.shape)}")
    return probs.to(torch.float64)


def mean_probs(probs: torch.Tensor) -> torch.Tensor:
    """Predictive distribution ``p̄ = mean_s p_s``, shape ``[B, C]``."""
    return as_mc(probs).mean(0)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(_TINY))).sum(-1)


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """PE(x) = H[p̄(·|x)] in nats, shape ``[B]``."""
    return _entropy(mean_probs(probs))


def expected_entropy(probs: torch.Tensor) -> torch.Tensor:
    """EE(x) = mean_s H[p_s(·|x)] in nats (aleatoric), shape ``[B]``."""
    return _entropy(as_mc(probs)).mean(0)


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """MI(x) = PE(x) − EE(x) ≥ 0 in nats (epistemic), shape ``[B]``."""
    return (predictive_entropy(probs) - expected_entropy(probs)).clamp_min(0.0)


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of examples whose argmax of p̄ equals the label."""
    return float((mean_probs(probs).argmax(-1) == labels).double().mean())


def log_mean_probs(probs: torch.Tensor) -> torch.Tensor:
    """``log p̄`` computed stably as ``logsumexp_s log p_s − log S``, shape ``[B, C]``."""
    p = as_mc(probs)
    return torch.logsumexp(torch.log(p.clamp_min(_TINY)), dim=0) - math.log(p.shape[0])


def nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Negative log-likelihood of the predictive distribution, mean over examples (nats)."""
    log_p = log_mean_probs(probs)
    return float(-log_p.gather(1, labels.long().view(-1, 1)).mean())


def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Brier score summed over classes, averaged over examples (range [0, 2])."""
    p = mean_probs(probs)
    onehot = torch.nn.functional.one_hot(labels.long(), p.shape[-1]).to(p.dtype)
    return float(((p - onehot) ** 2).sum(-1).mean())


def calibration_bins(probs: torch.Tensor, labels: torch.Tensor,
                     n_bins: int = N_BINS) -> dict[str, list[float]]:
    """Per-bin statistics of top-label calibration: edges, counts, accuracy and mean confidence.

    Bins are ``(lo, hi]`` of equal width on [0, 1]; empty bins report NaN accuracy and confidence.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be ≥ 1")
    p = mean_probs(probs)
    confidence, predicted = p.max(-1)
    correct = (predicted == labels).double()
    index = (torch.ceil(confidence * n_bins) - 1).clamp(0, n_bins - 1).long()
    counts = torch.bincount(index, minlength=n_bins).double()
    sum_conf = torch.bincount(index, weights=confidence, minlength=n_bins)
    sum_acc = torch.bincount(index, weights=correct, minlength=n_bins)
    safe = counts.clamp_min(1)
    nan = torch.full_like(counts, float("nan"))
    return {
        "edges": torch.linspace(0, 1, n_bins + 1, dtype=torch.float64).tolist(),
        "count": counts.tolist(),
        "accuracy": torch.where(counts > 0, sum_acc / safe, nan).tolist(),
        "confidence": torch.where(counts > 0, sum_conf / safe, nan).tolist(),
    }


def _calibration_gaps(probs: torch.Tensor, labels: torch.Tensor, n_bins: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    bins = calibration_bins(probs, labels, n_bins)
    counts = torch.tensor(bins["count"], dtype=torch.float64)
    gaps = (torch.tensor(bins["accuracy"]) - torch.tensor(bins["confidence"])).abs()
    return counts, torch.nan_to_num(gaps, nan=0.0)


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS) -> float:
    """Expected calibration error (top-label, equal-width bins), as a fraction in [0, 1]."""
    counts, gaps = _calibration_gaps(probs, labels, n_bins)
    return float((counts / counts.sum() * gaps).sum())


def mce(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS) -> float:
    """Maximum calibration error over non-empty bins, as a fraction in [0, 1]."""
    counts, gaps = _calibration_gaps(probs, labels, n_bins)
    return float(gaps[counts > 0].max())


def _pooled(score_negative: torch.Tensor, score_positive: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct score values (ascending) with the number of negatives and positives at each."""
    neg = torch.as_tensor(score_negative, dtype=torch.float64).reshape(-1)
    pos = torch.as_tensor(score_positive, dtype=torch.float64).reshape(-1)
    if neg.numel() == 0 or pos.numel() == 0:
        raise ValueError("AUROC/AUPR need at least one negative and one positive score")
    if torch.isnan(neg).any() or torch.isnan(pos).any():
        raise ValueError("scores contain NaN")
    values, inverse = torch.unique(torch.cat([neg, pos]), return_inverse=True)
    is_pos = torch.cat([torch.zeros_like(neg), torch.ones_like(pos)])
    n_pos = torch.bincount(inverse, weights=is_pos, minlength=values.numel())
    n_neg = torch.bincount(inverse, weights=1.0 - is_pos, minlength=values.numel())
    return values, n_neg, n_pos


def auroc(score_negative: torch.Tensor, score_positive: torch.Tensor) -> float:
    """Area under the ROC curve: P(positive scores higher) + ½ P(tie)."""
    _, n_neg, n_pos = _pooled(score_negative, score_positive)
    neg_below = torch.cumsum(n_neg, 0) - n_neg  # negatives strictly below each value
    wins = (n_pos * (neg_below + 0.5 * n_neg)).sum()
    return float(wins / (n_pos.sum() * n_neg.sum()))


def aupr(score_negative: torch.Tensor, score_positive: torch.Tensor) -> float:
    """Average precision with the positive set as the positive class."""
    _, n_neg, n_pos = _pooled(score_negative, score_positive)
    # thresholds from the highest score down: TP/FP counts of "score >= threshold"
    tp = torch.cumsum(n_pos.flip(0), 0)
    fp = torch.cumsum(n_neg.flip(0), 0)
    precision = tp / (tp + fp)
    recall_step = n_pos.flip(0) / n_pos.sum()
    return float((recall_step * precision).sum())


def effective_sample_size(chains: torch.Tensor) -> torch.Tensor:
    """Effective number of independent samples of each column of ``chains[S, N]`` (S successive
    Monte-Carlo samples of N statistics), ESS = S/τ, by Geyer's initial positive sequence (Geyer,
    Statistical Science 1992): τ = −1 + 2 Σ_k Γ_k with Γ_k = ρ_2k + ρ_2k+1, summed up to the first
    Γ_k ≤ 0. For an AR(1) sequence with coefficient ρ this tends to
    S·(1 − ρ)/(1 + ρ); for independent samples to S. A constant column gets ESS = S."""
    x = torch.as_tensor(chains, dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] < 4:
        raise ValueError("effective_sample_size needs chains of shape [S ≥ 4, N]")
    s = x.shape[0]
    centred = x - x.mean(0)
    var = (centred * centred).mean(0)
    size = 1 << (2 * s - 1).bit_length()
    spectrum = torch.fft.rfft(centred, n=size, dim=0)
    acov = torch.fft.irfft(spectrum * spectrum.conj(), n=size, dim=0)[:s] / s
    rho = torch.where(var > 0, acov / var.clamp_min(1e-300), torch.zeros_like(acov))
    n_pairs = s // 2
    pairs = rho[:2 * n_pairs].reshape(n_pairs, 2, -1).sum(1)  # Γ_k = ρ_2k + ρ_2k+1
    positive = torch.cumprod((pairs > 0).double(), dim=0)  # up to the first Γ_k ≤ 0
    tau = -1.0 + 2.0 * (pairs * positive).sum(0)
    tau = torch.where(var > 0, tau.clamp_min(1.0 / s), torch.ones_like(tau))
    return s / tau
