"""Evaluation of any ``Predictor`` on a benchmark: the report of docs/reports.md.

Every way of producing predictions implements :class:`Predictor`: software sampling here (fp32,
or the digital b-bit predictor of a quantized model), the shared-Gaussian predictor
(bayesim.sharing.predictor) and the analog machine (bayesim.machine.BayesianMachine).
Monte-Carlo samples are processed in chunks of ``sample_chunk`` and reduced on the fly (running
log-sum-exp of log-probabilities and running sum of entropies), so memory does not grow with the
number of samples S.
"""

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import Field
from torch import nn

from bayesim import metrics
from bayesim.bnn.layers import sampling
from bayesim.data.dirty import Benchmark
from bayesim.errors import ConfigError
from bayesim.quant.strategies import model_memory, quantization_of
from bayesim.schema import StrictModel
from bayesim.seeding import derive_seed

SUBSETS = ("clean", "ambiguous", "ood")


class EvalConfig(StrictModel):
    """Monte-Carlo evaluation settings."""

    n_samples: int = Field(default=100, ge=1)
    """Monte-Carlo samples S per input (the issue's reference setting is 100)."""
    sample_chunk: int = Field(default=10, ge=1)
    """Samples evaluated at once; bounds memory at sample_chunk × N × C floats per subset."""
    batch_size: int = Field(default=500, ge=1)
    """Inputs per forward pass of a software predictor. 500 keeps LeNet-5's activations below
    glibc's mmap threshold (no page faults per forward): 1.45× faster than 2000 on 2 cores
    (docs/performance.md, "Batch size")."""
    ece_bins: int = Field(default=metrics.N_BINS, ge=1)
    mc_seed: int | None = Field(default=None, ge=0)
    """Seed of the Monte-Carlo draws; None: the experiment seed (which also fixes the data
    splits). Set it to repeat an evaluation with fresh draws on the same data."""


@runtime_checkable
class Predictor(Protocol):
    """Anything that draws Monte-Carlo class probabilities.

    ``sample_probs(x, n_samples, seed, sample_offset=k)`` returns ``[n_samples, B, C]``
    probabilities for samples ``k … k + n_samples − 1``; sample ``s`` must be a pure function of
    ``(seed, s)`` and the input, so chunking over samples or inputs never changes results.
    """

    kind: str

    def sample_probs(self, x: torch.Tensor, n_samples: int, seed: int, *,
                     sample_offset: int = 0) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...

    def memory(self) -> dict[str, Any]: ...


def check_samples(n_samples: int) -> None:
    """A ConfigError unless ``n_samples`` is a positive number of Monte-Carlo samples."""
    if n_samples < 1:
        raise ConfigError(f"the number of Monte-Carlo samples must be ≥ 1, got {n_samples}")


def monte_carlo(x: torch.Tensor, n_samples: int, seed: int, sample_offset: int,
                batch_size: int,
                draw: Callable[[int], AbstractContextManager[Callable[[torch.Tensor],
                                                                      torch.Tensor]]]
                ) -> torch.Tensor:
    """``[n_samples, N, C]`` softmax probabilities of software samples ``sample_offset …`` of
    ``x`` in batches of ``batch_size``: sample s enters ``draw(derive_seed(seed, "mc", s))``,
    a context in which the callable it yields maps a batch to logits with one weight draw for
    every input (the software and shared predictors' loop)."""
    check_samples(n_samples)
    samples = []
    for i in range(n_samples):
        with draw(derive_seed(seed, "mc", sample_offset + i)) as forward:
            samples.append(torch.cat([torch.softmax(forward(x[a:a + batch_size]), dim=-1)
                                      for a in range(0, x.shape[0], batch_size)]))
    return torch.stack(samples)


class SoftwarePredictor:
    """Software sampling of a mean-field BNN with a digital RNG: sample s uses one weight draw
    ``μ + σ·ε_s`` for all inputs, with ε_s drawn from a generator seeded by
    ``derive_seed(seed, "mc", s)``. A model quantized by :func:`bayesim.quant.quantize_model` makes
    this the ``"digital"`` b-bit predictor (quantized μ, σ and/or samples); otherwise ``"fp32"``."""

    def __init__(self, model: nn.Module, batch_size: int = 500,
                 config: dict[str, Any] | None = None) -> None:
        self.model = model.eval()
        self.batch_size = batch_size
        self.config = config or {}
        self.quant = quantization_of(model)
        self.kind = "fp32" if self.quant is None or self.quant.strategy == "fp" else "digital"

    @torch.no_grad()
    def sample_probs(self, x: torch.Tensor, n_samples: int, seed: int, *,
                     sample_offset: int = 0) -> torch.Tensor:
        return monte_carlo(x, n_samples, seed, sample_offset, self.batch_size,
                           lambda sample_seed: sampling(self.model, "fixed", seed=sample_seed))

    def describe(self) -> dict[str, Any]:
        quant = {} if self.quant is None else {"quant": self.quant.model_dump(mode="json"),
                                               "label": self.quant.label}
        return {"kind": self.kind, **quant, **self.config}

    def memory(self) -> dict[str, Any]:
        return model_memory(self.model, self.quant)


@dataclass
class MonteCarloSummary:
    """Streaming reduction of Monte-Carlo probabilities for N inputs."""

    log_sum: torch.Tensor  # [N, C]: logsumexp over samples of log p_s
    entropy_sum: torch.Tensor  # [N]: sum over samples of H[p_s]
    n_samples: int = 0

    @classmethod
    def empty(cls, n: int, n_classes: int) -> "MonteCarloSummary":
        return cls(torch.full((n, n_classes), -math.inf, dtype=torch.float64),
                   torch.zeros(n, dtype=torch.float64))

    def update(self, probs: torch.Tensor) -> None:
        chunk = metrics.as_mc(probs)
        log_p = torch.log(chunk.clamp_min(torch.finfo(torch.float64).tiny))
        self.log_sum = torch.logaddexp(self.log_sum, torch.logsumexp(log_p, 0))
        self.entropy_sum += metrics.expected_entropy(chunk) * chunk.shape[0]
        self.n_samples += chunk.shape[0]

    @property
    def mean_probs(self) -> torch.Tensor:
        return torch.exp(self.log_sum - math.log(self.n_samples))

    @property
    def pe(self) -> torch.Tensor:
        return metrics.predictive_entropy(self.mean_probs)

    @property
    def ee(self) -> torch.Tensor:
        return self.entropy_sum / self.n_samples

    @property
    def mi(self) -> torch.Tensor:
        return (self.pe - self.ee).clamp_min(0.0)


def summarize(predictor: Predictor, x: torch.Tensor, n_samples: int, seed: int,
              sample_chunk: int, on_samples: Callable[[int], None] | None = None
              ) -> MonteCarloSummary:
    """Run ``n_samples`` Monte-Carlo samples over ``x`` in chunks and reduce them."""
    summary: MonteCarloSummary | None = None
    for start in range(0, n_samples, sample_chunk):
        count = min(sample_chunk, n_samples - start)
        probs = predictor.sample_probs(x, count, seed, sample_offset=start)
        if summary is None:
            summary = MonteCarloSummary.empty(x.shape[0], probs.shape[-1])
        summary.update(probs)
        if on_samples:
            on_samples(count)
    assert summary is not None
    return summary


@dataclass
class EvaluationResult:
    """The report (JSON-ready) and the per-example scores behind its plots."""

    report: dict[str, Any]
    scores: dict[str, np.ndarray] = field(default_factory=dict)


def evaluate(predictor: Predictor, benchmark: Benchmark, config: EvalConfig, seed: int,
             on_progress: Callable[[int, int], None] | None = None) -> EvaluationResult:
    """Evaluate ``predictor`` on the clean, ambiguous and OOD test subsets of ``benchmark``
    (Monte-Carlo draws seeded by ``config.mc_seed``, else ``seed``)."""
    started = time.perf_counter()
    if config.mc_seed is not None:
        seed = config.mc_seed
    present = [name for name in SUBSETS if name in benchmark.test]
    total = config.n_samples * len(present)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if on_progress:
            on_progress(done, total)

    summaries = {
        name: summarize(predictor, benchmark.test[name].x, config.n_samples, seed,
                        config.sample_chunk, advance)
        for name in present
    }
    clean = summaries["clean"]
    labels = benchmark.test["clean"].y
    p_clean = clean.mean_probs
    in_distribution = {
        "accuracy": metrics.accuracy(p_clean, labels),
        "nll": metrics.nll(p_clean, labels),
        "brier": metrics.brier(p_clean, labels),
        "ece": metrics.ece(p_clean, labels, config.ece_bins),
        "mce": metrics.mce(p_clean, labels, config.ece_bins),
        "mean_confidence": float(p_clean.max(-1).values.mean()),
        "n": len(labels),
    }
    scores = {name: {"pe": s.pe, "ee": s.ee, "mi": s.mi} for name, s in summaries.items()}
    dirty = {k: torch.cat([scores["clean"][k], scores["ambiguous"][k]]) for k in ("pe", "mi")}

    def against_ood(metric: Callable, negative: torch.Tensor, key: str) -> float | None:
        """A score of clean (or dirty) vs OOD; None where the data has no OOD subset."""
        return metric(negative, scores["ood"][key]) if "ood" in scores else None

    uncertainty = {
        "subsets": {name: {k: float(v.mean()) for k, v in s.items()} | {"n": len(s["pe"])}
                    for name, s in scores.items()},
        "auroc_aleatoric": metrics.auroc(scores["clean"]["ee"], scores["ambiguous"]["ee"]),
        "auroc_epistemic": against_ood(metrics.auroc, scores["clean"]["mi"], "mi"),
        "auroc_epistemic_pe": against_ood(metrics.auroc, scores["clean"]["pe"], "pe"),
        "auroc_epistemic_dirty": against_ood(metrics.auroc, dirty["mi"], "mi"),
        "auroc_epistemic_dirty_pe": against_ood(metrics.auroc, dirty["pe"], "pe"),
        "aupr_epistemic": against_ood(metrics.aupr, scores["clean"]["mi"], "mi"),
        "conventions": {
            "auroc_aleatoric": "EE, clean test (negative) vs ambiguous test (positive)",
            "auroc_epistemic": "MI, clean test (negative) vs OOD test (positive)",
            "auroc_epistemic_pe": "PE, clean test vs OOD test",
            "auroc_epistemic_dirty": "MI, clean+ambiguous test (DDU's Dirty-MNIST-test) vs OOD",
            "units": "entropies in nats",
        },
    }
    report = {
        "predictor": predictor.describe(),
        "n_samples": config.n_samples,
        "seed": seed,
        "data": benchmark.info,
        "in_distribution": in_distribution,
        "uncertainty": uncertainty,
        "calibration": _json_safe(metrics.calibration_bins(p_clean, labels, config.ece_bins)),
        "memory": predictor.memory(),
        "eval_seconds": round(time.perf_counter() - started, 3),
    }
    flat = {f"{name}_{k}": v.numpy().astype(np.float32)
            for name, s in scores.items() for k, v in s.items()}
    flat["clean_confidence"] = p_clean.max(-1).values.numpy().astype(np.float32)
    flat["clean_correct"] = (p_clean.argmax(-1) == labels).numpy()
    return EvaluationResult(report, flat)


def _json_safe(bins: dict[str, list[float]]) -> dict[str, list[float | None]]:
    """Empty calibration bins hold NaN; JSON has no NaN, so they become null."""
    return {k: [None if math.isnan(v) else v for v in values] for k, values in bins.items()}
