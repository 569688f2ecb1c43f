"""What a report is made of before it is written (bayesim.reports, bayesim.provenance), the
effective-sample-size fields of a chip, the digests that key cached references, and the human
time units of the device figure."""

import math
from pathlib import Path

import pytest
import torch

from bayesim import __version__
from bayesim.data.sources import tree_digest
from bayesim.machine.report import sampling_report
from bayesim.provenance import code_digest, provenance
from bayesim.reports import AS_GIVEN, finished, rounded
from bayesim.units import human_time


def test_measured_floats_are_rounded_and_inputs_kept_as_given() -> None:
    report = {"in_distribution": {"accuracy": 0.123456789, "n": 1000},
              "uncertainty": {"auroc": [0.98765432101, None, float("nan")]},
              "hardware": {"config": {"drift_time": 31557601.0}, "w2": 0.5123456789,
                           "periphery": {"inp_res": 0.003937007874015748}},
              "predictor": {"quant": {"lr": 0.000123456789}}}
    out = rounded(report)
    assert out["in_distribution"] == {"accuracy": 0.123457, "n": 1000}
    assert out["uncertainty"]["auroc"][:2] == [0.987654, None]
    assert math.isnan(out["uncertainty"]["auroc"][2])
    assert out["hardware"]["w2"] == 0.512346
    assert out["hardware"]["config"]["drift_time"] == 31557601.0
    assert out["hardware"]["periphery"]["inp_res"] == 0.003937007874015748
    assert out["predictor"] == report["predictor"]
    assert {"config", "predictor", "data", "provenance"} <= set(AS_GIVEN)


def test_a_finished_report_carries_its_provenance() -> None:
    stamp = finished({"n_samples": 3})["provenance"]
    assert stamp["version"] == __version__
    assert stamp["written_utc"].endswith("+00:00")
    assert stamp == {**provenance(), "written_utc": stamp["written_utc"]}
    if stamp["git_commit"] is not None:
        assert len(stamp["git_commit"]) == 40 and isinstance(stamp["git_dirty"], bool)
    assert len(code_digest()) == 64


def test_ess_of_independent_samples_is_near_s_and_m3_states_bound_the_posterior_draws() -> None:
    """Independent samples: Geyer's ESS median within 25 % of S (it is not capped, so some
    inputs exceed S); a chip that cycles through R = 8 copies holds min(S, R) posterior draws."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(60, 400, 10, generator=generator)
    probs = torch.softmax(logits, -1)
    report = sampling_report(probs, 0.0)
    assert abs(report["ess_median"] / 60 - 1) < 0.25
    assert 0 < report["ess_fraction_above_s"] < 1
    assert report["posterior_draws"] is None
    assert sampling_report(probs, 0.0, distinct_states=8)["posterior_draws"] == 8
    assert sampling_report(probs[:5], 0.0, distinct_states=8)["posterior_draws"] == 5


def test_the_digest_of_an_idx_directory_changes_with_its_content(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"one")
    before = tree_digest(tmp_path)
    (tmp_path / "a").write_bytes(b"two")
    assert tree_digest(tmp_path) != before
    (tmp_path / "a").write_bytes(b"one")
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("seconds,text", [
    (0, "0 s"), (0.02, "20 ms"), (20, "20 s"), (60, "1 min"), (3600, "1 h"), (86400, "1 day"),
    (2 * 86400, "2 days"), (365.25 * 86400, "1 year"), (3.2e7, "1.01 years"),
])
def test_human_time(seconds: float, text: str) -> None:
    assert human_time(seconds) == text
