"""What the chip realises is what its own draws realise: weight_draws against the realised
posterior of every mapping, and the regression tests of the trustworthy-chip issue (each one
failed on the machine before it)."""

import math

import numpy as np
import pytest
import torch

from bayesim.bnn.layers import bayesian_layers
from bayesim.bnn.models import ModelConfig
from bayesim.machine import BayesianMachine, HardwareConfig, variance_decomposition
from bayesim.machine.read import read_seed_of
from bayesim.machine.realised import draws_within
from tests.test_machine import _model as small_mlp

CARDS = ("pcm_ibm_2020", "rram_lin2023")
MAPPINGS = ("M0", "M1", "M2", "M3", "M4")


def small_model(sigma: float = 0.05, seed: int = 0, hidden: int = 16) -> torch.nn.Module:
    """An MLP 10 → ``hidden`` → 3 (tests/test_machine.py's, with weights ~3× the default init
    and σ spread over [0.6, 1.4]·``sigma``)."""
    return small_mlp(hidden=(hidden,), sigma=sigma, seed=seed, inputs=10, classes=3)


@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("drift_time", [0.0, 3600.0])
def test_weight_draws_agree_with_the_realised_posterior(card: str, mapping: str,
                                                        drift_time: float) -> None:
    """For every mapping on both cards, at t₀ and at 1 h: the per-weight mean and std of 1,000
    weight_draws agree with the reported realised mean and std within 3 standard errors for at
    least 99 % of the weights (3 SE: 0.27 % of a correct report's weights fall outside)."""
    hw = HardwareConfig(device=card, mapping=mapping, drift_time=drift_time, copies=8,
                        allow_extrapolation=card == "rram_lin2023", realised_draws=300)
    machine = BayesianMachine(small_model(hidden=32), hw, warn=False)
    n = 1000
    counts = []
    for index in range(len(machine.layers)):
        draws = machine.weight_draws(index, n, seed=3)
        counts.append((draws[0].size, *draws_within(draws, machine.realised_posterior(index))))
    weights = sum(c[0] for c in counts)
    within_mean = sum(c[1] for c in counts) / weights
    within_std = sum(c[2] for c in counts) / weights
    assert within_mean >= 0.99, f"means within 3 SE: {within_mean:.4f} of {weights} weights"
    assert within_std >= 0.99, f"stds within 3 SE: {within_std:.4f} of {weights} weights"


ONE_HOT = {"dac_bits": 0, "adc_bits": 0, "out_noise": 0.0, "periphery": "aihwkit_default"}
"""A periphery that returns a one-hot input's column of weights unchanged (no converters, no
output noise): the tiles' reads are then the chip's weight samples."""


@pytest.mark.parametrize("mapping, drift_time, scope, scaling", [
    ("M1", 0.0, "layer", "physical"), ("M1", 3600.0, "column", "per_tile"),
    ("M2", 0.0, "layer", "physical"), ("M2", 3600.0, "column", "per_tile"),
    ("M3", 0.0, "column", "physical"), ("M3", 3600.0, "layer", "per_tile"),
    ("M4", 0.0, "layer", "per_tile"), ("M4", 3600.0, "column", "physical")])
def test_the_tiles_sample_probs_reads_realise_the_reported_posterior(
        mapping: str, drift_time: float, scope: str, scaling: str) -> None:
    """Independent of weight_draws: one-hot reads through the very tiles sample_probs reads
    (machine.matrices(s), sample s), drift gain, tile units, column scales and n devices per
    side included, have the per-weight mean and std the report states (within 3 standard errors
    for ≥ 99 % of the weights)."""
    hw = HardwareConfig(mapping=mapping, drift_time=drift_time, alpha_scope=scope,
                        tile_scaling=scaling, device="pcm_ibm_2020", copies=8,
                        realised_draws=300, **ONE_HOT)
    machine = BayesianMachine(small_model(hidden=32), hw, warn=False)
    n = 800
    eye = np.eye(10, dtype=np.float32)
    reads = np.stack([machine.matrices(s, seed=4)[0].mvm(eye, sample=s).T for s in range(n)])
    means, stds = draws_within(reads, machine.realised_posterior(0))
    assert means >= 0.99 * reads[0].size and stds >= 0.99 * reads[0].size, (means, stds)


@pytest.mark.parametrize("drift_time", [0.0, 3600.0])
def test_the_tiles_output_noise_is_a_physical_current(drift_time: float) -> None:
    """The tile unit is the weight of a full conductance difference, n·g_max/α, times the drift
    gain: one-hot reads with output noise have, per weight, the realised read variance plus
    (out_noise·unit)² — in weight units the fixed current's noise — and the drift gain restores
    the layer's total conductance (1 exactly where nothing drifts)."""
    from bayesim.machine.chip import drift_gain

    hw = HardwareConfig(mapping="M1", drift_time=drift_time, dac_bits=0, adc_bits=0,
                        out_noise=0.05, periphery="aihwkit_default")
    machine = BayesianMachine(small_model(hidden=32), hw, warn=False)
    layer = machine.layers[0]
    state = layer.states[0]
    unit = machine.chip.unit(layer, state)
    assert unit == pytest.approx(machine.device.g_max / layer.pairs.alpha * state.gain)
    assert (state.gain == 1.0) == (drift_time == 0.0)
    eye = np.eye(10, dtype=np.float32)
    reads = np.stack([machine.matrices(s, seed=4)[0].mvm(eye, sample=s).T for s in range(800)])
    expected = np.square(machine.realised_posterior(0).std) + (0.05 * unit) ** 2
    ratio = reads.var(axis=0, ddof=1) / expected
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)
    assert machine.chip.drift_gain_expected() == pytest.approx(state.gain, rel=0.05)
    g0 = np.array([1.0, 2.0, 3.0])
    assert drift_gain(g0, g0) == 1.0 and drift_gain(g0, g0 / 2) == pytest.approx(2.0)


def test_calibration_rows_measure_the_dac_scale() -> None:
    """The periphery's weight against a layer's weights uses the calibration rows' mean square
    against the DAC scale of their noise management: abs-max rows of one ±1 entry and zeros
    give 1/n; constant management (scale 1) the rows' plain mean square."""
    from bayesim.machine.adapters import find_layers
    from bayesim.machine.chip import Chip

    hw = HardwareConfig(mapping="M1")
    model = small_model()
    rows = np.zeros((64, 10), dtype=np.float32)
    rows[np.arange(64), np.arange(64) % 10] = 2.0
    hidden = np.full((64, 16), 0.5, dtype=np.float32)
    modules = find_layers(model)
    chip = Chip(modules, hw, {"device_writes": 0, "programming_events": 0}, None,
                [rows, hidden])
    assert chip.row_mean_square == pytest.approx([0.1, 1.0])
    constant = Chip(modules, hw.model_copy(update={"periphery": "standard_hwa"}),
                    {"device_writes": 0, "programming_events": 0}, None, [rows, hidden])
    assert constant.row_mean_square == pytest.approx([0.4, 0.25])  # nm_thres 1: scale 1
    assert chip.periphery_referred(0, 10) == pytest.approx(
        (0.04 ** 2 + (20 / 254) ** 2 / 12) * 25.0 ** 2 / (10 * 0.1))


def test_the_agreement_check_catches_a_wrong_report() -> None:
    """draws_within can fail: a report whose std is 10 % off (or whose mean is off by 0.2 σ) is
    caught for most weights with 1,000 draws."""
    from bayesim.machine.realised import Realised

    rng = np.random.default_rng(0)
    mean, std = rng.normal(0, 1, (20, 30)), rng.uniform(0.5, 2.0, (20, 30))
    draws = mean + std * rng.standard_normal((1000, 20, 30))
    assert draws_within(draws, Realised(mean, std, "exact"))[0] >= 0.99 * 600
    assert draws_within(draws, Realised(mean, std, "exact"))[1] >= 0.99 * 600
    assert draws_within(draws, Realised(mean, 1.1 * std, "exact"))[1] < 0.5 * 600
    assert draws_within(draws, Realised(mean + 0.2 * std, std, "exact"))[0] < 0.5 * 600


def test_weight_draws_are_the_samples_the_machine_reads() -> None:
    """Draw i of weight_draws is the state Monte-Carlo sample i reads: under M1 with read noise
    off, a one-hot read of sample i's tiles returns draw i's weights."""
    hw = HardwareConfig(mapping="M3", copies=4, read_noise_scale=0.0, out_noise=0.0,
                        dac_bits=0, adc_bits=0, periphery="aihwkit_default")
    machine = BayesianMachine(small_model(), hw, warn=False)
    draws = machine.weight_draws(0, 6, seed=2)
    eye = np.eye(10, dtype=np.float32)
    for s in range(6):
        read = machine.matrices(s, seed=2)[0].mvm(eye, sample=s).T
        np.testing.assert_allclose(read, draws[s], rtol=2e-5, atol=2e-6)


def test_m3_targets_the_spread_between_copies_not_the_programming_law_alone() -> None:
    """Finding 1: every copy also carries the 1/f noise accumulated by t₀ and the reads. With 200
    copies of IBM's PCM card at t = 0, the spread between copies over σ has a median of 1 (it
    was 1.25 with the programming law alone), and the report's fraction within ±10 % is the one
    measured from the copies."""
    model = small_model(sigma=0.08)
    hw = HardwareConfig(mapping="M3", copies=200, read_noise_scale=0.0,
                        alpha_policy="feasibility")  # most σ reachable: the law is what counts
    machine = BayesianMachine(model, hw, warn=False)
    for index, layer in enumerate(machine.layers):
        copies = np.stack([s.w for s in layer.states]).astype(np.float64)
        spread = copies.std(axis=0)
        reachable = np.abs(layer.pairs.sigma_realised / layer.sigma - 1) < 0.02
        assert reachable.mean() > 0.5
        ratio = np.median(spread[reachable] / layer.sigma[reachable])
        assert ratio == pytest.approx(1.0, abs=0.05), f"layer {index}: {ratio:.3f}"
        measured = np.mean(np.abs(spread / layer.sigma - 1) <= 0.10)
        reported = machine.realised()["layers"][index]["fraction_sigma_within"]
        assert reported == pytest.approx(measured, abs=1e-9)


def test_per_read_samplers_report_their_frozen_error_and_alpha_minimises_it() -> None:
    """Finding 2: under M1 the programmed state is a bias no number of reads averages away. The
    report gives |W − μ|/σ per layer (checked against the mean of the chip's own draws), and the
    default 'distance' α realises a closer posterior than the 'feasibility' α, which ignores the
    frozen error."""
    model = small_model()
    distance = BayesianMachine(model, HardwareConfig(mapping="M1"), warn=False)
    feasibility = BayesianMachine(model, HardwareConfig(mapping="M1",
                                                        alpha_policy="feasibility"), warn=False)
    draws = distance.weight_draws(0, 2000, seed=1).astype(np.float64)
    layer = distance.layers[0]
    bias = np.abs(draws.mean(0) - layer.mu) / layer.sigma
    reported = distance.realised()["layers"][0]
    assert reported["bias_median"] == pytest.approx(np.median(bias), rel=0.05)
    assert reported["bias_median"] > 0.3  # programming noise is a real frozen error here
    worse = feasibility.realised()["layers"]
    for better, other in zip(distance.realised()["layers"], worse, strict=True):
        assert better["w2_median"] <= other["w2_median"] + 0.02
    assert distance.realised()["pooled"]["w2_median"] < \
        feasibility.realised()["pooled"]["w2_median"] - 0.1


def test_ideal_periphery_keeps_the_devices_read_noise() -> None:
    """Finding 4: an 'ideal' periphery removes DAC, ADC and output noise, not the sampler. M0 on
    it draws N(μ, σ²) at every read, so on an MLP its mutual information is the software
    predictor's (it was ~1e-16: a plain matmul of μ)."""
    from bayesim.evaluate import SoftwarePredictor
    from bayesim.metrics import mutual_information

    model = small_model(sigma=0.3)
    x = torch.rand(40, 10, generator=torch.Generator().manual_seed(0))
    machine = BayesianMachine(model, HardwareConfig(mapping="M0", periphery="ideal"))
    chip = mutual_information(machine.sample_probs(x, 400, seed=0).double()).mean().item()
    software = mutual_information(SoftwarePredictor(model).sample_probs(x, 400, seed=1)
                                  .double()).mean().item()
    assert software > 1e-3
    assert chip == pytest.approx(software, rel=0.1)


def test_reprogramming_keeps_the_chips_stuck_devices() -> None:
    """Finding 5: re-programming (M2) writes the same devices; their stuck-at faults and window
    spread are frozen with the chip. Between two samples hardly any weight jumps by > 5σ (13 %
    did when every re-programming drew new faults with p_stuck_min = 0.05)."""
    model = small_model()
    hw = HardwareConfig(mapping="M2", p_stuck_min=0.05, read_noise_scale=0.0, drift=False)
    machine = BayesianMachine(model, hw, warn=False)
    draws = machine.weight_draws(0, 2, seed=0).astype(np.float64)
    jump = np.abs(draws[1] - draws[0]) / machine.layers[0].sigma
    assert np.mean(jump > 5) < 0.01
    # and the faults are there: a stuck device moves its weight in every sample alike
    clean = BayesianMachine(model, hw.model_copy(update={"p_stuck_min": 0.0}), warn=False)
    shift = np.abs(machine.realised_posterior(0).mean - clean.realised_posterior(0).mean)
    assert np.mean(shift / machine.layers[0].sigma > 3) > 0.02


def test_variance_decomposition_ablates_on_the_same_chip() -> None:
    """Finding 6: switching read noise off keeps the targets and α of the full chip (it moved α
    from 8.7 to 28.9 µS/unit when the ablation was mapped anew, with the feasibility α)."""
    model = small_model()
    hw = HardwareConfig(mapping="M1", alpha_policy="feasibility")
    full = BayesianMachine(model, hw, warn=False)
    off = BayesianMachine(model, hw.model_copy(update={"read_noise_scale": 0.0}),
                          mapping_of=full, warn=False)
    anew = BayesianMachine(model, hw.model_copy(update={"read_noise_scale": 0.0}), warn=False)
    for a, b in zip(full.layers, off.layers, strict=True):
        assert a.pairs.alpha == b.pairs.alpha
        np.testing.assert_array_equal(a.pairs.g_plus, b.pairs.g_plus)
    assert any(a.pairs.alpha != b.pairs.alpha for a, b in zip(full.layers, anew.layers,
                                                              strict=True))
    result = variance_decomposition(model, hw, {"clean": torch.rand(6, 10)}, 4, seed=0,
                                    machine=full)
    assert "same chip" in result["method"]


def test_periphery_noise_in_weight_units_falls_with_alpha() -> None:
    """Finding 7: with physical tile ranges the output noise is a fixed current, so in weight
    units it falls as 1/α: doubling α halves it (with per-tile normalisation it did not depend
    on α at all)."""
    model = small_model()
    base = {"mapping": "M1", "read_noise_scale": 0.0, "program_noise_scale": 0.0,
            "drift": False, "dac_bits": 0, "adc_bits": 0, "out_noise": 0.05,
            "periphery": "aihwkit_default"}
    x = np.zeros((4000, 10), dtype=np.float32)
    x[:, 0] = 1.0
    stds = {}
    for scaling in ("physical", "per_tile"):
        for alpha in (5.0, 10.0):
            machine = BayesianMachine(model, HardwareConfig(**base, alpha=alpha,
                                                            tile_scaling=scaling), warn=False)
            y = machine.matrices(0, seed=0)[0].mvm(x, sample=0)
            stds[scaling, alpha] = y.std(axis=0).mean()
    assert stds["physical", 5.0] / stds["physical", 10.0] == pytest.approx(2.0, rel=0.05)
    assert stds["per_tile", 5.0] / stds["per_tile", 10.0] == pytest.approx(1.0, rel=0.05)


def test_rows_of_zeros_get_output_noise() -> None:
    """Finding 10: a row of zeros is read like any other (it returned exact zeros)."""
    model = small_model()
    machine = BayesianMachine(model, HardwareConfig(mapping="M1", dac_bits=0, adc_bits=0,
                                                    out_noise=0.05), warn=False)
    y = machine.matrices(0, seed=0)[0].mvm(np.zeros((2000, 10), np.float32), sample=0)
    unit = machine.chip.unit(machine.layers[0], machine.layers[0].states[0])
    assert y.std() == pytest.approx(0.05 * unit, rel=0.05)


def test_copies_are_weighted_equally_whatever_s() -> None:
    """Finding 10: with S not a multiple of R, sample s of block ⌊s/R⌋ reads a random copy, so
    over Monte-Carlo seeds every copy is read equally often (s mod R read copies 0–3 twice and
    4–7 once for S = 12, R = 8)."""
    hw = HardwareConfig(mapping="M3", copies=8)
    machine = BayesianMachine(small_model(), hw, warn=False)
    scheme = machine.chip.scheme
    counts = np.zeros(8)
    for seed in range(400):
        read_seed = read_seed_of(seed)
        used = [scheme.state_of(s, read_seed, hw) for s in range(12)]
        assert sorted(used[:8]) == list(range(8))  # a complete block reads every copy once
        for r in used[8:]:
            counts[r] += 1
    expected = 400 * 4 / 8
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 24.3  # χ²₇ at p = 0.001


def test_standard_hwa_does_not_count_the_pcm_read_noise_twice() -> None:
    """Finding 10: the standard HWA preset's w_noise is PCM_READ noise, which pcm_ibm_2020's read
    law already is: the card owns the read noise, the preset's is dropped and said so."""
    model = small_model()
    hwa = BayesianMachine(model, HardwareConfig(mapping="M1", periphery="standard_hwa"),
                          warn=False)
    plain = BayesianMachine(model, HardwareConfig(mapping="M1"), warn=False)
    np.testing.assert_allclose(hwa.realised_posterior(0).std, plain.realised_posterior(0).std,
                               rtol=1e-6)
    assert hwa.chip.periphery.w_noise == 0
    assert any("w_noise" in note for note in hwa.hardware_report(1)["notes"])


def test_explicit_path_draws_every_device() -> None:
    """Finding 10: on the explicit path a weight of M4 sums 2n Laplace reads: its kurtosis is
    3 + 3·Σσ_k⁴/(Σσ_k²)², not a single Laplace's 6."""
    model = small_model()
    hw = HardwareConfig(device="rram_lin2023", mapping="M4", devices_per_weight=3,
                        read_path="explicit", dac_bits=0, adc_bits=0, out_noise=0.0,
                        periphery="aihwkit_default")
    machine = BayesianMachine(model, hw, warn=False)
    state = machine.layers[0].states[0]
    sig = state.device_sigma.astype(np.float64)[:, 0, 0]
    expected = 3 + 3 * np.sum(sig ** 4) / np.sum(sig ** 2) ** 2
    x = np.zeros((20000, 10), dtype=np.float32)
    x[:, 0] = 1.0
    y = machine.matrices(0, seed=0)[0].mvm(x, sample=0)[:, 0].astype(np.float64)
    z = (y - y.mean()) / y.std()
    kurtosis = float(np.mean(z ** 4))
    # SE of the sample kurtosis ≈ sqrt(24/n) for near-Gaussian data (more for heavier tails)
    assert kurtosis == pytest.approx(expected, abs=5 * math.sqrt(96 / x.shape[0]))
    assert kurtosis < 5.0


def test_time_outside_the_cards_calibrated_range_is_refused() -> None:
    from bayesim.errors import DeviceRangeError

    with pytest.raises(DeviceRangeError, match="calibrated time range"):
        BayesianMachine(small_model(), HardwareConfig(device="rram_lin2023", mapping="M4",
                                                      drift_time=3600.0))


def _lenet_with_wide_convolutions() -> torch.nn.Module:
    from bayesim.bnn.models import build_model

    model = build_model(ModelConfig(arch="lenet5"), seed=0).eval()
    with torch.no_grad():
        for k, layer in enumerate(bayesian_layers(model)):
            layer.weight_mu.mul_(2.0)
            sigma = 0.6 * layer.weight_mu.abs().mean() if k < 2 else 0.01
            layer.weight_rho.fill_(math.log(math.expm1(float(sigma))))
            layer.bias_rho.fill_(-12.0)
    return model


def test_convolutions_per_read_and_per_sample() -> None:
    """Finding 8: each im2col row is its own read, so a per-read sampler draws the weights of a
    convolution anew at every output position. M0 'per_sample' (one weight draw per sample,
    shared by all positions) reproduces software sampling on LeNet-5; M0 'per_read' does not —
    its mean probabilities move by many standard errors and its mutual information changes
    (here it falls: pooling averages the independent noise of neighbouring positions)."""
    from bayesim.evaluate import SoftwarePredictor
    from bayesim.metrics import mutual_information

    model = _lenet_with_wide_convolutions()
    x = torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    s = 400
    software = SoftwarePredictor(model).sample_probs(x, s, seed=7).double()
    ideal = {"mapping": "M0", "periphery": "ideal"}
    results = {}
    for variant in ("per_sample", "per_read"):
        machine = BayesianMachine(model, HardwareConfig(**ideal, m0_sampling=variant))
        probs = machine.sample_probs(x, s, seed=3).double()
        se = torch.sqrt((probs.var(0) + software.var(0)) / s)
        results[variant] = (((probs.mean(0) - software.mean(0)).abs() / (se + 1e-12)).max(),
                            mutual_information(probs).mean() /
                            mutual_information(software).mean())
    assert results["per_sample"][0] < 5.0
    assert results["per_sample"][1] == pytest.approx(1.0, abs=0.1)
    assert results["per_read"][0] > 5.0
    assert abs(results["per_read"][1] - 1.0) > 0.1
    assert results["per_read"][1] > 0.2  # changed, not gone


def test_the_default_chip_is_not_the_failing_one() -> None:
    """Finding 9: the default HardwareConfig and experiments/machine_pcm.toml (the README's
    example) are a PCM chip that works — programmed copies, α for the smallest distance — and
    the per-read PCM chip is kept as a named example of the failure."""
    from pathlib import Path

    from bayesim.config import load_config

    experiments = Path(__file__).resolve().parents[1] / "experiments"
    default = HardwareConfig()
    shipped = load_config(experiments / "machine_pcm.toml").hardware
    failing = load_config(experiments / "machine_pcm_m1.toml").hardware
    assert default.mapping == shipped.mapping == "M3" and default.alpha_policy == "distance"
    assert failing.mapping == "M1"
    model = small_model(sigma=0.03)
    works = BayesianMachine(model, default, warn=False).realised()
    fails = BayesianMachine(model, failing, warn=False).realised()
    assert works["pooled"]["w2_median"] < fails["pooled"]["w2_median"] - 0.25
