"""Read kernel vs a noise-free float32 matmul, measured side by side in one run.

    python benchmarks/read_kernel.py [--repeats 200]

Shapes of issue 4: one 512 × 512 tile, batch 256, fast (output-referred) path. Calls the two
alternately and reports the median time of each, the median of the per-pair ratios, the parts of
the read, and the counter-based RNG's throughput in normals per second.
Timings are never asserted in tests; run this on the machine you want numbers for.
"""

import argparse
import os
import statistics

import numba
import numpy as np
from timing import median_seconds, paired

from bayesim.crossbar.kernels import add_output_noise, as_rows, matmul_t, read_mvm
from bayesim.crossbar.periphery import periphery_preset
from bayesim.crossbar.tile import Tile
from bayesim.rng import Stream, draw, stream_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 512)).astype(np.float32)
    g = rng.uniform(0, 25, (512, 512)).astype(np.float32)
    sigma_sq = np.square(0.0875 * np.sqrt(g)).astype(np.float32)  # pcm_ibm_2020 per-read σ
    key = stream_key(0, Stream.READ)

    y = x @ g.T
    var = np.square(x) @ sigma_sq.T
    rows = as_rows(0, x.shape[0])
    t_matmul, t_read, ratios = paired(lambda: matmul_t(x, g),
                                       lambda: read_mvm(x, g, sigma_sq, key, sample=1),
                                       args.repeats)
    q1, q2, q3 = statistics.quantiles(ratios, n=4)
    t_var = median_seconds(lambda: matmul_t(np.square(x), sigma_sq), args.repeats)
    t_numpy = median_seconds(lambda: x @ g.T, args.repeats)
    t_noise = median_seconds(lambda: add_output_noise(y, var, key, np.int64(1), rows,
                                                       np.int64(0)), args.repeats)
    # the whole tile: aihwkit-default periphery (abs-max noise management, 7-bit DAC, output
    # noise, 9-bit ADC, iterative bound management) around the same noisy read, weights in
    # tile units (G / g_max)
    g_max = float(g.max())
    tile = Tile(g / g_max, sigma_sq / g_max ** 2, periphery_preset("aihwkit_default"), seed=0)
    x_unit = x / np.abs(x).max()
    _, t_tile, tile_ratios = paired(lambda: matmul_t(x, g), lambda: tile.mvm(x_unit, sample=1),
                                     max(10, args.repeats // 4))
    n = 10_000_000
    t_rng = median_seconds(lambda: draw(key, n), max(3, args.repeats // 10))
    print(f"threads: numba {numba.get_num_threads()} ({numba.threading_layer()}), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    print(f"float32 matmul 256x512 @ 512x512:  {t_matmul * 1e3:8.3f} ms (torch; numpy's "
          f"OpenBLAS alone {t_numpy * 1e3:.3f} ms)")
    print(f"read_mvm (fast path, noisy):       {t_read * 1e3:8.3f} ms")
    print(f"ratio read / matmul (median of {args.repeats} alternating pairs): {q2:.2f}x "
          f"(quartiles {q1:.2f}-{q3:.2f}; target <= 2.5x)")
    print(f"  parts: variance matmul x^2 @ (s^2)^T {t_var * 1e3:.3f} ms, "
          f"noise kernel (sqrt, 131k normals, add) {t_noise * 1e3:.3f} ms")
    print(f"Tile.mvm (aihwkit-default periphery): {t_tile * 1e3:8.3f} ms, "
          f"{statistics.median(tile_ratios):.2f}x the matmul")
    print(f"RNG normals per second (draw):     {n / t_rng / 1e6:8.1f} M/s")

if __name__ == "__main__":
    main()
