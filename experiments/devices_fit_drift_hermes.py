"""Drift traces from a card no drift family describes, fitted back (docs/devices_fit.md, the
``table`` pair under "The data format").

    python experiments/devices_fit_drift_hermes.py [--devices 2000] [--bootstrap 40]

pcm_hermes_2023's ν_mean and ν_std are piecewise: a log-linear law below a break, a polynomial
above it. Devices are programmed to targets log-uniform in 1–20 µS, drift by the card's law (ν
drawn as the machine draws it) and are read at 9 times from t₀ = 300 s over four decades with a
white ln G noise of 0.003. The traces are fitted twice through fit_drift: with every family (the
command's choice) and with the table pair left out (the best family pair). Prints the
cross-validated log-likelihood of the best pairs and fitted/true ν_mean and ν_std at 1.5, 2.5,
5, 10 and 18 µS.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from bayesim.devices import load_preset
from bayesim.devices.drift_fit import DRIFT_FAMILIES, fit_drift
from bayesim.devices.measurements import Measurements

AT = np.array([1.5, 2.5, 5.0, 10.0, 18.0])


def traces(devices: int, seed: int = 0) -> Measurements:
    model = load_preset("pcm_hermes_2023")
    times = np.geomspace(model.t0, model.t0 * 1e4, 9)
    rng = np.random.default_rng(seed)
    target = np.exp(rng.uniform(0.0, np.log(20.0), devices))
    nu = model.drift_exponents(target, seed=seed + 3)
    g = target[:, None] * (times / model.t0) ** -nu[:, None] * np.exp(
        rng.normal(0, 0.003, (devices, times.size)))
    return Measurements(Path("<pcm_hermes_2023 traces>"), np.repeat(np.arange(devices), 9),
                        [str(i) for i in range(devices)], g.reshape(-1),
                        np.repeat(target, 9), np.tile(times, devices), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--bootstrap", type=int, default=40)
    args = parser.parse_args(argv)
    model = load_preset("pcm_hermes_2023")
    data = traces(args.devices)
    families = tuple(f for f in DRIFT_FAMILIES if f != "table")
    true_mean, true_std = model.drift_nu(AT)
    print(f"fitted/true at {AT.tolist()} µS")
    for label, chosen in (("every family", DRIFT_FAMILIES), ("no table", families)):
        fit = fit_drift(data, model.g_max, args.bootstrap, 0, chosen, chosen)
        best = sorted(fit.cv.items(), key=lambda kv: -kv[1])[:2]
        mean, std = fit.moments(AT)
        print(f"{label}: {fit.nu_mean_family}/{fit.nu_std_family}; best CV "
              + ", ".join(f"{k} {v:.1f}" for k, v in best))
        print(f"  nu_mean {np.round(mean / true_mean, 3).tolist()}")
        print(f"  nu_std  {np.round(std / true_std, 3).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
