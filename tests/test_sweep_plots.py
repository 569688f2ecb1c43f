"""Sweep plots: a store filled with known metrics, every plot kind written as PNG and PDF, swept
parameters held at their base values, the Pareto front against brute force, bad requests."""

import itertools
import json
import random
from pathlib import Path

import pytest

from bayesim.cli import main
from bayesim.plots.sweep import SweepResults, pareto_front
from bayesim.sweep.spec import expand, load_spec, spec_hash
from bayesim.sweep.store import ResultsStore

SPEC = """
name = "plots"
seeds = [0, 1]
seed_key = "hardware.chip_seed"
references = ["fp32", "digital"]
[base]
hardware.adc_bits = 8
hardware.read_noise_scale = 1.0
[[grid]]
"hardware.adc_bits" = [4, 8]
"hardware.read_noise_scale" = [0.5, 1.0, 2.0]
[[grid]]
"hardware.drift_time" = [0.0, 3600.0, 86400.0]
[[grid]]
"quant.strategy" = ["VPQ", "JQ"]
"quant.bits" = [2, 4]
[[grid]]
"eval.n_samples" = [10, 100]
[[grid]]
"hardware.alpha" = [5.0, 20.0]
[[plots]]
kind = "heatmap"
x = "hardware.adc_bits"
y = "hardware.read_noise_scale"
[[plots]]
kind = "bits"
[[plots]]
kind = "pareto"
by = "quant.strategy"
[[plots]]
kind = "drift"
metric = "accuracy"
[[plots]]
kind = "samples"
[[plots]]
kind = "feasibility"
[[plots]]                      # no point there (a sweep still running): skipped, not fatal
kind = "lines"
x = "hardware.adc_bits"
where = { "hardware.drift_time" = 7.0 }
"""


def _metrics(config: dict) -> dict:
    """Known, config-dependent metrics (the plots only read them)."""
    hw = config["hardware"]
    auroc = 0.9 - 0.01 * (8 - hw["adc_bits"]) - 0.001 * hw["drift_time"] / 3600
    if config["run"] == "fp32":
        auroc = 0.95
    return {"auroc_epistemic": auroc + 0.001 * hw["chip_seed"], "accuracy": auroc,
            "bits_per_weight": 64.0 if config["run"] == "fp32" else 2.0 * config["quant"]["bits"],
            "fraction_feasible": 1.0 / (1.0 + (hw["alpha"] or 10.0) / 10.0),
            "energy_per_inference_J": 1e-3 if config["run"] == "fp32" else
            1e-6 * 2.0 ** hw["adc_bits"]}


def _sweep(tmp_path: Path) -> Path:
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(SPEC)
    spec = load_spec(spec_path)
    points = expand(spec)
    out = tmp_path / "sweep"
    with ResultsStore(out / "results.sqlite", spec_hash(points)) as store:
        for point in points:
            store.record(point.config, _metrics(point.config), 1.0)
        store.export_csv(out / "results.csv")
    (out / "spec.json").write_text(json.dumps(spec.model_dump(mode="json")))
    return out


def test_spec_plots_write_png_and_pdf(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = _sweep(tmp_path)
    assert main(["plot", str(out)]) == 0
    assert "skipped: lines hardware.adc_bits" in capsys.readouterr().out.replace("\n", "")
    files = sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".pdf"))
    assert len(files) == 2 * 6
    for kind in ("heatmap", "bits", "pareto", "drift", "samples", "feasibility"):
        assert any(f.startswith(kind) and f.endswith(".pdf") for f in files), kind
    assert all((out / f).stat().st_size > 1000 for f in files)
    assert main(["plot", str(out), "--kind", "lines", "--x", "hardware.adc_bits",
                 "--where", "hardware.drift_time=3600.0"]) == 0


def test_unplotted_parameters_are_held_at_the_base(tmp_path: Path) -> None:
    results = SweepResults.load(_sweep(tmp_path))
    rows, note = results.select(["config.hardware.adc_bits", "config.hardware.read_noise_scale"])
    assert note == ""
    assert len(rows) == 2 * 3 * 2  # the heatmap grid, two chip seeds; no drift, bits, S or α
    assert {r["config.hardware.drift_time"] for r in rows} == {"0.0"}
    assert {r["config.quant.bits"] for r in rows} == {"4"}
    held, _ = results.select(["config.hardware.adc_bits"], {"hardware.drift_time": 3600.0})
    assert {r["config.hardware.drift_time"] for r in held} == {"3600.0"} and len(held) == 2
    references = dict((label, mean) for label, mean, _ in
                      results.references("metric.auroc_epistemic"))
    assert references["fp32 software"] == pytest.approx(0.95)
    assert set(references) == {"fp32 software", "digital JQ-4"}


def test_pareto_front_matches_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(20):
        points = [(float(rng.choice([2, 4, 6, 8, 16])), round(rng.random(), 2), i)
                  for i in range(15)]
        for lower in (False, True):
            sign = -1 if lower else 1
            dominated = {p[2] for p, q in itertools.product(points, points)
                         if q[0] <= p[0] and sign * q[1] >= sign * p[1]
                         and (q[0] < p[0] or sign * q[1] > sign * p[1])}
            front = pareto_front(points, lower)
            # ties on both values keep one representative
            assert {(p[0], p[1]) for p in front} == \
                {(p[0], p[1]) for p in points if p[2] not in dominated}
            assert [p[0] for p in front] == sorted(p[0] for p in front)


@pytest.mark.parametrize(("args", "message"), [
    (["--kind", "lines", "--x", "hardware.adc_bits", "--metric", "bogus"], "no metric 'bogus'"),
    (["--kind", "lines", "--x", "hardware.nothing"], "no config 'hardware.nothing'"),
    (["--kind", "heatmap", "--x", "hardware.adc_bits"], "needs --y"),
    (["--kind", "lines"], "needs --x"),
    (["--kind", "pie"], "plot kind must be one of"),
    (["--kind", "lines", "--x", "hardware.adc_bits", "--where", "hardware.adc_bits=5"],
     "no point has hardware.adc_bits = 5"),
])
def test_bad_plot_requests_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  args: list[str], message: str) -> None:
    out = _sweep(tmp_path)
    before = sorted(out.iterdir())
    assert main(["plot", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert sorted(out.iterdir()) == before
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert "no results.csv" in capsys.readouterr().err
    (out / "spec.json").unlink()
    assert main(["plot", str(out)]) == 2
    assert "lists no [[plots]]" in capsys.readouterr().err


def test_the_energy_preset_plots_auroc_against_energy(tmp_path: Path) -> None:
    """`--kind energy` is the Pareto plot with the cost model's energy per inference on a log
    axis; the fp32 reference (1 mJ here) is drawn as a star."""
    from bayesim.plots.sweep import plot

    out = _sweep(tmp_path)
    paths = plot(out, "energy", over=["hardware.adc_bits"])
    assert paths and all(p.stat().st_size > 1000 for p in paths)
    assert any("energy_per_inference_J" in p.name for p in paths)


def test_a_held_card_path_stays_one_file_name(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from bayesim.plots.sweep import _stem

    stem = _stem(SimpleNamespace(out_dir=tmp_path), "lines", "accuracy",
                 where={"hardware.device": "docs/results/my card.toml",
                        "hardware.drift_time": 3600.0})
    assert stem.parent == tmp_path
    assert stem.name == ("lines_accuracy_hardware-device_docs-results-my-card-toml_"
                         "hardware-drift_time_3600-0")
