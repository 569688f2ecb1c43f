"""The sweep results store: identity of points, atomic commits, resume after SIGKILL, export."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bayesim.errors import ConfigError
from bayesim.sweep.store import ResultsStore, point_id

CONFIGS = [{"hardware": {"adc_bits": b, "mapping": m}, "seed": s}
           for b in (4, 6, 8) for m in ("M1", "M2") for s in (0, 1)]


def metrics_of(config: dict) -> dict:
    """A deterministic stand-in for a pipeline run."""
    value = config["hardware"]["adc_bits"] * 0.1 + config["seed"] * 0.01
    return {"accuracy": round(value, 6), "mapping": config["hardware"]["mapping"]}


def test_point_identity_is_the_resolved_config() -> None:
    a = {"x": 1, "y": {"b": 2, "a": [1, 2]}}
    b = {"y": {"a": [1, 2], "b": 2}, "x": 1}
    assert point_id(a) == point_id(b)
    assert point_id(a) != point_id({**a, "x": 2})


def test_record_pending_failures_and_spec_check(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    with ResultsStore(path, "spec-1") as store:
        assert store.pending(CONFIGS) == CONFIGS
        store.record(CONFIGS[0], metrics_of(CONFIGS[0]), 1.5)
        store.record_failure(CONFIGS[1], "ValueError: boom")
        assert store.pending(CONFIGS) == CONFIGS[1:]  # the failed point is retried
        store.record_failure(CONFIGS[0], "late failure")  # never overwrites a finished point
        store.record(CONFIGS[1], metrics_of(CONFIGS[1]))  # a retry that succeeds replaces it
        rows = store.rows()
    assert [r["status"] for r in rows] == ["done", "done"]
    assert rows[0]["metrics"] == metrics_of(CONFIGS[0]) and rows[0]["seconds"] == 1.5
    with pytest.raises(ConfigError, match="different sweep spec"):
        ResultsStore(path, "spec-2")
    with ResultsStore(path, "spec-1") as again:  # reopening keeps everything
        assert len(again.finished_ids()) == 2
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="not a bayesim results store"):
        ResultsStore(junk, "spec-1")


def test_csv_export(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.sqlite", "s") as store:
        for config in CONFIGS[:3]:
            store.record(config, metrics_of(config))
        store.record_failure(CONFIGS[3], "RuntimeError: x")
        out = store.export_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    assert rows[0]["config.hardware.adc_bits"] == "4" and rows[0]["metric.mapping"] == "M1"
    assert rows[3]["status"] == "failed" and rows[3]["error"] == "RuntimeError: x"
    assert rows[3]["metric.accuracy"] == ""


_WORKER = """
import json, sys, time
from bayesim.sweep.store import ResultsStore
sys.path.insert(0, {tests!r})
from test_store import CONFIGS, metrics_of
store = ResultsStore(sys.argv[1], "kill-test")
for config in store.pending(CONFIGS):
    time.sleep(0.05)  # the work of a point
    store.record(config, metrics_of(config), 0.05)
print("complete")
"""


def _count(path: Path) -> int:
    if not path.exists():
        return 0
    with ResultsStore(path, "kill-test") as store:
        return len(store.finished_ids())


def _run_worker(path: Path, kill_delay: float | None) -> bool:
    """Run the worker to the end (``kill_delay`` None), or SIGKILL it ``kill_delay`` s after it
    committed its first new point — a moment inside the sweep whatever the machine's speed."""
    code = _WORKER.format(tests=str(Path(__file__).parent))
    before = _count(path)
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True)
    if kill_delay is None:
        out, _ = proc.communicate(timeout=120)
        return "complete" in out
    deadline = time.monotonic() + 60
    while _count(path) <= before and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(kill_delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return False


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Killed three times at random moments and resumed: every point exactly once, with the
    values of an uninterrupted run."""
    rng = random.Random(7)
    killed = tmp_path / "killed.sqlite"
    finished = []
    for _ in range(3):
        _run_worker(killed, kill_delay=rng.uniform(0.0, 0.08))  # within the next point or two
        finished.append(_count(killed))
    assert 0 < finished[-1] < len(CONFIGS), finished  # the kills landed inside the sweep
    assert _run_worker(killed, kill_delay=None)
    clean = tmp_path / "clean.sqlite"
    assert _run_worker(clean, kill_delay=None)
    with ResultsStore(killed, "kill-test") as a, ResultsStore(clean, "kill-test") as b:
        rows_a, rows_b = a.rows(), b.rows()
    ids = [r["point_id"] for r in rows_a]
    assert len(ids) == len(set(ids)) == len(CONFIGS)
    assert all(r["status"] == "done" for r in rows_a)
    by_id = {r["point_id"]: r["metrics"] for r in rows_b}
    assert {r["point_id"]: r["metrics"] for r in rows_a} == by_id
    assert json.dumps(sorted(by_id)) == json.dumps(sorted(point_id(c) for c in CONFIGS))


def test_parquet_export_round_trips(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    with ResultsStore(tmp_path / "r.sqlite", "s") as store:
        store.record(CONFIGS[0], metrics_of(CONFIGS[0]))
        store.record_failure(CONFIGS[1], "ValueError: boom")
        table = pq.read_table(store.export_parquet(tmp_path / "r.parquet"))
        column = {name: table.column(name).to_pylist() for name in table.column_names}
        assert column["status"] == ["done", "failed"]
        assert column["error"][1] == "ValueError: boom"
        assert column["metric.accuracy"] == [metrics_of(CONFIGS[0])["accuracy"], None]
        flat = store.flat_rows()
        assert column["config.hardware.adc_bits"] == [r["config.hardware.adc_bits"] for r in flat]
