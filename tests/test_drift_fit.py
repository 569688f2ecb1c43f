"""The drift-law fit (bayesim.devices.drift_fit): its likelihood against quadrature, recovery of
the shipped PCM card's clamped laws from traces drawn by the card, and what it leaves out."""

from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from bayesim.devices import load_preset
from bayesim.devices.drift_fit import Slopes, fit_drift, folded_loglik, pooled_variance
from bayesim.devices.measurements import Measurements
from bayesim.errors import DataError
from tests.scripts import experiment_module


@pytest.mark.parametrize("mu, s, v, nu", [
    (0.05, 0.02, 1e-4, 0.04),    # the usual case: folding negligible
    (0.01, 0.03, 4e-4, -0.01),   # a negative slope, mass folded at 0
    (0.0, 0.02, 1e-4, 0.03),     # μ = 0: the half-normal, blurred
    (0.1, 0.05, 1e-2, 0.5),      # far in the tail
    (0.02, 0.04, 1e-5, 0.001),   # s > μ: most of the folded mass near 0
    (-0.05, 0.01, 1e-4, -0.05),  # μ < 0 and a slope below 0: the reflected term dominates
    (-0.05, 0.01, 1e-4, -0.3),   # and far out
])
def test_the_folded_likelihood_is_its_integral(mu: float, s: float, v: float, nu: float) -> None:
    """ln ∫₀^∞ (φ(ν; μ, s) + φ(ν; −μ, s)) φ(ν̂ − ν; 0, √v) dν by adaptive quadrature, and the
    same at −μ (|μ + sξ| and |−μ + sξ| have one law)."""
    def integrand(x: float) -> float:
        return ((stats.norm.pdf(x, mu, s) + stats.norm.pdf(x, -mu, s))
                * stats.norm.pdf(nu - x, 0, np.sqrt(v)))

    reference = np.log(integrate.quad(integrand, 0, 1.5, points=[mu, max(nu, 1e-4)], limit=500,
                                      epsabs=0, epsrel=1e-11)[0])
    value = folded_loglik(*(np.array([x]) for x in (nu, mu, s, v)))
    assert value == pytest.approx(reference, abs=1e-8)
    assert folded_loglik(*(np.array([x]) for x in (nu, -mu, s, v))) == pytest.approx(value,
                                                                                     abs=1e-12)


def test_the_folded_likelihood_at_its_limits() -> None:
    """v = 0: the folded normal; s = 0: N(|μ|, v), also at μ = 0 (both halves of Φ(0)); a
    slope below 0 without estimation noise is impossible, and so is any slope of a law with
    s = v = 0."""
    one = np.ones(1)
    folded = np.log(stats.norm.pdf(0.06, 0.05, 0.01) + stats.norm.pdf(0.06, -0.05, 0.01))
    assert folded_loglik(0.06 * one, 0.05 * one, 0.01 * one, 0 * one) == pytest.approx(folded)
    assert folded_loglik(0.02 * one, -0.03 * one, 0 * one, 1e-4 * one) == pytest.approx(
        stats.norm.logpdf(0.02, 0.03, 0.01))
    assert folded_loglik(-0.01 * one, 0.05 * one, 0.01 * one, 0 * one) == -np.inf
    assert folded_loglik(0.02 * one, 0 * one, 0 * one, 1e-4 * one) == pytest.approx(
        stats.norm.logpdf(0.02, 0.0, 0.01))
    assert folded_loglik(0.05 * one, 0.05 * one, 0 * one, 0 * one) == -np.inf


def test_the_slope_variance_pools_the_residuals_of_a_bin() -> None:
    """Each device's slope variance is its bin's Σ rss / Σ dof over its own Sxx: a trace of two
    times (no residual) gets its bin's, and a bin with no longer trace is refused."""
    g = np.repeat([1.0, 5.0], 50)
    rng = np.random.default_rng(0)
    rss, dof, sxx = rng.uniform(0, 2, 100), np.full(100, 3.0), rng.uniform(1, 9, 100)
    rss[0], dof[0] = 0.0, 0.0  # two times
    slopes = Slopes(g, np.zeros(100), rss, dof, sxx)
    v = pooled_variance(slopes)
    for half in (slice(0, 50), slice(50, 100)):
        pooled = rss[half].sum() / dof[half].sum()
        assert v[half] == pytest.approx(pooled / sxx[half])
    with pytest.raises(DataError, match="three or more times"):
        pooled_variance(Slopes(g, np.zeros(100), rss, np.r_[np.zeros(50), dof[50:]], sxx))


def test_the_noise_along_the_traces_is_taken_out_of_the_spread() -> None:
    """1,000 devices, ν ~ N(0.05, 0.01), ln G read with white noise of 0.05 at 5 times: the
    slopes' own noise (v ≈ 4.7·10⁻⁵, half of s² = 10⁻⁴) is taken out of ν_std. Left in, s would
    be 21 % high; at 0.3 of its size, 16 %. The tolerance, 9 %, is 3 standard errors of s from
    1,000 devices (about 3 %)."""
    times = np.array([20.0, 200.0, 2e3, 2e4, 2e5])
    rng = np.random.default_rng(4)
    n = 1000
    target = rng.uniform(2, 20, n)
    nu = rng.normal(0.05, 0.01, n)
    g = target[:, None] * (times / 20.0) ** -nu[:, None] * np.exp(rng.normal(0, 0.05, (n, 5)))
    data = Measurements(Path("<simulated>"), np.repeat(np.arange(n), 5),
                        [str(i) for i in range(n)], g.reshape(-1), np.repeat(target, 5),
                        np.tile(times, n), None)
    fit = fit_drift(data, 20.0, bootstrap=0, mean_families=("constant",),
                    std_families=("constant",))
    assert fit.nu_std["value"] == pytest.approx(0.01, rel=0.09)
    assert fit.nu_mean["value"] == pytest.approx(0.05, abs=3 * 0.0005)


def test_the_cards_clamped_drift_laws_are_fitted_back() -> None:
    """Traces drawn by pcm_ibm_2020 (the coverage study's draw: the card's ν, its per-read noise)
    from 1,000 devices: the cross-validation picks the card's clamped log-linear laws for ν_mean
    and ν_std, and the fitted μ(G), s(G) lie within their 95 % intervals' reach of the card's.
    The tolerances are 4 of the coverage study's standard deviations of fitted/true at 1,000
    devices (docs/results/devices_fit_coverage.json, the drift row: at most 0.026 for μ, 0.049
    for s)."""
    coverage = experiment_module("devices_fit_coverage")
    model = load_preset("pcm_ibm_2020")
    data = coverage.draw_drift("pcm_ibm_2020", 1000, 1.0, 25.0, seed=11)
    fit = fit_drift(data, model.g_max, bootstrap=0, seed=0)
    assert (fit.nu_mean_family, fit.nu_std_family) == ("log_linear_clamped",) * 2, fit.cv
    at = np.array([1.5, 4.0, 15.0])
    mean, std = fit.moments(at)
    true_mean, true_std = model.drift_nu(at)
    assert np.all(np.abs(mean / true_mean - 1) < 4 * 0.026), mean / true_mean
    assert np.all(np.abs(std / true_std - 1) < 4 * 0.049), std / true_std
    # the clamp inside the targets: ν_mean's floor (0.049 above G = 5.1 µS), ν_std's (0.008
    # above 8.2 µS); each within 10 % (a floor is the mean of hundreds of devices)
    assert fit.nu_mean["lo"] == pytest.approx(model.drift.nu_mean.lo, rel=0.1)
    assert fit.nu_std["lo"] == pytest.approx(model.drift.nu_std.lo, rel=0.1)


def test_bootstrap_intervals_cover_a_constant_law() -> None:
    """60 fits of traces with ν ~ |N(0.05, 0.01)| and white ln G noise of 0.01 over 5 times,
    200 devices: the intervals of μ and s cover the truth in ≥ 52 of 60. At a true coverage of
    0.95 one parameter fails with probability 0.003, either of the two about 0.006; at 0.80
    it passes with probability 0.13."""
    times = np.array([20.0, 200.0, 2e3, 2e4, 2e5])
    covered = np.zeros(2, dtype=int)
    for repeat in range(60):
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
    assert np.all(covered >= 52), covered


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


def test_a_drift_law_stays_positive_where_another_file_widens_the_range(tmp_path: Path) -> None:
    """Drift traces at 5-20 µS whose ν_std falls towards 25 µS, programming data at 1-25 µS:
    the card's calibrated range is 1-25 µS, ν_std stays ≥ 0 over all of it (the card reader
    accepts it), and the fit says which laws were measured over less than that range."""
    from bayesim.devices.fitted_card import extrapolated, fit_card
    from bayesim.devices.presets import build_model

    times = np.geomspace(20, 2e5, 5)
    rng = np.random.default_rng(1)
    n = 800
    target = np.exp(rng.uniform(np.log(5), np.log(20), n))
    nu = np.abs(0.05 + (-0.012 * np.log(target / 25) - 0.002) * rng.normal(size=n))
    g = target[:, None] * (times / 20) ** -nu[:, None] * np.exp(rng.normal(0, 0.002, (n, 5)))
    drift = tmp_path / "drift.csv"
    drift.write_text("device,g_target[uS],g[uS],t[s]\n" + "".join(
        f"{i},{target[i]},{g[i, j]},{t}\n" for i in range(n) for j, t in enumerate(times)))
    programming = tmp_path / "programming.csv"
    targets = rng.uniform(1, 25, 500)
    programming.write_text("device,g_target[uS],g[uS]\n" + "".join(
        f"{i},{t},{t + rng.normal(0, 0.1)}\n" for i, t in enumerate(targets)))
    card, _ = fit_card([str(programming), str(drift)], "wide", bootstrap=0)
    model = build_model(card, "wide")
    grid = np.linspace(*model.calibrated_g, 257)
    assert model.drift.nu_std(grid, model.g_max).min() >= 0
    notes = extrapolated(card)
    assert len(notes) == 1 and notes[0].startswith("note: the drift law was measured over"), notes


def _traces(path: Path, target: np.ndarray, nu: np.ndarray, rng: np.random.Generator,
            targets_column: bool = True) -> Path:
    """Drift traces at 5 times, 20 s to 2·10⁵ s, white ln G noise of 0.003."""
    times = np.geomspace(20, 2e5, 5)
    g = target[:, None] * (times / 20) ** -nu[:, None] * np.exp(rng.normal(0, 0.003, (nu.size, 5)))
    head = "device,g_target[uS],g[uS],t[s]" if targets_column else "device,g[uS],t[s]"
    path.write_text(head + "\n" + "".join(
        f"{i},{float(target[i])!r}," * targets_column + (f"{i}," if not targets_column else "")
        + f"{float(g[i, j])!r},{float(t)!r}\n" for i in range(nu.size)
        for j, t in enumerate(times)))
    return path


def test_a_noise_law_stays_positive_where_another_file_widens_the_range(tmp_path: Path) -> None:
    """Programming data at 5-20 µS with σ = 0.05 + 0.03 (G − 5) µS, a line that would cross 0
    at 3.3 µS, and drift traces from 1 µS: the programming law is kept above 0 down to 1 µS
    (the card reader accepts it), and the note names it as extrapolated."""
    from bayesim.devices.fitted_card import extrapolated, fit_card
    from bayesim.devices.presets import build_model

    rng = np.random.default_rng(2)
    targets = rng.uniform(5, 20, 1500)
    programming = tmp_path / "programming.csv"
    programming.write_text("device,g_target[uS],g[uS]\n" + "".join(
        f"{i},{float(t)!r},{float(t + rng.normal(0, 0.05 + 0.03 * (t - 5)))!r}\n"
        for i, t in enumerate(targets)))
    target = np.exp(rng.uniform(0, np.log(20), 300))
    drift = _traces(tmp_path / "drift.csv", target, np.abs(rng.normal(0.05, 0.01, 300)), rng)
    card, _ = fit_card([str(programming), str(drift)], "wide", bootstrap=1)
    model = build_model(card, "wide")
    assert model.calibrated_g[0] < 1.1
    assert model.sigma_program(np.linspace(*model.calibrated_g, 257)).min() > 0
    assert any(line.startswith("note: the program law") for line in extrapolated(card))


def test_a_spread_that_reaches_zero_survives_the_cards_rounding(tmp_path: Path) -> None:
    """ν_std = 0.008 ln(G/5 µS), 0 at the lowest target, 200 devices (a review's seed 17, where
    a log-linear ν_std pressed against 0 rounded below it and the card reader refused it)."""
    from bayesim.devices.fitted_card import fit_card

    rng = np.random.default_rng(17)
    target = np.exp(rng.uniform(np.log(5), np.log(20), 200))
    nu = np.abs(0.05 + 0.008 * np.log(target / 5) * rng.normal(size=200))
    card, _ = fit_card([str(_traces(tmp_path / "d.csv", target, nu, rng))], "c", bootstrap=1)
    assert card["drift"]["nu_std"]["law"] in ("constant", "log_linear")


def test_a_drift_file_without_targets_is_calibrated_over_its_first_reads(tmp_path: Path) -> None:
    """Without targets each trace's first read is its conductance: the calibrated range is
    theirs (not every read's, which drift pulls lower), and no law is noted as extrapolated."""
    from bayesim.devices.fitted_card import extrapolated, fit_card

    rng = np.random.default_rng(5)
    target = rng.uniform(2, 20, 300)
    nu = np.abs(rng.normal(0.05, 0.01, 300))
    path = _traces(tmp_path / "d.csv", target, nu, rng, targets_column=False)
    card, by_kind = fit_card([str(path)], "nt", bootstrap=1)
    data = by_kind["drift"]
    first = data.g[np.r_[0, np.flatnonzero(np.diff(data.device)) + 1]]
    assert card["range"]["calibrated_g"]["value"] == pytest.approx([first.min(), first.max()],
                                                                   rel=1e-5)
    assert extrapolated(card) == []


def test_traces_no_family_describes_get_the_table_law(tmp_path: Path) -> None:
    """Traces drawn from pcm_hermes_2023, whose ν_mean and ν_std are piecewise (a log-linear law
    below a break, a polynomial above): the cross-validation prefers the table pair to every
    family, and the card the machine reads back gives ν_mean within 6 % and ν_std within 15 %
    of the card's between the outer bins (1,000 devices, 125 per bin: the standard error of a
    bin's s is about 1/√250 = 6 % of it, and 15 % is 2.5 of them)."""
    import tomllib

    from bayesim.devices.fitted_card import fit_card, to_toml
    from bayesim.devices.presets import build_model

    model = load_preset("pcm_hermes_2023")
    times = np.geomspace(model.t0, model.t0 * 1e4, 9)
    rng = np.random.default_rng(0)
    n = 1000
    target = np.exp(rng.uniform(0.0, np.log(20.0), n))
    nu = model.drift_exponents(target, seed=3)
    g = target[:, None] * (times / model.t0) ** -nu[:, None] * np.exp(
        rng.normal(0, 0.003, (n, times.size)))
    path = tmp_path / "hermes.csv"
    path.write_text("device,g_target[uS],g[uS],t[s]\n" + "".join(
        f"{i},{float(target[i])!r},{float(g[i, j])!r},{float(t)!r}\n"
        for i in range(n) for j, t in enumerate(times)))
    card, _ = fit_card([str(path)], "hermes_fit", bootstrap=5)
    assert card["fit"]["drift_families"] == {"nu_mean": "table", "nu_std": "table"}
    cv = card["fit"]["drift_cv_loglik"]
    assert max(cv, key=cv.get) == "table/table" and "table/constant" not in cv
    fitted = build_model(tomllib.loads(to_toml(card)), "hermes_fit")
    assert card["drift"]["nu_mean"]["g"]["unit"] == "uS"
    at = np.array([2.5, 5.0, 10.0])
    (mean, std), (true_mean, true_std) = fitted.drift_nu(at), model.drift_nu(at)
    assert np.all(np.abs(mean / true_mean - 1) < 0.06), mean / true_mean
    assert np.all(np.abs(std / true_std - 1) < 0.15), std / true_std
