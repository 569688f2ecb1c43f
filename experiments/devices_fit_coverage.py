"""Coverage of the fitted cards' 95 % intervals (docs/devices_fit.md, "Recovery and coverage").

    python experiments/devices_fit_coverage.py --out docs/results/devices_fit_coverage.json \
        [--repeats 100] [--bootstrap 200] [--cases 0,2 | none] [--devices 10000] [--drift] \
        [--picks-only]

For each case (a shipped card, a law of it, a device count) the script draws ``repeats``
independent data sets from the card, in memory and in the format `bayesim devices fit` reads.
Targets are uniform inside the range, each device is programmed once, and then it is read 10
times, or not at all for one-row programming data. Each data set is fitted through the function
the command uses (fit_reads or fit_programming), restricted to the law's true family. The
intervals are then those of a card whose family is right; which family the full cross-validation
picks is reported for the first 10 data sets as ``family_picked_of_10``. The script counts how
often each parameter's 95 % interval covers the card's value. It does the same for σ(G) at three
conductances (the numbers the machine uses) and, for reads, for the lag-1 correlation (0 for
every card).

Every data set has its own seed, a hash of (card, law, devices, repeat). So no two cases share
random numbers, and the data sets of a smaller device count are not prefixes of a larger one's.
With 100 repeats a coverage of 0.95 is measured to ±0.022 (one binomial standard error).
``--devices`` runs only that count of the chosen cases. ``--out`` keeps the rows of an existing
file that this run does not redo.

``--drift`` adds the drift case (drift_rows): traces of pcm_ibm_2020 devices, its clamped
log-linear ν_mean and ν_std fitted back by fit_drift; ``--drift-states`` the same on the
machine's own states, whose 1/f noise the fit does not model. ``--picks-only`` redoes only the
family picks of the existing rows of ``--out`` (after a family joins the fit's candidates).
"""

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from bayesim.atomic import write_text
from bayesim.devices import load_preset
from bayesim.devices.drift_fit import DRIFT_FAMILIES, fit_drift
from bayesim.devices.fit import NOISE_FAMILIES, fit_programming, fit_reads
from bayesim.devices.measurements import Measurements

# card, law, true family, truth (card parameters), target range (µS), device counts, σ(G) points
CASES = [
    ("pcm_ibm_2020", "read", "sqrt", {"k": [0.0875]}, (2.0, 23.0), (100, 1000, 10000),
     (4.0, 12.0, 20.0)),
    ("pcm_ibm_2020", "program", "polynomial_abs",
     {"coeffs": [0.26348, 1.9650 / 25, -1.1731 / 625]}, (2.0, 23.0), (100, 1000, 10000),
     (4.0, 12.0, 20.0)),
    ("pcm_ibm_2020", "program_from_reads", "polynomial_abs",
     {"coeffs": [0.26348, 1.9650 / 25, -1.1731 / 625]}, (2.0, 23.0), (1000,),
     (4.0, 12.0, 20.0)),
    ("rram_lin2023", "read", "polynomial_abs", {"coeffs": [0.019940, 0.045821, -0.0082024]},
     (0.5, 3.9), (100, 1000, 10000), (1.0, 2.0, 3.5)),
]
READS = 10
SIMULATED = Path("<simulated>")
DRIFT_CASE = ("pcm_ibm_2020", (1.0, 25.0), (100, 1000), (1.5, 4.0, 15.0))
"""The drift case: card, target range (µS; targets log-uniform), device counts, ν(G) points."""
DRIFT_TIMES = np.geomspace(20.0, 2e5, 9)
"""s since programming: t₀ = 20 s, then four decades, two times per decade."""
READ_FAMILY = {"pcm_ibm_2020": "sqrt", "rram_lin2023": "polynomial_abs"}
"""The cards' read-law families: the read law fitted beside a programming law from reads."""


def case_seed(card: str, law: str, devices: int, repeat: int) -> int:
    return zlib.crc32(f"{card}|{law}|{devices}|{repeat}".encode())


def draw(card: str, law: str, n: int, lo: float, hi: float, seed: int) -> Measurements:
    """One data set: one row per device (``program``) or READS consecutive reads of each."""
    model = load_preset(card)
    target = np.random.default_rng(seed).uniform(lo, hi, n)
    g = model.program(target, seed=seed + 1)
    if law == "program":  # one achieved conductance per device, no read noise
        return Measurements(SIMULATED, np.arange(n), [str(i) for i in range(n)], g, target,
                            None, None)
    reads = model.read(g, READS, seed=seed + 2).T.reshape(-1)  # device-major
    targets = np.repeat(target, READS) if law == "program_from_reads" else None
    return Measurements(SIMULATED, np.repeat(np.arange(n), READS), [str(i) for i in range(n)],
                        reads, targets, None, np.tile(np.arange(READS), n))


def draw_drift(card: str, n: int, lo: float, hi: float, seed: int, states: bool = False
               ) -> Measurements:
    """One drift data set: targets log-uniform in [lo, hi] µS (the laws are linear in ln G),
    each device programmed once, drifting by the card's law (ν drawn as the machine draws it)
    and read once at each of DRIFT_TIMES with the card's per-read noise; no 1/f noise. With
    ``states`` each read is of the state the machine draws at that time (DeviceModel.at_time:
    drift, the 1/f noise accumulated by then, drawn afresh at each time, clipped to the
    window)."""
    model = load_preset(card)
    target = np.exp(np.random.default_rng(seed).uniform(np.log(lo), np.log(hi), n))
    g = model.program(target, seed=seed + 1)
    nu = model.drift_exponents(target, seed=seed + 3)
    reads = np.array([model.read(model.at_time(g, nu, t - model.t0, seed=seed + 40 + j) if states
                                 else g * (t / model.t0) ** -nu, 1, seed=seed + 10 + j)[0]
                      for j, t in enumerate(DRIFT_TIMES)])  # (times, devices)
    times = DRIFT_TIMES.size
    return Measurements(SIMULATED, np.repeat(np.arange(n), times), [str(i) for i in range(n)],
                        reads.T.reshape(-1), np.repeat(target, times), np.tile(DRIFT_TIMES, n),
                        None)


def drift_rows(repeats: int, bootstrap: int, only: int | None, states: bool = False
               ) -> list[dict]:
    """The drift case's coverage: the card's clamped log-linear ν_mean and ν_std (their slopes,
    intercepts and the clamp inside the targets; the other clamp lies beyond them, where the
    fitted law has none to find), and μ(G), s(G) at DRIFT_CASE's points; fitted with the card's
    g_max (as with --window 0 25), restricted to the true families. ``states``: the machine's
    own states with their 1/f noise (draw_drift), targets from 2 µS (below it the 1/f noise
    clips many reads to 0 µS), ν(G) at 2.5 µS instead of 1.5, 1,000 devices."""
    card, _, counts, points = DRIFT_CASE
    law = "drift_states" if states else "drift"
    lo, hi, _ = drift_draw_of(law)
    if states:  # and ν(G) scored inside those targets
        counts, points = (1000,), (2.5, *points[1:])
    model = load_preset(card)
    at = np.asarray(points)
    mean_true, std_true = model.drift_nu(at)
    truth = {key: {"a": true.a, "b": true.b, "lo": true.lo}
             for key, true in (("nu_mean", model.drift.nu_mean), ("nu_std", model.drift.nu_std))}
    rows = []
    for n in counts:
        if only is not None and n != only:
            continue
        start = time.perf_counter()
        covered = {key: {k: 0 for k in values} for key, values in truth.items()}
        covered_moments = {"nu_mean": np.zeros(at.size, dtype=int),
                           "nu_std": np.zeros(at.size, dtype=int)}
        ratios: dict[str, list] = {"nu_mean": [], "nu_std": []}
        picked: dict[str, int] = {}
        for repeat in range(repeats):
            seed = case_seed(card, law, n, repeat)
            data = draw_drift(card, n, lo, hi, seed, states)
            fit = fit_drift(data, model.g_max, bootstrap, seed % 2**31,
                            ("log_linear_clamped",), ("log_linear_clamped",))
            for key, values in truth.items():
                for name, value in values.items():
                    a, b = fit.ci95[key][name]
                    covered[key][name] += a <= value <= b
            fitted = fit.moments(at)
            for (low, high), value, true, key in zip(fit.moments_interval(at), fitted,
                                                     (mean_true, std_true), ratios, strict=True):
                covered_moments[key] += (low <= true) & (true <= high)
                ratios[key].append(value / true)
            if repeat < 10:
                name = picked_drift_pair(data, model.g_max, seed)
                picked[name] = picked.get(name, 0) + 1
        row = {"card": card, "law": law, "family": "log_linear_clamped/log_linear_clamped",
               "targets_uS": [lo, hi],
               "devices": n, "repeats": repeats, "bootstrap": bootstrap,
               "times_s": DRIFT_TIMES.round(1).tolist(),
               "coverage": {key: {k: round(v / repeats, 3) for k, v in values.items()}
                            for key, values in covered.items()},
               "moments_at_uS": points,
               "moments_coverage": {k: (v / repeats).round(3).tolist()
                                    for k, v in covered_moments.items()},
               "moments_ratio_mean": {k: np.mean(v, axis=0).round(5).tolist()
                                      for k, v in ratios.items()},
               "moments_ratio_std": {k: np.std(v, axis=0, ddof=1).round(5).tolist()
                                     for k, v in ratios.items()},
               "family_picked_of_10": picked, "families_tried": list(DRIFT_FAMILIES),
               "seconds": round(time.perf_counter() - start, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def fit_case(data: Measurements, card: str, law: str, family: str, bootstrap: int, seed: int,
             families: tuple[str, ...] | None = None):
    """(the law's fit, the reads' fit or None); ``families`` replaces the true family."""
    if law == "program":
        return fit_programming(data, bootstrap, seed, families or (family,)), None
    if law == "read":
        fit = fit_reads(data, bootstrap, seed, families or (family,))
        return fit.read, fit
    fit = fit_reads(data, bootstrap, seed, (READ_FAMILY[card],), families or (family,))
    return fit.program, fit


def drift_draw_of(law: str) -> tuple[float, float, bool]:
    """The drift case's (lo, hi, states) for ``law`` (drift or drift_states; drift_rows)."""
    _, (lo, hi), _, _ = DRIFT_CASE
    return (2.0 if law == "drift_states" else lo), hi, law == "drift_states"


def picked_drift_pair(data: Measurements, g_max: float, seed: int) -> str:
    """The pair of drift families the full cross-validation (every family) picks."""
    best = fit_drift(data, g_max, 0, seed % 2**31)
    return f"{best.nu_mean_family}/{best.nu_std_family}"


def picked_family(data: Measurements, card: str, law: str, family: str, seed: int) -> str:
    """The family and shape the full cross-validation (every family of NOISE_FAMILIES) picks."""
    best, _ = fit_case(data, card, law, family, 0, seed % 2**31, families=NOISE_FAMILIES)
    return f"{best.family}/{best.shape}"


def refresh_picks(rows: list[dict], chosen: list[tuple], only: int | None) -> None:
    """Redo ``family_picked_of_10`` of the ``rows`` of the ``chosen`` cases (the first 10 data
    sets, drawn again from their seeds) with today's families: a family added to the fit
    changes which one is picked, not the intervals of the true one."""
    for card, law, family, _, (lo, hi), _, _ in chosen:
        for row in rows:
            if (row["card"], row["law"]) != (card, law) or only not in (None, row["devices"]):
                continue
            picked: dict[str, int] = {}
            for repeat in range(10):
                seed = case_seed(card, law, row["devices"], repeat)
                name = picked_family(draw(card, law, row["devices"], lo, hi, seed), card, law,
                                     family, seed)
                picked[name] = picked.get(name, 0) + 1
            row["family_picked_of_10"], row["families_tried"] = picked, list(NOISE_FAMILIES)
            print(json.dumps({k: row[k] for k in ("card", "law", "devices",
                                                  "family_picked_of_10")}), flush=True)
    for row in rows:  # the drift rows, whichever cases were chosen
        if not row["law"].startswith("drift") or only not in (None, row["devices"]):
            continue
        lo, hi, states = drift_draw_of(row["law"])
        g_max = load_preset(row["card"]).g_max
        picked = {}
        for repeat in range(10):
            seed = case_seed(row["card"], row["law"], row["devices"], repeat)
            name = picked_drift_pair(draw_drift(row["card"], row["devices"], lo, hi, seed, states),
                                     g_max, seed)
            picked[name] = picked.get(name, 0) + 1
        row["family_picked_of_10"], row["families_tried"] = picked, list(DRIFT_FAMILIES)
        print(json.dumps({k: row[k] for k in ("card", "law", "devices",
                                              "family_picked_of_10")}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--cases", help="comma-separated indices into CASES (default: all)")
    parser.add_argument("--devices", type=int, help="only this device count")
    parser.add_argument("--drift", action="store_true",
                        help="run the drift case too (with --cases none: only it)")
    parser.add_argument("--drift-states", action="store_true",
                        help="the drift case on the machine's own states, 1/f noise included")
    parser.add_argument("--picks-only", action="store_true",
                        help="redo only the family picks of the existing rows of --out")
    args = parser.parse_args(argv)
    chosen = CASES if args.cases is None else [] if args.cases == "none" else [
        CASES[int(i)] for i in args.cases.split(",")]
    if args.picks_only:
        data = json.loads(args.out.read_text())
        refresh_picks(data["cases"], chosen, args.devices)
        write_text(args.out, json.dumps(data, indent=1) + "\n")
        return 0
    rows = drift_rows(args.repeats, args.bootstrap, args.devices) if args.drift else []
    if args.drift_states:
        rows += drift_rows(args.repeats, args.bootstrap, args.devices, states=True)
    for card, law, family, truth, (lo, hi), counts, points in chosen:
        model = load_preset(card)
        at = np.asarray(points)
        sigma_true = model.sigma_read(at) if law == "read" else model.sigma_program(at)
        for n in counts:
            if args.devices is not None and n != args.devices:
                continue
            start = time.perf_counter()
            covered = {k: np.zeros(len(v), dtype=int) for k, v in truth.items()}
            covered_sigma = np.zeros(at.size, dtype=int)
            covered_lag1 = 0
            ratios = []
            shapes: dict[str, int] = {}
            picked: dict[str, int] = {}
            for repeat in range(args.repeats):
                seed = case_seed(card, law, n, repeat)
                data = draw(card, law, n, lo, hi, seed)
                fit, reads = fit_case(data, card, law, family, args.bootstrap, seed % 2**31)
                for key, values in truth.items():
                    intervals = np.atleast_2d(np.asarray(fit.ci95[key]))
                    covered[key] += [a <= v <= b for (a, b), v in zip(intervals, values,
                                                                      strict=True)]
                low, high = fit.sigma_interval(at)
                ratios.append(fit.sigma(at) / sigma_true)
                covered_sigma += (low <= sigma_true) & (sigma_true <= high)
                if reads is not None and reads.lag1_ci95 is not None:
                    covered_lag1 += reads.lag1_ci95[0] <= 0.0 <= reads.lag1_ci95[1]
                shapes[fit.shape] = shapes.get(fit.shape, 0) + 1
                if repeat < 10:  # which family the full cross-validation would pick
                    name = picked_family(data, card, law, family, seed)
                    picked[name] = picked.get(name, 0) + 1
            row = {"card": card, "law": law, "family": family, "devices": n,
                   "families_tried": list(NOISE_FAMILIES),
                   "repeats": args.repeats, "bootstrap": args.bootstrap,
                   "coverage": {k: (v / args.repeats).round(3).tolist()
                                for k, v in covered.items()},
                   "sigma_at_uS": points,
                   "sigma_coverage": (covered_sigma / args.repeats).round(3).tolist(),
                   # the estimator's bias: mean and spread of fitted / true σ over the data sets
                   "sigma_ratio_mean": np.mean(ratios, axis=0).round(5).tolist(),
                   "sigma_ratio_std": np.std(ratios, axis=0, ddof=1).round(5).tolist(),
                   "lag1_coverage": (round(covered_lag1 / args.repeats, 3) if law != "program"
                                     else None),
                   "shape_chosen": shapes, "family_picked_of_10": picked,
                   "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    redone = {(r["card"], r["law"], r["devices"]) for r in rows}
    if args.out.is_file():
        kept = [r for r in json.loads(args.out.read_text())["cases"]
                if (r["card"], r["law"], r["devices"]) not in redone
                and ("sigma_coverage" in r or "moments_coverage" in r)]
        rows = kept + rows
    order = {(c[0], c[1]): i for i, c in enumerate(CASES)} | {
        (DRIFT_CASE[0], "drift"): len(CASES), (DRIFT_CASE[0], "drift_states"): len(CASES) + 1}
    rows.sort(key=lambda r: (order[(r["card"], r["law"])], r["devices"]))
    write_text(args.out, json.dumps({"reads_per_device": READS, "cpu": "2-core AMD EPYC VM",
                                     "cases": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
