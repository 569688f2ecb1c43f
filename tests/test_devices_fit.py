"""Device cards fitted from measurements: data drawn from shipped cards is fitted back (intervals
that cover the truth, statistics that pass the same KS tests as the original), the machine runs on
a fitted card, and bad data is refused with one line and nothing written."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bayesim.devices import load_preset
from bayesim.devices.drift_fit import DRIFT_FAMILIES
from bayesim.devices.fit import fit_noise, fit_reads
from bayesim.devices.fitted_card import fit_card, to_toml
from bayesim.devices.measurements import read_measurements
from bayesim.devices.presets import build_model

PCM_READ_K = 0.0875  # pcm_ibm_2020 [read] sqrt law, uS^0.5
PCM_PROGRAM_ABS = (0.26348, 1.9650 / 25, -1.1731 / 625)  # its normalised polynomial in µS


def write_reads(path: Path, card: str, n_devices: int, n_reads: int, lo: float, hi: float,
                seed: int = 0, header_units: bool = True) -> Path:
    """Programmed-and-read data drawn from a shipped card: targets uniform in [lo, hi] µS, one
    programming per device, ``n_reads`` reads of each."""
    model = load_preset(card)
    target = np.random.default_rng(seed).uniform(lo, hi, n_devices)
    g = model.program(target, seed=seed + 1)  # programming noise and device-to-device spread
    reads = model.read(g, n_reads, seed=seed + 2)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device", "g_target[uS]" if header_units else "g_target",
                         "g[uS]" if header_units else "g", "read"])
        for d in range(n_devices):
            for r in range(n_reads):
                writer.writerow([f"dev{d}", target[d], reads[r, d], r])
    return path


def test_pcm_reads_and_programming_are_fitted_back(tmp_path: Path) -> None:
    data = read_measurements(write_reads(tmp_path / "pcm.csv", "pcm_ibm_2020", 1500, 10, 2, 23))
    fit = fit_reads(data, bootstrap=100)
    assert (fit.read.family, fit.read.shape) == ("sqrt", "gaussian")
    lo, hi = fit.read.ci95["k"]
    assert lo <= PCM_READ_K <= hi
    # the fitted σ_prog and σ_read within 4 standard errors of the card's at three targets, the
    # standard error from the fit's own bootstrap (the 95 % band is 3.92 of them wide)
    model = load_preset("pcm_ibm_2020")
    g = np.array([4.0, 12.0, 20.0])
    for law, truth in ((fit.program, model.sigma_program(g)), (fit.read, model.sigma_read(g))):
        low, high = law.sigma_interval(g)
        assert np.all(np.abs(law.sigma(g) - truth) < 4 * (high - low) / 3.92), (law.params,
                                                                                truth)
    # independent reads: ρ = 0 within 4 standard deviations of the estimator, the pooled ratio's
    # 1/√(N(n − 1)) over the slope 0.78 of its expectation in ρ at n = 10
    assert fit.lag1 is not None and abs(fit.lag1) < 4 / (0.78 * np.sqrt(1500 * 9))


def test_the_fitted_card_draws_pass_the_ks_test_against_the_original(tmp_path: Path) -> None:
    path = write_reads(tmp_path / "pcm.csv", "pcm_ibm_2020", 1500, 10, 2, 23)
    card, by_kind = fit_card([str(path)], "pcm_fitted", bootstrap=20)
    assert list(by_kind) == ["reads"]
    fitted = build_model(card, "pcm_fitted")
    original = load_preset("pcm_ibm_2020")
    n = 2000  # a KS test of this size misses a σ error of a few per cent, not a wrong law
    for g in (4.0, 12.0, 20.0):
        target = np.full(n, g)
        ours = fitted.program(target, seed=5) - g
        theirs = original.program(target, seed=6) - g
        assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
        reads_ours = fitted.read(np.full(n, g), 1, seed=7)[0] - g
        reads_theirs = original.read(np.full(n, g), 1, seed=8)[0] - g
        assert stats.ks_2samp(reads_ours, reads_theirs).pvalue > 1e-3
    text = to_toml(card)
    assert "ci95" in text and "SHA-256" in text and 'calibrated_g' in text


def test_rram_laplace_read_noise_is_recognised(tmp_path: Path) -> None:
    data = read_measurements(write_reads(tmp_path / "rram.csv", "rram_lin2023", 400, 30, 0.5,
                                         3.9))
    fit = fit_reads(data, bootstrap=20)
    assert fit.read.shape == "laplace"
    model = load_preset("rram_lin2023")
    g = np.array([1.0, 2.0, 3.5])
    low, high = fit.read.sigma_interval(g)  # 4 bootstrap standard errors
    assert np.all(np.abs(fit.read.sigma(g) - model.sigma_read(g)) < 4 * (high - low) / 3.92)


def simulated_reads(sigma: float, n_devices: int, n_reads: int, shape: str, rho: float = 0.0,
                    seed: int = 0):
    """Repeated reads of devices at 1-3 µS with per-read σ, ``shape`` noise and AR(1) lag-1
    correlation ``rho``, as read_measurements returns them."""
    from bayesim.devices.measurements import Measurements

    rng = np.random.default_rng(seed)
    if shape == "laplace":
        noise = rng.laplace(0.0, sigma / np.sqrt(2), (n_devices, n_reads))
    else:
        noise = rng.normal(0.0, sigma, (n_devices, n_reads))
    for t in range(1, n_reads):
        noise[:, t] = rho * noise[:, t - 1] + np.sqrt(1 - rho**2) * noise[:, t]
    g = rng.uniform(1.0, 3.0, (n_devices, 1)) + noise
    return Measurements(Path("simulated.csv"), np.repeat(np.arange(n_devices), n_reads),
                        [str(i) for i in range(n_devices)], g.reshape(-1), None, None,
                        np.tile(np.arange(n_reads), n_devices).astype(np.float64))


def test_laplace_read_noise_has_an_unbiased_sigma() -> None:
    """Reads less their device's mean are a blend of n Laplace draws: the Laplace
    maximum-likelihood σ of them, √2·mean|e|, is 5 % high at n = 5. The fit takes σ from the
    squared residuals; 100,000 residuals put it within 4 bootstrap standard errors (about 1 %)."""
    fit = fit_reads(simulated_reads(0.1, 20_000, 5, "laplace"), bootstrap=50,
                    families=("constant",))
    assert fit.read.shape == "laplace"
    low, high = fit.read.ci95["value"]
    assert abs(fit.read.params["value"] - 0.1) < 4 * (high - low) / 3.92, fit.read.params


def test_the_lag1_correlation_of_correlated_reads_is_recovered() -> None:
    """AR(1) reads with ρ = 0.4, 10 per device: removing each device's mean biases the pooled
    lag-1 ratio by about −0.20 here; the fit inverts that bias exactly."""
    fit = fit_reads(simulated_reads(0.1, 3000, 10, "gaussian", rho=0.4), bootstrap=100,
                    families=("constant",))
    low, high = fit.lag1_ci95
    assert abs(fit.lag1 - 0.4) < 4 * (high - low) / 3.92, (fit.lag1, fit.lag1_ci95)


def test_the_lag1_of_mixed_read_counts_and_of_two_reads() -> None:
    """Devices with 3 and with 10 reads, ρ = 0.6: the estimate is consistent for the mix (a
    weighting that is right only at ρ = 0 reads it as 0.53); devices with two reads,
    whose demeaned ratio is −1/2 whatever ρ is, give no lag-1."""
    from bayesim.devices.measurements import Measurements

    three = simulated_reads(0.1, 6000, 3, "gaussian", rho=0.6, seed=1)
    ten = simulated_reads(0.1, 2000, 10, "gaussian", rho=0.6, seed=2)
    mixed = Measurements(Path("mixed.csv"), np.r_[three.device, ten.device + 6000],
                         three.names + [str(6000 + i) for i in range(2000)],
                         np.r_[three.g, ten.g], None, None, np.r_[three.read, ten.read])
    fit = fit_reads(mixed, bootstrap=100, families=("constant",))
    low, high = fit.lag1_ci95
    assert abs(fit.lag1 - 0.6) < 4 * (high - low) / 3.92, (fit.lag1, fit.lag1_ci95)
    assert fit_reads(simulated_reads(0.1, 500, 2, "gaussian"), bootstrap=5,
                     families=("constant",)).lag1 is None


def test_interval_coverage_of_a_known_law() -> None:
    """40 repeated fits of σ = k √G data: the 95 % interval covers k in ≥ 80 % (the binomial
    4.3-σ lower limit of 38 expected covers)."""
    k, covered = 0.09, 0
    for repeat in range(40):
        rng = np.random.default_rng(repeat)
        g = rng.uniform(1, 20, 300)
        e = rng.normal(0, k * np.sqrt(g))
        fit = fit_noise(g, e, np.arange(g.size), families=("sqrt",), bootstrap=100, seed=repeat)
        lo, hi = fit.ci95["k"]
        covered += lo <= k <= hi
    assert covered >= 32


def test_drift_exponents_are_fitted_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    times = np.array([20.0, 200.0, 2e3, 2e4, 2e5])
    path = tmp_path / "drift.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device", "g_target[uS]", "g[uS]", "t[s]"])
        for d in range(600):
            target = rng.uniform(2, 20)
            nu = rng.normal(0.05, 0.01)
            for t in times:
                g = target * (t / 20.0) ** -nu * np.exp(rng.normal(0, 0.002))
                writer.writerow([d, target, g, t])
    card, by_kind = fit_card([str(path)], "drifty", bootstrap=100)
    assert list(by_kind) == ["drift"]
    drift = card["drift"]
    assert drift["t0"]["value"] == 20.0
    assert card["range"]["calibrated_t"]["value"] == [0.0, 2e5 - 20.0]
    assert set(card["fit"]["drift_families"].values()) <= set(DRIFT_FAMILIES)
    # whichever laws the cross-validation picks, the machine's ν moments on the fitted card are
    # the truth's (0.05, 0.01) across the targets: 600 slopes give the mean a standard error of
    # 0.0004 (the ends of a fitted line about 3 times it) and the spread one of 0.0003
    at = np.linspace(*card["range"]["calibrated_g"]["value"], 3)
    mean, std = build_model(card, "drifty").drift_nu(at)
    assert np.all(np.abs(mean - 0.05) < 0.004), mean
    assert np.all(np.abs(std - 0.01) < 0.003), std


CONSOLE = Path(sys.executable).parent / "bayesim"


def cli(*args: str) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    return subprocess.run([str(CONSOLE), *args], capture_output=True, text=True, timeout=600,
                          check=False)


def test_devices_fit_cli_writes_a_card_the_machine_loads(tmp_path: Path) -> None:
    path = write_reads(tmp_path / "pcm.csv", "pcm_ibm_2020", 300, 5, 2, 23)
    out = tmp_path / "card.toml"
    result = cli("devices", "fit", str(path), "--out", str(out), "--name", "mine",
                 "--bootstrap", "20", "--plot")
    assert result.returncode == 0, result.stderr
    assert out.with_suffix(".png").stat().st_size > 0 and out.with_suffix(".pdf").is_file()
    model = load_preset(str(out))
    assert model.read_law is not None and model.program_law is not None
    shown = cli("devices", "show", str(out), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == "mine"
    # devices plot draws any card's laws over measured data: the fitted card and the original
    for card in (str(out), "pcm_ibm_2020"):
        figure = tmp_path / f"{Path(card).stem}_over_data.png"
        plotted = cli("devices", "plot", card, "--data", str(path), "--out", str(figure))
        assert plotted.returncode == 0, plotted.stderr
        assert figure.stat().st_size > 0 and figure.with_suffix(".pdf").is_file()


BAD = {
    "missing column": ("device,g_target[uS]\n0,1.0\n", "missing column 'g'"),
    "negative": ("device,g_target[uS],g[uS]\n0,1.0,1.1\n1,1.0,-0.2\n", "negative"),
    "not finite": ("device,g_target[uS],g[uS]\n0,1.0,1.1\n1,1.0,nan\n", "not finite"),
    "unit": ("device,g_target[uS],g[furlong]\n0,1.0,1.1\n1,1.0,1.0\n", "unit 'furlong'"),
    "no unit": ("device,g_target,g\n0,1.0,1.1\n1,1.0,1.0\n", "has no unit"),
    "one device": ("device,g_target[uS],g[uS]\n0,1.0,1.1\n", "fewer than 2 devices"),
    "time": ("device,g[uS],t[s]\n0,1.0,20\n0,0.9,10\n1,1.0,20\n1,0.9,200\n",
             "time is not increasing"),
    "column twice": ("device,g[uS],g[uS]\n0,1.0,1.1\n1,1.0,1.0\n", "appears twice"),
    "same name": ("device,g[uS],G[mS]\n0,1.0,0.001\n1,1.0,0.001\n", "two columns are 'g'"),
    "mixed counts": ("device,g[uS]\n0,1.0\n0,1.1\n1,1.0\n1,0.9\n2,1.0\n",
                     "1 devices have one row and 2 several"),
    "read index": ("device,g[uS],read\n0,1.0,0\n0,1.1,inf\n1,1.0,0\n1,0.9,1\n",
                   "not a whole number"),
    "no targets": ("device,g[uS]\n0,1.0\n1,1.1\n2,0.9\n", "needs a g_target column"),
    "drift at 0 uS": ("device,g_target[uS],g[uS],t[s]\n0,0,0.5,20\n0,0,0.4,200\n"
                      "1,2,2.0,20\n1,2,1.9,200\n", "programmed to 0 µS"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_data_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, case: str) -> None:
    text, message = BAD[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    out = tmp_path / "card.toml"
    result = cli("devices", "fit", str(path), "--out", str(out), "--bootstrap", "5")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists()


def test_the_machine_runs_on_a_fitted_card(tmp_path: Path, data_root: Path,
                                           tiny_overrides: list[str]) -> None:
    from bayesim.config import ExperimentConfig, apply_overrides, validate
    from bayesim.pipeline import simulate_model, train_experiment

    card, _ = fit_card([str(write_reads(tmp_path / "pcm.csv", "pcm_ibm_2020", 400, 5, 0.5,
                                        24.5))], "mine", "PCM", bootstrap=5)
    path = tmp_path / "mine.toml"
    path.write_text(to_toml(card))
    config = validate(ExperimentConfig, apply_overrides({}, [
        *tiny_overrides, f"hardware.device='{path}'", "hardware.mapping='M3'",
        "hardware.copies=2", "hardware.decomposition_inputs=0"]), "test")
    trained = train_experiment(config, tmp_path / "fp32", progress=False)
    report = simulate_model(trained.model, trained.benchmark, config, progress=False).report
    assert report["hardware"]["device"] == "mine"
    assert 0.0 <= report["in_distribution"]["accuracy"] <= 1.0


def test_parquet_reads_like_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = write_reads(tmp_path / "pcm.csv", "pcm_ibm_2020", 50, 4, 2, 23)
    rows = list(csv.DictReader(path.open()))
    table = pa.table({"device": [r["device"] for r in rows],
                      "g_target[mS]": [float(r["g_target[uS]"]) / 1000 for r in rows],
                      "g[mS]": [float(r["g[uS]"]) / 1000 for r in rows],
                      "read": [int(r["read"]) for r in rows]})
    pq.write_table(table, tmp_path / "pcm.parquet")
    a, b = read_measurements(path), read_measurements(tmp_path / "pcm.parquet")
    assert a.names == b.names and np.allclose(a.g, b.g, rtol=1e-12)
    assert np.array_equal(a.read, b.read)


def test_devices_at_zero_conductance_give_a_card(tmp_path: Path) -> None:
    """Devices programmed to the window's floor read exactly 0 µS (clipped, σ_read(0) = 0): their
    reads carry no density under a law with σ > 0 and none to compare under σ = 0, so they are
    left out of the read law and counted; the card loads."""
    import tomllib

    path = write_reads(tmp_path / "low.csv", "pcm_ibm_2020", 200, 4, 0.0, 2.0)
    card, _ = fit_card([str(path)], "low", "PCM", bootstrap=5)
    assert card["fit"]["read_devices_without_spread"] > 0
    parsed = tomllib.loads(to_toml(card))
    assert parsed["fit"] == card["fit"]
    build_model(parsed, "low")


def test_an_infinite_diagnostic_is_written_as_toml_infinity() -> None:
    """A family whose σ vanishes where there are residuals has a cross-validated
    log-likelihood of -inf; the card keeps it as TOML's -inf (a card reader reads it back)."""
    import tomllib

    card = {"name": "x", "fit": {"read_cv_loglik": {"sqrt/gaussian": -np.inf, "table": -3.5}}}
    assert tomllib.loads(to_toml(card)) == card
    with pytest.raises(ValueError, match="nan"):
        to_toml({"fit": {"x": float("nan")}})


def test_a_spreadsheet_csv_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text("device,g_target[uS],g[uS]\n0,1.0,1.1\n1,2.0,1.9\n", encoding="utf-8-sig")
    data = read_measurements(path)
    assert data.names == ["0", "1"] and data.g.tolist() == [1.1, 1.9]


def test_the_censored_likelihood_matches_its_integral() -> None:
    """censored_loglik against scipy: the clipped masses and the density inside for one
    achieved conductance (no read noise), and the numerical convolution of the clipped state
    with a device mean's read noise."""
    from scipy import integrate

    from bayesim.devices.fit import censored_loglik

    sigma, lo, hi = 0.8, -1.5, 0.7  # window ends less the target, µS
    e = np.array([lo, 0.3, hi])
    got = [censored_loglik(e[i:i + 1], np.array([sigma]), np.zeros(1), np.array([lo]),
                           np.array([hi])) for i in range(3)]
    want = [stats.norm.logcdf(lo / sigma), stats.norm.logpdf(0.3, scale=sigma),
            stats.norm.logsf(hi / sigma)]
    assert np.allclose(got, want, rtol=1e-12)
    v = 0.05**2
    for x in (-1.6, -0.2, 0.5, 0.75):
        inside, _ = integrate.quad(lambda s, x=x: stats.norm.pdf(s, scale=sigma)
                                   * stats.norm.pdf(x - s, scale=np.sqrt(v)), lo, hi)
        density = inside + stats.norm.cdf(lo / sigma) * stats.norm.pdf(x - lo, scale=np.sqrt(v)) \
            + stats.norm.sf(hi / sigma) * stats.norm.pdf(x - hi, scale=np.sqrt(v))
        got = censored_loglik(np.array([x]), np.array([sigma]), np.array([v]), np.array([lo]),
                              np.array([hi]))
        assert got == pytest.approx(np.log(density), rel=1e-7)


def test_a_window_recovers_the_law_of_clipped_states(tmp_path: Path) -> None:
    """Devices programmed near the ends of a 0-10 µS window, σ_prog = 1 µS, achieved values
    clipped to the window: read as unclipped the spread is 20 % low; with --window the fit is
    within 4 bootstrap standard errors of 1 µS."""
    from bayesim.devices.fit import fit_programming

    rng = np.random.default_rng(3)
    target = np.r_[rng.uniform(0.0, 1.5, 3000), rng.uniform(8.5, 10.0, 3000)]
    target[:2] = 0.0, 10.0
    g = np.clip(target + rng.normal(0.0, 1.0, target.size), 0.0, 10.0)
    path = tmp_path / "clipped.csv"
    path.write_text("device,g_target[uS],g[uS]\n" + "".join(
        f"{i},{float(t)!r},{float(x)!r}\n"
        for i, (t, x) in enumerate(zip(target, g, strict=True))))
    data = read_measurements(path)
    naive = fit_programming(data, bootstrap=0, families=("constant",))
    assert naive.params["value"] < 0.9
    fit = fit_programming(data, bootstrap=50, families=("constant",), window=(0.0, 10.0))
    low, high = fit.ci95["value"]
    assert abs(fit.params["value"] - 1.0) < 4 * (high - low) / 3.92, fit.params
    card, _ = fit_card([str(path)], "clipped", bootstrap=5, window=(0.0, 10.0))
    assert card["range"]["g_min"]["value"] == 0.0 and card["range"]["g_max"]["value"] == 10.0
    # the residuals taken as clipped, counted per end: the states on 0 and on 10 µS exactly
    assert card["fit"]["program_clipped_at_ends"] == [int(np.sum(g == 0.0)),
                                                      int(np.sum(g == 10.0))]
    assert min(card["fit"]["program_clipped_at_ends"]) > 500
    result = cli("devices", "fit", str(path), "--out", str(tmp_path / "c.toml"), "--window",
                 "0", "9", "--bootstrap", "5")
    assert result.returncode == 2 and "outside the window" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "c.toml").exists()
    # a window needs a programming law to act on
    reads = tmp_path / "reads.csv"
    reads.write_text("device,g[uS]\n0,1.0\n0,1.1\n1,2.0\n1,2.1\n")
    from bayesim.errors import DataError

    with pytest.raises(DataError, match="fit no programming law"):
        fit_card([str(reads)], "r", bootstrap=5, window=(0.0, 10.0))


def test_the_sweep_table_compares_each_card_with_the_original(tmp_path: Path) -> None:
    """experiments/devices_fit_sweep_table.py on a hand-made results.csv (two mappings, a
    different value per metric): the difference of means, its standard error from the chips'
    spreads, z, and the paired differences' mean, spread, t and p."""
    from tests.scripts import experiment_module

    table = experiment_module("devices_fit_sweep_table")
    columns = ["point_id", "status", "config.run", "config.hardware.device",
               "config.hardware.mapping", "config.hardware.chip_seed",
               *(f"metric.{m}" for m in table.METRICS)]
    values = {"pcm_ibm_2020": [0.90, 0.92, 0.94], "cards/mine.toml": [0.91, 0.95, 0.96]}
    with (tmp_path / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for mapping, offset in (("M1", 1.0), ("M3", 0.0)):
            for device, series in values.items():
                for seed, value in enumerate(series):
                    writer.writerow([f"{device}{mapping}{seed}", "done", "analog", device,
                                     mapping, seed, *(value * (k + 1) + offset
                                                      for k in range(len(table.METRICS)))])
        writer.writerow(["ref", "done", "fp32", "", "", "", *([0.5] * len(table.METRICS))])
    rows = table.compare(table.SweepResults.load(tmp_path))
    assert len(rows) == 2 * len(table.METRICS) and {r["card"] for r in rows} == {"mine"}
    row = next(r for r in rows if r["mapping"] == "M3" and r["metric"] == table.METRICS[1])
    scale = 2  # the second metric is twice the first
    assert row["original_mean"] == pytest.approx(0.92 * scale)
    assert row["difference"] == pytest.approx(0.02 * scale)
    assert row["standard_error"] == pytest.approx(
        scale * np.sqrt(0.02**2 / 3 + np.var([0.91, 0.95, 0.96], ddof=1) / 3))
    assert row["z"] == pytest.approx(row["difference"] / row["standard_error"])
    paired = scale * np.array([0.01, 0.03, 0.02])
    assert row["paired_mean"] == pytest.approx(paired.mean())
    assert row["paired_std"] == pytest.approx(paired.std(ddof=1))
    t = paired.mean() / (paired.std(ddof=1) / np.sqrt(3))
    assert row["paired_t"] == pytest.approx(t)
    assert row["paired_p"] == pytest.approx(2 * stats.t.sf(t, 2))
    m1 = next(r for r in rows if r["mapping"] == "M1" and r["metric"] == table.METRICS[0])
    assert m1["original_mean"] == pytest.approx(1.92)
    assert "mine against pcm_ibm_2020, paired p < 0.01: none" in table.markdown(rows)


def test_the_state_card_holds_the_cards_own_spread_at_t0(tmp_path: Path) -> None:
    from tests.scripts import experiment_module

    example = experiment_module("devices_fit_example")
    card, _ = fit_card([str(write_reads(tmp_path / "pcm.csv", "pcm_ibm_2020", 300, 4, 0.0,
                                        25.0))], "mine", "PCM", bootstrap=5,
                       window=(0.0, 25.0))
    (tmp_path / "mine.toml").write_text(to_toml(card))
    out = tmp_path / "state.toml"
    text = example.state_card("pcm_ibm_2020", str(tmp_path / "mine.toml"), 0.0, "state_card")
    out.write_text(text)
    # every section of the fitted card but [program] is kept as it was
    import tomllib

    ours, theirs = tomllib.loads(text), tomllib.loads(to_toml(card))
    assert {k: v for k, v in ours.items() if k not in ("name", "program")} == \
        {k: v for k, v in theirs.items() if k not in ("name", "program")}
    state, original = load_preset(str(out)), load_preset("pcm_ibm_2020")
    g = np.array([1.0, 12.5, 24.0])
    truth = np.sqrt(original.sigma_program(g) ** 2 + original.sigma_accumulated(g, 0.0) ** 2)
    assert state.name == "state_card" and np.allclose(state.sigma_program(g), truth, rtol=1e-5)
    assert np.allclose(state.sigma_read(g), load_preset(str(tmp_path / "mine.toml")).sigma_read(g))


def test_a_law_with_a_break_is_fitted_as_piecewise(tmp_path: Path) -> None:
    """Programming data whose σ jumps at 8 µS (0.1 + 0.05 G below, 0.9 − 0.02 G above, as the
    HERMES fits have pieces on either side of a break): the cross-validation picks the piecewise
    law, its break lands within 0.6 µS of 8 µS (a fine grid step is 1/40 of the data, 0.5 µS),
    and the card the machine reads back draws σ within 15 % of the truth: 3 standard errors at
    the ends of a line fitted to the 740 devices below the break (σ/√(2n), doubled at an end)."""
    import tomllib

    rng = np.random.default_rng(1)
    target = rng.uniform(1, 20, 2000)

    def truth(g: np.ndarray) -> np.ndarray:
        return np.where(g < 8, 0.1 + 0.05 * g, 0.9 - 0.02 * g)

    path = tmp_path / "programming.csv"
    path.write_text("device,g_target[uS],g[uS]\n" + "".join(
        f"{d},{t},{t + rng.normal(0, truth(t))}\n" for d, t in enumerate(target)))
    # a window wider than the targets: the break is written in x = G/g_max with g_max = 25 µS,
    # not the measured 20 µS, and the machine must read it back at 8 µS
    card, _ = fit_card([str(path)], "broken", bootstrap=5, window=(0.0, 25.0))
    program = card["program"]
    assert program["law"] == "piecewise", card["fit"]["program_cv_loglik"]
    assert card["range"]["g_max"]["value"] == 25.0
    assert program["breaks"]["value"][0] * 25.0 == pytest.approx(8.0, abs=0.6)
    model = build_model(tomllib.loads(to_toml(card)), "broken")
    at = np.array([2.0, 5.0, 7.0, 10.0, 15.0, 19.0])
    assert np.all(np.abs(model.sigma_program(at) / truth(at) - 1) < 0.15), model.sigma_program(at)
