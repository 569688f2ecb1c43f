import csv
from pathlib import Path

import pytest

from bayesim.cli import main
from bayesim.errors import ConfigError
from bayesim.sweep.qbnn import load_grid

SPEC = """
seeds = [0]
strategies = ["JQ", "VPQ"]
bits = [2, 4]
modes = ["PTQ"]
qat_epochs = 1

[base.data]
ambiguous_test_images = 20
[base.model]
arch = "mlp"
hidden = [16]
activation = "relu6"
[base.train]
epochs = 1
batch_size = 64
[base.eval]
n_samples = 3

[[ablations]]
name = "uniform-sigma"
modes = ["PTQ", "QAT"]
set = ["quant.sigma_quantizer='uniform'"]

[[ablations]]
name = "plain-relu"
model_set = ["model.activation='relu'"]
"""


def test_grid_runs_resumes_and_plots(data_root: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 0, capsys.readouterr().err
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    keys = {(r["group"], r["strategy"], r["bits"], r["mode"]) for r in rows}
    assert {("grid", "JQ", "2", "PTQ"), ("grid", "VPQ", "4", "PTQ"), ("base", "fp32", "32", "-"),
            ("uniform-sigma", "JQ", "4", "QAT"), ("uniform-sigma", "JQ", "4", "PTQ"),
            ("plain-relu", "JQ", "4", "QAT"),
            ("plain-relu", "fp32", "32", "-")} <= keys
    points = [(r["group"], r["strategy"], r["bits"], r["mode"], r["seed"]) for r in rows]
    assert len(points) == len(set(points))  # the shared fp32 model is one row, not one per family
    jq2 = next(r for r in rows if r["strategy"] == "JQ" and r["bits"] == "2")
    assert float(jq2["compression_vs_fp32"]) == 16.0
    for name in ("results.md", "metrics_vs_bits.png", "uncertainty_vs_bits.png"):
        assert (out / name).stat().st_size > 0
    # resume: every point exists, nothing is recomputed (reports keep their modification time)
    reports = sorted(out.glob("points/*/report.json"))
    stamps = [p.stat().st_mtime_ns for p in reports]
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 0
    assert [p.stat().st_mtime_ns for p in reports] == stamps
    assert "training" not in capsys.readouterr().out


def test_grid_spec_errors(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("bits = [4]\n[base.model]\narch = 'vgg'\n")
    with pytest.raises(ConfigError, match="model.arch"):
        load_grid(spec)
    spec.write_text("strategies = ['XQ']\n")
    with pytest.raises(ConfigError, match="strategies"):
        load_grid(spec)
    spec.write_text("[[ablations]]\nname = 'a'\nbits = [0]\n")
    with pytest.raises(ConfigError, match="ablations.0.bits.0"):
        load_grid(spec)
