import json
import math
from pathlib import Path

import pytest
import torch

from bayesim import metrics
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.data.dirty import DataConfig, build_benchmark
from bayesim.evaluate import (
    EvalConfig,
    MonteCarloSummary,
    Predictor,
    SoftwarePredictor,
    evaluate,
    summarize,
)


@pytest.fixture
def predictor() -> SoftwarePredictor:
    model = build_model(ModelConfig(arch="mlp", hidden=[16], rho_init=-2.0), seed=0)
    return SoftwarePredictor(model, batch_size=7)


def test_protocol(predictor: SoftwarePredictor) -> None:
    assert isinstance(predictor, Predictor)
    assert predictor.kind == "fp32"
    with pytest.raises(ValueError):
        predictor.sample_probs(torch.zeros(1, 1, 28, 28), 0, seed=0)


def test_samples_are_independent_of_chunking_and_batching(predictor: SoftwarePredictor) -> None:
    x = torch.randn(23, 1, 28, 28)
    whole = predictor.sample_probs(x, 9, seed=4)
    assert whole.shape == (9, 23, 10)
    torch.testing.assert_close(whole.sum(-1), torch.ones(9, 23))
    chunks = torch.cat([predictor.sample_probs(x, 4, seed=4, sample_offset=0),
                        predictor.sample_probs(x, 5, seed=4, sample_offset=4)])
    assert torch.equal(whole, chunks)
    # same weight draws; only BLAS's float32 summation order may change with the batch size
    other_batch = SoftwarePredictor(predictor.model, batch_size=23).sample_probs(x, 9, seed=4)
    torch.testing.assert_close(whole, other_batch, rtol=1e-4, atol=1e-5)
    assert torch.equal(whole[:, :5], predictor.sample_probs(x[:5], 9, seed=4))
    assert not torch.equal(whole, predictor.sample_probs(x, 9, seed=5))


def test_streaming_summary_equals_direct_metrics(predictor: SoftwarePredictor) -> None:
    x = torch.randn(30, 1, 28, 28)
    probs = predictor.sample_probs(x, 12, seed=1)
    for chunk in (1, 5, 12):
        s = summarize(predictor, x, 12, seed=1, sample_chunk=chunk)
        assert s.n_samples == 12
        torch.testing.assert_close(s.mean_probs, metrics.mean_probs(probs), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(s.pe, metrics.predictive_entropy(probs), rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(s.ee, metrics.expected_entropy(probs), rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(s.mi, metrics.mutual_information(probs), rtol=1e-5, atol=1e-9)


def test_summary_memory_does_not_grow_with_samples() -> None:
    s = MonteCarloSummary.empty(4, 3)
    for _ in range(50):
        s.update(torch.softmax(torch.randn(2, 4, 3), -1))
    assert s.n_samples == 100 and s.log_sum.shape == (4, 3) and s.entropy_sum.shape == (4,)


def test_report_schema(data_root: Path, predictor: SoftwarePredictor) -> None:
    bench = build_benchmark(DataConfig(ambiguous_test_images=20), seed=0)
    progress: list[tuple[int, int]] = []
    result = evaluate(predictor, bench, EvalConfig(n_samples=6, sample_chunk=4), seed=2,
                      on_progress=lambda d, t: progress.append((d, t)))
    r = result.report
    assert progress[-1] == (18, 18)
    assert r["predictor"]["kind"] == "fp32" and r["n_samples"] == 6 and r["seed"] == 2
    assert set(r["in_distribution"]) >= {"accuracy", "nll", "brier", "ece", "mce"}
    unc = r["uncertainty"]
    assert set(unc["subsets"]) == {"clean", "ambiguous", "ood"}
    for subset in unc["subsets"].values():
        assert set(subset) >= {"pe", "ee", "mi"}
        assert 0 <= subset["mi"] <= subset["pe"] <= math.log(10) + 1e-9
    for key in ("auroc_aleatoric", "auroc_epistemic", "auroc_epistemic_pe"):
        assert 0 <= unc[key] <= 1
    assert r["memory"]["bits_per_weight"] == 64.0 and r["memory"]["compression_vs_fp32"] == 1.0
    assert r["memory"]["n_weights"] + r["memory"]["n_biases"] == 784 * 16 + 16 + 16 * 10 + 10
    assert sum(r["calibration"]["count"]) == 100
    json.dumps(r, allow_nan=False)  # strict JSON: empty bins are null, not NaN
    assert result.scores["ood_mi"].shape == (100,)
    # the report's AUROC is the metric applied to the stored per-example scores
    assert unc["auroc_epistemic"] == pytest.approx(metrics.auroc(
        torch.tensor(result.scores["clean_mi"]), torch.tensor(result.scores["ood_mi"])), abs=1e-6)
