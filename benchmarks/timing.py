"""Timing helpers shared by the benchmarks (never used by tests: timings are not asserted)."""

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call (JIT
    compilation, BLAS threads)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def once_seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call of ``fn`` (no warm-up: the caller warms up on smaller work)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(reference: Callable[[], object], candidate: Callable[[], object],
           repeats: int) -> tuple[float, float, list[float]]:
    """Median times of two functions called alternately, and the ratio of each pair: on a shared
    machine both see the same load, so the ratios scatter much less than separate medians."""
    reference()
    candidate()
    t_ref, t_cand, ratios = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        reference()
        mid = time.perf_counter()
        candidate()
        end = time.perf_counter()
        t_ref.append(mid - start)
        t_cand.append(end - mid)
        ratios.append((end - mid) / (mid - start))
    return statistics.median(t_ref), statistics.median(t_cand), ratios


def interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                warm_up: bool = True) -> dict[str, list[float]]:
    """Wall times of several functions called in turn, ``repeats`` rounds after one warm-up
    round (``warm_up=False``: the caller warmed them up on smaller work): each round sees the
    same machine load, so ratios taken within a round scatter less than ratios of separate
    medians."""
    if warm_up:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times
