"""Coverage of the fitted cards' 95 % intervals (docs/devices_fit.md, "Recovery and coverage").

    python experiments/devices_fit_coverage.py --out docs/results/devices_fit_coverage.json \
        [--repeats 100] [--bootstrap 200]

For each case — a shipped card, a law of it, a device count — draws ``repeats`` independent data
sets from the card (targets uniform inside the range, one programming per device, 10 reads each),
fits the law with its true family and shape (the coverage of an interval given the family; which
family the cross-validation picks is reported separately as ``family_picked``) and counts how
often each parameter's 95 % interval covers the card's value. With 100 repeats a coverage of
0.95 is measured to ±0.022 (one binomial standard error). Run time on 2 cores: minutes per case.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bayesim.atomic import write_text
from bayesim.devices import load_preset
from bayesim.devices.fit import fit_noise

CASES = [
    # card, law, true family, shape, truth, target range (µS), device counts
    ("pcm_ibm_2020", "read", "sqrt", "gaussian", {"k": [0.0875]}, (2.0, 23.0),
     (100, 1000, 10000)),
    ("pcm_ibm_2020", "program", "polynomial_abs", "gaussian",
     {"coeffs": [0.26348, 1.9650 / 25, -1.1731 / 625]}, (2.0, 23.0), (100, 1000, 10000)),
    ("rram_lin2023", "read", "polynomial_abs", "laplace",
     {"coeffs": [0.019940, 0.045821, -0.0082024]}, (0.5, 3.9), (100, 1000)),
]
READS = 10


def draw(card: str, law: str, n: int, lo: float, hi: float, seed: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(G covariate, residual, device index, extra variance) of one data set."""
    model = load_preset(card)
    target = np.random.default_rng(seed).uniform(lo, hi, n)
    g = model.program(target, seed=seed + 1)
    if law == "program":  # one achieved conductance per device, no reads: σ_prog alone
        return target, g - target, np.arange(n), None
    reads = model.read(g, READS, seed=seed + 2)  # (reads, devices)
    means = reads.mean(axis=0)
    resid = (reads - means) * np.sqrt(READS / (READS - 1))
    return (np.repeat(means, READS), resid.T.reshape(-1), np.repeat(np.arange(n), READS),
            None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--cases", help="comma-separated indices into CASES (default: all)")
    args = parser.parse_args(argv)
    chosen = CASES if args.cases is None else [CASES[int(i)] for i in args.cases.split(",")]
    rows = []
    for card, law, family, shape, truth, (lo, hi), counts in chosen:
        for n in counts:
            start = time.perf_counter()
            covered = {k: np.zeros(len(v), dtype=int) for k, v in truth.items()}
            picked: dict[str, int] = {}
            for repeat in range(args.repeats):
                g, e, device, extra = draw(card, law, n, lo, hi, 1000 * repeat)
                fit = fit_noise(g, e, device, extra, (family,), args.bootstrap, seed=repeat,
                                shapes=(shape,))
                for key, values in truth.items():
                    intervals = np.atleast_2d(np.asarray(fit.ci95[key]))
                    covered[key] += [a <= v <= b for (a, b), v in zip(intervals, values,
                                                                      strict=True)]
                if repeat < 10:  # which family the full cross-validation would pick
                    best = fit_noise(g, e, device, extra, bootstrap=0, seed=repeat)
                    picked[f"{best.family}/{best.shape}"] = picked.get(
                        f"{best.family}/{best.shape}", 0) + 1
            row = {"card": card, "law": law, "family": family, "shape": shape, "devices": n,
                   "repeats": args.repeats, "bootstrap": args.bootstrap,
                   "coverage": {k: (v / args.repeats).round(3).tolist()
                                for k, v in covered.items()},
                   "family_picked_of_10": picked,
                   "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_text(args.out, json.dumps({"reads_per_device": READS, "cases": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
