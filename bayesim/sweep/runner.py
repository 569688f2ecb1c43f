"""Running a sweep: every pending point of a spec through the pipeline, results into the store.

A point trains (or reuses) its fp32 model, quantizes it when its ``quant.strategy`` is not
``fp`` and it runs a digital or analog predictor, then evaluates the predictor the spec names
(``run``: ``fp32``, ``digital`` or ``analog`` = ``bayesim simulate``). Models are cached under
``OUT/cache`` by the hash of what made them (data, model, training, seed; plus the quantization),
so points that share a model reuse it; a file lock keeps two workers from training the same one.

Points run in local worker processes (``workers`` of them) or on Dask workers (a LocalCluster or
a user's cluster), with one thread each, so a point's numbers do
not depend on how many points run beside it (BLAS rounding and training depend on the thread
count). The parent is the store's only writer and commits each point when it finishes.
"""

import fcntl
import hashlib
import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bayesim.atomic import write_bytes
from bayesim.errors import ConfigError
from bayesim.reports import sweep_row
from bayesim.sweep.spec import Point, SweepSpec, expand, spec_hash
from bayesim.sweep.store import ResultsStore, canonical_json

STORE_NAME = "results.sqlite"
CSV_NAME = "results.csv"
PARQUET_NAME = "results.parquet"
SPEC_NAME = "spec.json"
"""The validated spec, next to the results (the plots read its base and its [[plots]])."""


def _key(config: dict[str, Any], parts: tuple[str, ...]) -> str:
    chosen = {p: config[p] for p in parts}
    return hashlib.sha256(canonical_json(chosen).encode()).hexdigest()[:24]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached(directory: Path, name: str, build: Callable[[], Any]) -> Path:
    """``directory/name``, built by ``build()`` unless it exists; a file lock keeps two workers
    from building the same one."""
    with _locked(directory.with_suffix(".lock")):
        if not (directory / name).exists():
            build()
    return directory / name


def run_point(config: dict[str, Any], cache: str) -> dict[str, Any]:
    """One point of a sweep (in a worker process): ``config`` is an experiment config plus
    ``run``, the predictor to evaluate; returns its metrics."""
    from bayesim.config import ExperimentConfig
    from bayesim.data.dirty import build_benchmark
    from bayesim.pipeline import (
        CHECKPOINT_NAME,
        SHARED_CHECKPOINT_NAME,
        evaluate_model,
        load_model,
        quantize_trained,
        share_experiment,
        simulate_model,
        train_experiment,
    )

    run = config["run"]
    experiment = ExperimentConfig.model_validate({k: v for k, v in config.items() if k != "run"})
    benchmark = build_benchmark(experiment.data, experiment.seed)
    if run.startswith("shared"):  # a shared-Gaussian model, trained once per its config
        model_dir = Path(cache) / "shared" / _key(config, ("data", "model", "train", "sharing",
                                                           "seed"))
        model, _ = load_model(_cached(model_dir, SHARED_CHECKPOINT_NAME, lambda: share_experiment(
            experiment, model_dir, progress=False)))
        extra = {"n_gaussians": model.n_gaussians}
    else:
        model_dir = Path(cache) / "models" / _key(config, ("data", "model", "train", "seed"))
        trained = _cached(model_dir, CHECKPOINT_NAME,
                          lambda: train_experiment(experiment, model_dir, progress=False))
        model, _ = load_model(trained)
        extra = {}
        if run != "fp32" and experiment.quant.strategy != "fp":
            quant_dir = Path(cache) / "quantized" / _key(config, ("data", "model", "train",
                                                                  "seed", "quant"))
            quantized = _cached(quant_dir, CHECKPOINT_NAME,
                                lambda: quantize_trained(model, benchmark, experiment, quant_dir,
                                                         str(trained), progress=False))
            model, _ = load_model(quantized)
    if run in ("analog", "shared_analog"):
        result = simulate_model(model, benchmark, experiment, progress=False)
    else:  # fp32, digital, shared, shared_digital: software
        result = evaluate_model(model, benchmark, experiment, progress=False,
                                quantized=run == "shared_digital")
    return {**sweep_row(result.report), **extra}


def _guarded(config: dict[str, Any], cache: str) -> tuple[str, Any, float]:
    """run_point that never raises: ('done', metrics, s) or ('failed', error text, s)."""
    start = time.perf_counter()
    try:
        return "done", run_point(config, cache), time.perf_counter() - start
    except Exception as exc:  # a failed point is recorded, not fatal
        last = traceback.extract_tb(exc.__traceback__)[-1]
        text = f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})"
        return "failed", text, time.perf_counter() - start


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)
    import numba

    numba.set_num_threads(1)


def run_sweep(spec: SweepSpec, out: str | os.PathLike[str], workers: int = 1,
              on_progress: Callable[[int, int], None] | None = None,
              scheduler: str | None = None, dask_local: int | None = None,
              cache: str | os.PathLike[str] | None = None) -> ResultsStore:
    """Run the pending points of ``spec`` into ``OUT/results.sqlite`` and return the (open)
    store, exported to ``OUT/results.csv`` and ``OUT/results.parquet``. Points run in
    ``workers`` local worker processes, or on Dask: a LocalCluster of ``dask_local`` one-thread
    workers, or the cluster whose scheduler listens at ``scheduler`` (``tcp://HOST:PORT``; its
    workers need bayesim and the data). Every executor stores the same numbers for the same
    points. ``cache``: where trained and quantized models are kept (default ``OUT/cache``); two
    sweeps given the same cache share the models they have in common."""
    points = expand(spec)
    out_dir = Path(out)
    store = ResultsStore(out_dir / STORE_NAME, spec_hash(points))
    write_bytes(out_dir / SPEC_NAME, json.dumps(spec.model_dump(mode="json"), indent=1).encode())
    finished = store.finished_ids()
    pending: list[Point] = [p for p in points if p.id not in finished]
    total, done = len(points), len(points) - len(pending)
    if on_progress:
        on_progress(done, total)
    cache_dir = str(out_dir / "cache" if cache is None else Path(cache))

    def finish(point: Point, outcome: tuple[str, Any, float]) -> None:
        nonlocal done
        status, payload, seconds = outcome
        if status == "done":
            store.record(point.config, payload, seconds)
        else:
            store.record_failure(point.config, payload, seconds)
        done += 1
        if on_progress:
            on_progress(done, total)

    if scheduler is not None or dask_local is not None:
        _run_on_dask(pending, cache_dir, finish, scheduler, dask_local)
    else:
        _run_locally(pending, cache_dir, finish, workers)
    store.export_csv(out_dir / CSV_NAME)
    store.export_parquet(out_dir / PARQUET_NAME)
    return store


def _run_locally(pending: list[Point], cache: str,
                 finish: Callable[[Point, tuple], None], workers: int) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_one_thread) as pool:
        running: dict[Future, Point] = {}
        queue = list(pending)
        while queue or running:
            while queue and len(running) < workers:
                point = queue.pop(0)
                running[pool.submit(_guarded, point.config, cache)] = point
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                finish(running.pop(future), future.result())


def _run_on_dask(pending: list[Point], cache: str,
                 finish: Callable[[Point, tuple], None], scheduler: str | None,
                 dask_local: int | None) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler is not None:
            client = Client(scheduler, timeout="30s")
        else:
            cluster = LocalCluster(n_workers=dask_local, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    try:
        client.run(_one_thread)
        futures = {client.submit(_guarded, p.config, cache, pure=False): p
                   for p in pending}
        for future in as_completed(futures):
            finish(futures[future], future.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
