"""The drift-law fit (bayesim.devices.drift_fit): its likelihood against quadrature, recovery of
the shipped PCM card's clamped laws from traces drawn by the card, and what it leaves out."""

from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from bayesim.devices import load_preset
from bayesim.devices.drift_fit import fit_drift, folded_loglik, pooled_variance
from bayesim.devices.measurements import Measurements
from bayesim.errors import DataError
from tests.scripts import experiment_module


@pytest.mark.parametrize("mu, s, v, nu", [
    (0.05, 0.02, 1e-4, 0.04),    # the usual case: folding negligible
    (0.01, 0.03, 4e-4, -0.01),   # a negative slope, mass folded at 0
    (0.0, 0.02, 1e-4, 0.03),     # μ = 0: the half-normal, blurred
    (0.1, 0.05, 1e-2, 0.5),      # far in the tail
    (0.02, 0.04, 1e-5, 0.001),   # s > μ: most of the folded mass near 0
])
def test_the_folded_likelihood_is_its_integral(mu: float, s: float, v: float, nu: float) -> None:
    """ln ∫₀^∞ (φ(ν; μ, s) + φ(ν; −μ, s)) φ(ν̂ − ν; 0, √v) dν by adaptive quadrature."""
    def integrand(x: float) -> float:
        return ((stats.norm.pdf(x, mu, s) + stats.norm.pdf(x, -mu, s))
                * stats.norm.pdf(nu - x, 0, np.sqrt(v)))

    reference = np.log(integrate.quad(integrand, 0, 1.5, points=[mu, max(nu, 1e-4)], limit=500,
                                      epsabs=0, epsrel=1e-11)[0])
    value = folded_loglik(*(np.array([x]) for x in (nu, mu, s, v)))
    assert value == pytest.approx(reference, abs=1e-8)


def test_the_folded_likelihood_at_its_limits() -> None:
    """v = 0: the folded normal; s = 0: N(|μ|, v); a slope below 0 without estimation noise is
    impossible."""
    one = np.ones(1)
    folded = np.log(stats.norm.pdf(0.06, 0.05, 0.01) + stats.norm.pdf(0.06, -0.05, 0.01))
    assert folded_loglik(0.06 * one, 0.05 * one, 0.01 * one, 0 * one) == pytest.approx(folded)
    assert folded_loglik(0.02 * one, -0.03 * one, 0 * one, 1e-4 * one) == pytest.approx(
        stats.norm.logpdf(0.02, 0.03, 0.01))
    assert folded_loglik(-0.01 * one, 0.05 * one, 0.01 * one, 0 * one) == -np.inf


def test_pooled_variance_is_the_mean_of_its_bin() -> None:
    g = np.repeat([1.0, 5.0], 50)
    var = np.r_[np.full(50, 1.0), np.full(50, 3.0)] * np.random.default_rng(0).uniform(0, 2, 100)
    pooled = pooled_variance(g, var)
    assert pooled[:50] == pytest.approx(np.full(50, var[:50].mean()))
    assert pooled[50:] == pytest.approx(np.full(50, var[50:].mean()))


def test_the_cards_clamped_drift_laws_are_fitted_back() -> None:
    """Traces drawn by pcm_ibm_2020 (the coverage study's draw: the card's ν, its per-read noise)
    from 1,000 devices: the cross-validation picks the card's clamped log-linear laws for ν_mean
    and ν_std, and the fitted μ(G), s(G) lie within their 95 % intervals' reach of the card's.
    The tolerances are 4 of the coverage study's standard deviations of fitted/true at 1,000
    devices (docs/results/devices_fit_coverage.json: at most 0.023 for μ, 0.10 for s)."""
    coverage = experiment_module("devices_fit_coverage")
    model = load_preset("pcm_ibm_2020")
    data = coverage.draw_drift("pcm_ibm_2020", 1000, 1.0, 25.0, seed=11)
    fit = fit_drift(data, model.g_max, bootstrap=0, seed=0)
    assert (fit.nu_mean_family, fit.nu_std_family) == ("log_linear_clamped",) * 2, fit.cv
    at = np.array([1.5, 4.0, 15.0])
    mean, std = fit.moments(at)
    true_mean, true_std = model.drift_nu(at)
    assert np.abs(mean / true_mean - 1) == pytest.approx(0, abs=4 * 0.023), mean / true_mean
    assert np.abs(std / true_std - 1) == pytest.approx(0, abs=4 * 0.10), std / true_std
    # the clamp inside the targets: ν_mean's floor (0.049 above G = 5.1 µS), ν_std's (0.008
    # above 8.2 µS); each within 10 % (a floor is the mean of hundreds of devices)
    assert fit.nu_mean["lo"] == pytest.approx(model.drift.nu_mean.lo, rel=0.1)
    assert fit.nu_std["lo"] == pytest.approx(model.drift.nu_std.lo, rel=0.1)


def test_bootstrap_intervals_cover_a_constant_law() -> None:
    """20 fits of traces with constant ν ~ N(0.05, 0.01) and white ln G noise of 0.01 over 5
    times: the intervals of μ and s cover the truth in ≥ 15 (the binomial 3.1-σ lower limit
    of 19 expected covers)."""
    times = np.array([20.0, 200.0, 2e3, 2e4, 2e5])
    covered = np.zeros(2, dtype=int)
    for repeat in range(20):
        rng = np.random.default_rng(repeat)
        n = 200
        target = rng.uniform(2, 20, n)
        nu = np.abs(rng.normal(0.05, 0.01, n))
        g = target[:, None] * (times / 20.0) ** -nu[:, None] * np.exp(rng.normal(0, 0.01, (n, 5)))
        data = Measurements(Path("<simulated>"), np.repeat(np.arange(n), 5),
                            [str(i) for i in range(n)], g.reshape(-1), np.repeat(target, 5),
                            np.tile(times, n), None)
        fit = fit_drift(data, 20.0, bootstrap=60, seed=repeat,
                        mean_families=("constant",), std_families=("constant",))
        covered += [fit.ci95["nu_mean"]["value"][0] <= 0.05 <= fit.ci95["nu_mean"]["value"][1],
                    fit.ci95["nu_std"]["value"][0] <= 0.01 <= fit.ci95["nu_std"]["value"][1]]
    assert np.all(covered >= 15), covered


def test_devices_read_at_zero_are_left_out_and_counted() -> None:
    times = np.array([20.0, 200.0, 2000.0])
    n = 40
    rng = np.random.default_rng(0)
    target = rng.uniform(2, 20, n)
    g = target[:, None] * (times / 20.0) ** -0.05 * np.exp(rng.normal(0, 0.01, (n, 3)))
    g[3, 1] = g[7, 2] = 0.0  # read at the window's floor
    data = Measurements(Path("d.csv"), np.repeat(np.arange(n), 3), [str(i) for i in range(n)],
                        g.reshape(-1), np.repeat(target, 3), np.tile(times, n), None)
    fit = fit_drift(data, 20.0, bootstrap=0)
    assert (fit.devices_at_zero, fit.n_devices) == (2, n - 2)
    zero = Measurements(Path("d.csv"), np.repeat(np.arange(2), 3), ["a", "b"], np.zeros(6),
                        np.full(6, 5.0), np.tile(times, 2), None)
    with pytest.raises(DataError, match="all above 0 µS"):
        fit_drift(zero, 20.0, bootstrap=0)
