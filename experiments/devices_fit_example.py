"""Measurements drawn from a shipped card, in the format of `bayesim devices fit`
(docs/devices_fit.md, "Worked example").

    python experiments/devices_fit_example.py pcm_ibm_2020 --out runs/pcm_reads.csv \
        [--devices 1000] [--reads 10] [--lo 2] [--hi 23] [--seed 0]

Targets uniform in [lo, hi] µS, one programming of each device (programming noise and
device-to-device spread of the card), then ``reads`` reads of each (the card's per-read noise):
one row per read with device, g_target[uS], g[uS] and the read index.
"""

import argparse
import csv
import io
import sys

import numpy as np

from bayesim.atomic import write_text
from bayesim.devices import load_preset


def measurements(card: str, devices: int, reads: int, lo: float, hi: float, seed: int) -> str:
    model = load_preset(card)
    target = np.random.default_rng(seed).uniform(lo, hi, devices)
    g = model.program(target, seed=seed + 1)
    read = model.read(g, reads, seed=seed + 2)  # (reads, devices)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["device", "g_target[uS]", "g[uS]", "read"])
    for d in range(devices):
        for r in range(reads):
            writer.writerow([f"dev{d}", f"{target[d]:.6g}", f"{read[r, d]:.6g}", r])
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("card")
    parser.add_argument("--out", required=True)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=10)
    parser.add_argument("--lo", type=float, default=2.0)
    parser.add_argument("--hi", type=float, default=23.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_text(args.out, measurements(args.card, args.devices, args.reads, args.lo, args.hi,
                                      args.seed))
    print(f"measurements: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
