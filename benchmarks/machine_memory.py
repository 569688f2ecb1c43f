"""Peak memory of Monte-Carlo inference on the Bayesian machine at S = 10 and S = 1000.

    python benchmarks/machine_memory.py --checkpoint runs/demo/model.safetensors \\
        [--config experiments/machine_pcm.toml] [--images 200] [--backends numba torch]

Runs ``bayesim simulate`` in a fresh process per S and backend (same checkpoint, chip and data;
the clean, ambiguous and OOD test sets limited to ``--images`` each, no variance decomposition)
and reports each run's peak resident memory (the child's own ``ru_maxrss``) and, per backend,
the ratio of the largest S to the smallest. The target is a ratio within 1 ± 0.2: memory must
not grow with S.
"""

import argparse
import subprocess
import sys
import tempfile
import time

_CHILD = ("import resource, sys\n"
          "from bayesim.cli import main\n"
          "code = main(sys.argv[1:])\n"
          "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
          "file=sys.stderr)\n"
          "sys.exit(code)\n")


def peak_rss_mib(cli_args: list[str]) -> tuple[float, float]:
    """Run ``bayesim cli_args`` in a fresh process; its own peak RSS (MiB) and wall time (s)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, *cli_args], check=True,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    line = next(x for x in done.stderr.splitlines() if x.startswith("PEAK_RSS_KIB"))
    return int(line.split()[1]) / 1024.0, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--config", default="experiments/machine_pcm.toml")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--samples", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--backends", nargs="+", default=["numba", "torch"],
                        choices=["numba", "torch"])
    parser.add_argument("--torch-device", default="cpu")
    args = parser.parse_args()
    for backend in args.backends:
        results = []
        for s in sorted(args.samples, reverse=True):
            with tempfile.TemporaryDirectory() as out:
                command = ["simulate", "--checkpoint",
                           args.checkpoint, "--config", args.config, "--out", out, "--samples",
                           str(s), "-q", "--set", f"data.test_limit={args.images}",
                           "--set", f"data.ambiguous_test_images={args.images}",
                           "--set", f"data.ood_limit={args.images}",
                           "--set", "hardware.decomposition_inputs=0",
                           "--set", f"hardware.backend='{backend}'",
                           "--set", f"hardware.torch_device='{args.torch_device}'"]
                mib, seconds = peak_rss_mib(command)
                results.append((s, mib, seconds))
                print(f"{backend:5s} S = {s:5d}: peak RSS {mib:8.1f} MiB, wall {seconds:6.1f} s",
                      flush=True)
        if len(results) >= 2:
            big, small = results[0], results[-1]
            print(f"{backend:5s} peak memory S = {big[0]} / S = {small[0]}: "
                  f"{big[1] / small[1]:.3f} (target within 1 ± 0.2)")


if __name__ == "__main__":
    main()
