"""Running a general sweep spec: model reuse, resume, failures recorded, worker-count invariance."""

import csv
import json
from pathlib import Path

import pytest

from bayesim.cli import main
from bayesim.sweep.runner import STORE_NAME
from bayesim.sweep.spec import expand, load_spec, spec_hash
from bayesim.sweep.store import ResultsStore

SPEC = """
name = "tiny"
run = "analog"
seeds = [0]
[base]
model = {{ arch = "mlp", hidden = [16] }}
train = {{ epochs = 1, batch_size = 64 }}
eval = {{ n_samples = 3, sample_chunk = 3 }}
data = {{ ambiguous_test_images = 20, ood_limit = 40, test_limit = 40 }}
hardware = {{ decomposition_inputs = 0, device = "pcm_ibm_2020" }}
[grid]
"hardware.adc_bits" = [4, 8]
"hardware.alpha" = {alphas}
"""


def _spec(tmp_path: Path, alphas: str = "[0.5]") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(alphas=alphas))
    return path


def test_sweep_runs_reuses_the_model_resumes_and_records_failures(
        data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path, "[0.5, 1e9]")  # α = 1e9 µS/unit cannot fit: those points fail
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 0, capsys.readouterr().err
    points = expand(load_spec(spec))
    with ResultsStore(out / STORE_NAME, spec_hash(points)) as store:
        done, failed = store.rows("done"), store.rows("failed")
    assert len(done) == 2 and len(failed) == 2
    assert all("MappingError" in row["error"] for row in failed)
    assert len(list((out / "cache" / "models").glob("*/model.safetensors"))) == 1  # one model
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["config.hardware.adc_bits"] for r in rows} == {"4", "8"}
    first = {r["point_id"]: r["metrics"] for r in done}
    # a second run skips the finished points (and retries the failed ones, which fail again)
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 0
    with ResultsStore(out / STORE_NAME, spec_hash(points)) as store:
        assert {r["point_id"]: r["metrics"] for r in store.rows("done")} == first
        assert len(store.rows()) == 4


def test_executors_store_the_same_numbers(data_root: Path, tmp_path: Path) -> None:
    """One local worker, two local workers and a Dask LocalCluster of two: identical values."""
    spec = _spec(tmp_path)
    results = []
    for name, flags in (("w1", ["--workers", "1"]), ("w2", ["--workers", "2"]),
                        ("dask", ["--dask-local", "2"])):
        out = tmp_path / name
        assert main(["sweep", str(spec), "--out", str(out), "-q", *flags]) == 0
        with ResultsStore(out / STORE_NAME, spec_hash(expand(load_spec(spec)))) as store:
            results.append({r["point_id"]: r["metrics"] for r in store.rows("done")})
    assert results[0] == results[1] == results[2] and len(results[0]) == 2


def test_remote_scheduler_matches_the_local_executor(data_root: Path, tmp_path: Path) -> None:
    """--scheduler tcp://HOST:PORT: a separate `dask scheduler` and `dask worker` process (as on
    a user's cluster) store the same values as one local worker."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    dask = shutil.which("dask", path=str(Path(sys.executable).parent))
    assert dask is not None
    info = tmp_path / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(info)],
                              start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1",
                                       "--nworkers", "1", "--no-dashboard"],
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=env))
        spec = _spec(tmp_path)
        results = []
        for name, flags in (("remote", ["--scheduler", address]), ("local", [])):
            out = tmp_path / name
            assert main(["sweep", str(spec), "--out", str(out), "-q", *flags]) == 0
            with ResultsStore(out / STORE_NAME, spec_hash(expand(load_spec(spec)))) as store:
                results.append({r["point_id"]: r["metrics"] for r in store.rows("done")})
        assert results[0] == results[1] and len(results[0]) == 2
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def test_bad_sweep_input_exits_2(data_root: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('[grid]\n"hardware.adc_bitz" = [4]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 2
    assert "hardware.adc_bitz" in capsys.readouterr().err
    assert not out.exists()
    good = _spec(tmp_path)
    assert main(["sweep", str(good), "--out", str(out), "-q", "--workers", "0"]) == 2
    assert main(["sweep", str(good), "--out", str(out), "-q", "--dask-local", "1",
                 "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "either" in capsys.readouterr().err
    empty = tmp_path / "empty.toml"
    empty.write_text(SPEC.format(alphas="[]"))
    assert main(["sweep", str(empty), "--out", str(out), "-q"]) == 2
    assert "'hardware.alpha' is empty" in capsys.readouterr().err
    assert not out.exists()
    other = tmp_path / "other.toml"
    other.write_text(SPEC.format(alphas="[0.25]"))
    assert main(["sweep", str(good), "--out", str(out), "-q"]) == 0
    stored = (out / "results.csv").read_bytes(), (out / "spec.json").read_bytes()
    assert main(["sweep", str(other), "--out", str(out), "-q"]) == 2  # another spec's store
    assert "different sweep spec" in capsys.readouterr().err
    # nothing was touched: the store still opens with its points, the exports are unchanged
    with ResultsStore(out / STORE_NAME, spec_hash(expand(load_spec(good)))) as store:
        assert len(store.rows("done")) == 2
    assert ((out / "results.csv").read_bytes(), (out / "spec.json").read_bytes()) == stored


def test_references_chip_seeds_and_several_grids(data_root: Path, tmp_path: Path) -> None:
    """fp32 and digital references run once (chip seeds do not retrain), a point in two grids
    runs once, and one model is trained for all of them."""
    spec = tmp_path / "spec.toml"
    text = SPEC.format(alphas="[0.5]").replace('seeds = [0]', 'seeds = [0, 1]\nseed_key = '
                                                '"hardware.chip_seed"\nreferences = ["fp32", '
                                                '"digital"]')
    text = text.replace("[grid]", "quant = { strategy = \"JQ\", bits = 4, qat_epochs = 0 }\n"
                                  "[[grid]]")
    text += '[[grid]]\n"hardware.adc_bits" = [8, 6]\n"hardware.alpha" = [0.5]\n'
    spec.write_text(text)
    points = expand(load_spec(spec))
    assert [p.run for p in points].count("analog") == 3 * 2
    assert [p.run for p in points][:2] == ["fp32", "digital"]
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 8 and all(r["status"] == "done" for r in rows)
    by_run = {run: [r for r in rows if r["config.run"] == run] for run in ("fp32", "digital")}
    assert float(by_run["fp32"][0]["metric.bits_per_weight"]) == 64.0
    assert float(by_run["digital"][0]["metric.bits_per_weight"]) < 64.0
    assert "metric.fraction_feasible" in rows[-1] and rows[0]["metric.fraction_feasible"] == ""
    energy = {r["config.run"]: float(r["metric.energy_per_inference_J"]) for r in rows}
    assert energy["fp32"] > energy["digital"] > 0 and energy["analog"] > 0  # cost columns
    assert len(list((out / "cache" / "models").glob("*/model.safetensors"))) == 1
    assert json.loads((out / "spec.json").read_text())["references"] == ["fp32", "digital"]
    # another sweep given this cache reuses its trained model (not retrained, not rewritten) and
    # adds only the quantized model its own quant settings need
    models = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("model.safetensors")}
    other = tmp_path / "other"
    assert main(["sweep", str(_spec(tmp_path, "[0.7]")), "--out", str(other), "-q", "--cache",
                 str(out / "cache")]) == 0
    after = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("model.safetensors")}
    assert {p: after[p] for p in models} == models
    assert len(list((out / "cache" / "models").glob("*/model.safetensors"))) == 1
    assert not (other / "cache").exists()


def _finished(store_path: Path, spec: Path) -> int:
    if not store_path.exists():
        return 0
    with ResultsStore(store_path, spec_hash(expand(load_spec(spec)))) as store:
        return len(store.finished_ids())


def _sweep(spec: Path, out: Path, kill_delay: float | None) -> None:
    """``bayesim sweep`` in its own process group; SIGKILL the whole group ``kill_delay`` s after
    its first new point is committed (None: let it finish)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    before = _finished(out / STORE_NAME, spec)
    proc = subprocess.Popen([sys.executable, "-m", "bayesim.cli", "sweep", str(spec), "--out",
                             str(out), "-q"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_delay is None:
        assert proc.wait(timeout=600) == 0
        return
    deadline = time.monotonic() + 300
    while (_finished(out / STORE_NAME, spec) <= before and proc.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)
    time.sleep(kill_delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_sweep_killed_three_times_resumes_to_the_uninterrupted_result(
        data_root: Path, tmp_path: Path) -> None:
    import random

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(alphas="[0.5, 0.7, 0.9]").replace(
        "n_samples = 3, sample_chunk = 3", "n_samples = 30, sample_chunk = 10"))  # 6 points
    rng = random.Random(11)
    killed = tmp_path / "killed"
    counts = []
    for _ in range(3):
        _sweep(spec, killed, kill_delay=rng.uniform(0.0, 0.05))
        counts.append(_finished(killed / STORE_NAME, spec))
    assert 0 < counts[0] < 6, counts  # the first kill landed inside the sweep
    _sweep(spec, killed, kill_delay=None)
    clean = tmp_path / "clean"
    _sweep(spec, clean, kill_delay=None)
    key = spec_hash(expand(load_spec(spec)))
    with ResultsStore(killed / STORE_NAME, key) as a, ResultsStore(clean / STORE_NAME, key) as b:
        rows_a, rows_b = a.rows(), b.rows()
    ids = [r["point_id"] for r in rows_a]
    assert len(ids) == len(set(ids)) == 6 and all(r["status"] == "done" for r in rows_a)
    assert {r["point_id"]: r["metrics"] for r in rows_a} == \
        {r["point_id"]: r["metrics"] for r in rows_b}


def test_shared_runs_train_one_codebook_and_evaluate_it_three_ways(data_root: Path,
                                                                   tmp_path: Path) -> None:
    """shared, shared_digital and shared_analog points of one seed reuse one shared-Gaussian
    model; the mean-field reference trains its own; the rows carry the compression and the
    chip's device states."""
    spec = tmp_path / "spec.toml"
    text = SPEC.format(alphas="[0.5]").replace('run = "analog"', 'run = "shared"\nreferences = '
                                               '["fp32"]')
    text = text.replace("[grid]", 'sharing = { n_clusters = 6, min_cluster_size = 2, '
                                  'pretrain_epochs = 1, finetune_epochs = 1, epochs = 1 }\n'
                                  'quant = { strategy = "JQ", bits = 4, qat_epochs = 0 }\n'
                                  '[[grid]]')
    text = text.split("[[grid]]")[0] + '[[grid]]\n"sharing.gradient" = [true]\n'
    spec.write_text(text)
    out = tmp_path / "out"
    for run in ("shared", "shared_digital", "shared_analog"):
        (tmp_path / "run.toml").write_text(text.replace('run = "shared"', f'run = "{run}"'))
        assert main(["sweep", str(tmp_path / "run.toml"), "--out", str(out / run), "-q",
                     "--cache", str(out / "cache")]) == 0
    rows = {run: list(csv.DictReader((out / run / "results.csv").open()))
            for run in ("shared", "shared_digital", "shared_analog")}
    assert len(list((out / "cache" / "shared").glob("*/shared.safetensors"))) == 1
    shared = [r for r in rows["shared"] if r["config.run"] == "shared"][0]
    reference = [r for r in rows["shared"] if r["config.run"] == "fp32"][0]
    assert shared["status"] == "done" and reference["status"] == "done"
    assert int(shared["metric.trainable_parameters"]) < int(
        reference["metric.trainable_parameters"])
    assert float(shared["metric.stored_bytes"]) < float(reference["metric.stored_bytes"])
    digital = [r for r in rows["shared_digital"] if r["config.run"] == "shared_digital"][0]
    assert float(digital["metric.stored_bytes"]) < float(shared["metric.stored_bytes"])
    analog = [r for r in rows["shared_analog"] if r["config.run"] == "shared_analog"][0]
    assert analog["status"] == "done", analog
    assert int(analog["metric.device_state_pairs"]) >= int(analog["metric.n_gaussians"])
