"""Measurements drawn from a shipped card, in the format of `bayesim devices fit`
(docs/devices_fit.md, "Worked example").

    python experiments/devices_fit_example.py pcm_ibm_2020 --out runs/pcm_reads.csv \
        [--devices 1000] [--reads 10] [--lo 2] [--hi 23] [--seed 0] [--at SECONDS] \
        [--include-ends]

Targets uniform in [lo, hi] µS, one programming of each device (programming noise and
device-to-device spread of the card), then ``reads`` reads of each (the card's per-read noise):
one row per read with device, g_target[uS], g[uS] and the read index.

Without ``--at`` the devices are read as programmed, before anything the card lets happen after
programming: the data then measure the card's programming law alone (the worked example compares
its coefficients). With ``--at T`` they are read in the state the machine reads at
``hardware.drift_time = T``: T s after the card's t₀, drifted, with the 1/f noise accumulated by
then and any relaxation (DeviceModel.at_time) — what a measurement at that time sees, and what a
card fitted from it must reproduce for the chip at that time (docs/devices_fit.md, "The machine on
a fitted card"). An instrument reads no conductance below zero: reads are clipped at 0 (for
pcm_ibm_2020 about 1 read in 10⁴, of devices programmed to within a read σ of 0 µS).
``--include-ends`` programs two of the devices to ``lo`` and ``hi`` exactly, so that a card
fitted with ``--window lo hi`` is calibrated over its whole window.
"""

import argparse
import csv
import io
import os
import sys

import numpy as np

from bayesim.atomic import write_text
from bayesim.devices import load_preset


def measurements(card: str, devices: int, reads: int, lo: float, hi: float, seed: int,
                 at: float | None = None, ends: bool = False) -> str:
    model = load_preset(card)
    target = np.random.default_rng(seed).uniform(lo, hi, devices)
    if ends:  # two devices at the range's ends: the fitted card is calibrated up to them
        target[:2] = lo, hi
    g = model.program(target, seed=seed + 1)
    if at is not None:
        nu = model.drift_exponents(target, seed=seed + 3)
        g = model.at_time(g, nu, at, seed=seed + 4)
    read = np.maximum(model.read(g, reads, seed=seed + 2), 0.0)  # (reads, devices)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["device", "g_target[uS]", "g[uS]", "read"])
    for d in range(devices):
        for r in range(reads):
            writer.writerow([f"dev{d}", f"{target[d]:.6g}", f"{read[r, d]:.6g}", r])
    return buffer.getvalue()


def state_card(card: str, fitted: str, at: float, name: str) -> str:
    """The card ``fitted`` with its programming law replaced by ``card``'s own spread of the
    state at ``at`` s after t₀, before clipping: a table of √(σ_prog² + σ_1/f(at)²) at 51
    conductances over the window. What a fit of data read at ``at`` would give with a family
    that has the right shape (a diagnostic of the fitted law's shape, docs/devices_fit.md)."""
    import re

    model = load_preset(card)
    g = np.linspace(model.g_min, model.g_max, 51)
    sigma = np.sqrt(model.sigma_program(g) ** 2 + model.sigma_accumulated(g, at) ** 2)
    source = f"{card}: sqrt(sigma_prog^2 + sigma_1/f({at:g} s)^2), the card's own laws"
    law = (f'law = "table"\ng = {{ value = [{", ".join(f"{x:.6g}" for x in g)}], unit = "uS", '
           f'source = "{source}" }}\nsigma = {{ value = [{", ".join(f"{x:.6g}" for x in sigma)}'
           f'], unit = "uS", source = "{source}" }}\n')
    with open(fitted, encoding="utf-8") as handle:
        text = re.sub(r'^name = ".*"$', f'name = "{name}"', handle.read(), count=1, flags=re.M)
    start = text.index("\n[program]\n") + 1
    end = text.index("\n[", start + 1)
    program = re.sub(r'law = .*?(?=\n\[|\Z)', law.rstrip("\n"), text[start:end], count=1,
                     flags=re.S)
    return text[:start] + program + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("card")
    parser.add_argument("--out", required=True)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=10)
    parser.add_argument("--lo", type=float, default=2.0)
    parser.add_argument("--hi", type=float, default=23.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--at", type=float, default=None, metavar="SECONDS",
                        help="read the devices in their state this long after the card's t0 "
                             "(drift, accumulated 1/f noise), as hardware.drift_time")
    parser.add_argument("--include-ends", action="store_true",
                        help="program two of the devices to lo and hi exactly")
    parser.add_argument("--state-card", nargs=2, metavar=("FITTED", "OUT"),
                        help="instead: write FITTED (a card fitted to data drawn --at a time) "
                             "with the card's own state spread at that time as its programming "
                             "law, to OUT")
    args = parser.parse_args(argv)
    if args.state_card:
        out = args.state_card[1]
        write_text(out, state_card(args.card, args.state_card[0], args.at or 0.0,
                                   os.path.splitext(os.path.basename(out))[0]))
        print(f"card: {args.state_card[1]}")
        return 0
    write_text(args.out, measurements(args.card, args.devices, args.reads, args.lo, args.hi,
                                      args.seed, args.at, args.include_ends))
    print(f"measurements: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
