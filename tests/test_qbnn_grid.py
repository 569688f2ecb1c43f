"""The quantization grid is an ordinary sweep spec: the shipped spec holds the paper's grid and its
ablations, a small copy runs, resumes, tabulates and plots, and QAT gives the same model whether it
fine-tunes a model trained in this process or the same model read back from its checkpoint."""

import csv
from pathlib import Path

import pytest
import torch

from bayesim.cli import main
from bayesim.config import ExperimentConfig, apply_overrides, validate
from bayesim.pipeline import evaluate_model, load_model, quantize_trained, train_experiment
from bayesim.sweep.spec import expand, load_spec
from tests.scripts import experiment_module

REPO = Path(__file__).resolve().parents[1]


def tables_module():
    return experiment_module("qbnn_tables")


def test_the_shipped_grid_holds_the_paper_grid_and_its_ablations() -> None:
    points = expand(load_spec(REPO / "experiments" / "seed_qbnn.toml"))
    tables = tables_module()
    keys = [tables.point_keys({f"config.{k}": str(v) for k, v in _flat(p.config).items()})
            for p in points]
    assert len({tuple(k.values()) for k in keys}) == len(points) == 132
    # fp32; VPQ/SPQ/JQ x 5 widths x PTQ/QAT; uniform σ under JQ and VPQ at 3 and 4 bits, PTQ and
    # QAT; plain ReLU's own fp32 model and its JQ at 3 and 4 bits, PTQ and QAT: the points of the
    # deleted dedicated engine (bayesim/sweep/qbnn.py at d2e1cd5), each on seeds 0, 1, 2
    modes = ("PTQ", "QAT")
    expected = {("base", "fp32", 32, "-"), ("plain-relu", "fp32", 32, "-")}
    expected |= {("grid", s, b, m) for s in ("VPQ", "SPQ", "JQ") for b in (2, 3, 4, 6, 8)
                 for m in modes}
    expected |= {(g, s, b, m) for g, s in (("uniform-sigma", "JQ"), ("uniform-sigma-vpq", "VPQ"),
                                           ("plain-relu", "JQ")) for b in (3, 4) for m in modes}
    seeds = {}
    for k in keys:
        seeds.setdefault((k["group"], k["strategy"], k["bits"], k["mode"]), set()).add(k["seed"])
    assert set(seeds) == expected
    assert all(s == {0, 1, 2} for s in seeds.values())
    qat = {p.config["quant"]["qat_epochs"] for p in points if p.config["quant"]["qat_epochs"]}
    assert qat == {5}


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


SPEC = """
name = "tiny-qbnn"
run = "digital"
seeds = [0]
references = ["fp32"]

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
[base.quant]
strategy = "JQ"
bits = 4
qat_epochs = 1

[[grid]]
"quant.strategy" = ["JQ", "VPQ"]
"quant.bits" = [2, 4]
"quant.qat_epochs" = [0, 1]

[[grid]]
"quant.sigma_quantizer" = ["uniform"]
"quant.bits" = [4]

[[grid]]
"model.activation" = ["relu"]
"quant.strategy" = ["fp", "JQ"]

[[plots]]
kind = "bits"
metric = "accuracy"

[[plots]]
kind = "bits"
metric = "accuracy"
where = { "quant.qat_epochs" = 0 }
"""


def test_a_small_grid_runs_resumes_tabulates_and_plots(data_root: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 0, capsys.readouterr().err
    assert "12 points done, 0 failed" in capsys.readouterr().out
    tables = tables_module()
    assert tables.main([str(out), "--points", str(tmp_path / "points.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "points.csv").open()))
    keys = {(r["group"], r["strategy"], r["bits"], r["mode"]) for r in rows}
    assert {k for k in keys if k[0] != "grid"} == {
        ("base", "fp32", "32", "-"), ("uniform-sigma", "JQ", "4", "QAT"),
        ("plain-relu", "fp32", "32", "-"), ("plain-relu", "JQ", "4", "QAT")}
    assert len(rows) == 12 and len(keys) == 12
    jq2 = next(r for r in rows if r["strategy"] == "JQ" and r["bits"] == "2")
    assert float(jq2["compression_vs_fp32"]) == 16.0
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == 12 and "| plain-relu | fp32 | 32 | - | 1 |" in table
    assert main(["plot", str(out)]) == 0
    for held in ("", "_quant-qat_epochs_0"):  # a held value gets its own file
        assert (out / f"bits_accuracy_quant-bits_by_quant-strategy{held}.png").stat().st_size
    # resume: every point is finished, nothing runs again (a point run again would store its
    # new wall time in the seconds column)
    before = (out / "results.csv").read_text()
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 0
    assert "12 points done, 0 failed" in capsys.readouterr().out
    assert (out / "results.csv").read_text() == before


def test_qat_of_a_model_in_memory_equals_qat_of_its_checkpoint(
        data_root: Path, tmp_path: Path, tiny_overrides: list[str]) -> None:
    """The grid fine-tunes models read back from the model cache, the demo the one it has just
    trained and evaluated (which moved its generator): both must give the same QAT model."""
    config = validate(ExperimentConfig, apply_overrides({}, [
        *tiny_overrides, "quant.strategy='JQ'", "quant.bits=4", "quant.qat_epochs=1"]), "test")
    trained = train_experiment(config, tmp_path / "fp32", progress=False)
    evaluate_model(trained.model, trained.benchmark, config, progress=False)  # moves the stream
    in_memory, _ = quantize_trained(trained.model, trained.benchmark, config, tmp_path / "a",
                                    str(trained.checkpoint), progress=False)
    loaded, _ = load_model(trained.checkpoint)
    from_disk, _ = quantize_trained(loaded, trained.benchmark, config, tmp_path / "b",
                                    str(trained.checkpoint), progress=False)
    a, b = in_memory.state_dict(), from_disk.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
