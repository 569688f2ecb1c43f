"""Read kernel vs a noise-free float32 matmul, measured side by side in one run.

    python benchmarks/read_kernel.py [--repeats 50]

Shapes of issue 4: one 512 × 512 tile, batch 256, fast (output-referred) path. Reports the median
wall time of each, their ratio, and the counter-based RNG's throughput in normals per second.
Timings are never asserted in tests; run this on the machine you want numbers for.
"""

import argparse
import statistics
import time

import numpy as np

from bayesim.crossbar.kernels import read_mvm
from bayesim.crossbar.rng import Stream, draw, stream_key


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (JIT compilation, BLAS threads)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 512)).astype(np.float32)
    g = rng.uniform(0, 25, (512, 512)).astype(np.float32)
    sigma_sq = np.square(0.0875 * np.sqrt(g)).astype(np.float32)  # pcm_ibm_2020 per-read σ
    key = stream_key(0, Stream.READ)

    t_matmul = _median_seconds(lambda: x @ g.T, args.repeats)
    t_read = _median_seconds(lambda: read_mvm(x, g, sigma_sq, key, sample=1), args.repeats)
    n = 10_000_000
    t_rng = _median_seconds(lambda: draw(key, n), max(3, args.repeats // 10))
    print(f"float32 matmul 256x512 @ 512x512: {t_matmul * 1e3:8.3f} ms")
    print(f"read_mvm (fast path, noisy):      {t_read * 1e3:8.3f} ms")
    print(f"ratio read / matmul:              {t_read / t_matmul:8.2f}x   (target <= 2.5x)")
    print(f"RNG normals per second (draw):    {n / t_rng / 1e6:8.1f} M/s")


if __name__ == "__main__":
    main()
