"""The Bayesian machine: variance-aware mapping, realised σ, software agreement, reproducibility."""

import math

import numpy as np
import pytest
import torch

from bayesim.bnn.layers import attach_generator, bayesian_layers
from bayesim.bnn.models import MLP, ModelConfig, build_model
from bayesim.cli import main
from bayesim.config import ExperimentConfig
from bayesim.crossbar.mapping import (
    feasibility_report,
    map_pairs,
    pair_sigma,
    snap_pairs,
    solve_common_mode,
)
from bayesim.devices.laws import Proportional, Sqrt
from bayesim.errors import ConfigError, MappingError
from bayesim.evaluate import SoftwarePredictor
from bayesim.machine import BayesianMachine, HardwareConfig, variance_decomposition
from bayesim.schema import validate
from tests.statcheck import Z

# read noise only (pcm_ibm_2020's σ = 0.0875·√G µS), exact periphery: what M1 realises is σ
PURE_READ = {"device": "pcm_ibm_2020", "mapping": "M1", "program_noise_scale": 0.0,
             "drift": False, "dac_bits": None, "adc_bits": None, "out_noise": 0.0,
             "periphery": "aihwkit_default"}


class Generic:
    """A law the solver cannot recognise: forces the numerical path."""

    def __init__(self, law):
        self.law = law

    def __call__(self, g, g_max):
        return self.law(g, g_max)


def _model(hidden=(24,), sigma=0.05, seed=0, inputs=12, classes=4) -> torch.nn.Module:
    """A small MLP with weights ~3× the default init and σ spread over [0.6, 1.4]·``sigma``."""
    model = MLP(ModelConfig(arch="mlp", hidden=list(hidden)), in_features=inputs,
                n_classes=classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in bayesian_layers(model):
            layer.reset_parameters(gen)
            layer.weight_mu.mul_(3.0)
            spread = torch.rand(layer.weight_rho.shape, generator=gen) * 0.8 + 0.6
            layer.weight_rho.copy_(torch.log(torch.expm1(sigma * spread)))
    attach_generator(model, seed)
    return model.eval()


@pytest.mark.parametrize("law", [Sqrt(0.0875), Proportional(0.03)])
def test_closed_forms_agree_with_the_numerical_solve(law) -> None:
    rng = np.random.default_rng(0)
    mu = rng.normal(0, 0.2, 4000)
    sigma = rng.uniform(0.01, 0.06, 4000)
    alpha = 10.0
    d = alpha * mu / 2
    closed = solve_common_mode(law, d, sigma, alpha, 0.0, 25.0)
    numeric = solve_common_mode(Generic(law), d, sigma, alpha, 0.0, 25.0)
    reached = pair_sigma(law, closed + d, closed - d, alpha, 25.0)
    inside = np.abs(reached / sigma - 1) < 1e-9
    assert inside.mean() > 0.5  # the test means something: most targets are reachable here
    np.testing.assert_allclose(numeric[inside], closed[inside], rtol=1e-6, atol=1e-6)
    # outside the reachable range both clip to the same edge of the window
    np.testing.assert_allclose(numeric[~inside], closed[~inside], rtol=1e-3, atol=1e-3)


def test_common_mode_realises_sigma_at_fixed_mean() -> None:
    law = Sqrt(0.0875)
    mu = np.array([0.3, -0.3, 0.0, 0.1])
    sigma = np.array([0.02, 0.02, 0.03, 0.01])
    pm = map_pairs(mu, sigma, law, 0.0, 25.0, alpha=20.0)
    np.testing.assert_allclose(pm.weight, mu, atol=1e-12)
    np.testing.assert_allclose(pm.sigma_realised, sigma, rtol=1e-9)
    # σ²_w = 2q·c/α² with q = k²: the closed form of bayesim/crossbar/mapping.py (M5)
    c = (pm.g_plus + pm.g_minus) / 2
    np.testing.assert_allclose(2 * 0.0875 ** 2 * c / 20.0 ** 2, sigma ** 2, rtol=1e-9)
    # without the common-mode knob the unused device sits at g_min and σ follows μ
    plain = map_pairs(mu, sigma, law, 0.0, 25.0, alpha=20.0, common_mode=False)
    assert np.all(np.minimum(plain.g_plus, plain.g_minus) == 0.0)


def test_unreachable_sigma_is_reported_not_matched() -> None:
    law = Sqrt(0.0875)
    mu = np.array([0.0, 0.0, 0.3])
    sigma = np.array([0.02, 10.0, 1e-6])  # reachable, far too large, below σ_w(c = |d|)
    pm = map_pairs(mu, sigma, law, 0.0, 25.0, alpha=20.0)
    report = feasibility_report(sigma, pm.sigma_realised)
    assert report["fraction_feasible"] == pytest.approx(1 / 3)
    assert report["fraction_deficit"] == pytest.approx(1 / 3)
    assert report["fraction_excess"] == pytest.approx(1 / 3)
    assert pm.g_plus[1] == pytest.approx(25.0)  # clipped to the window, and said so
    assert sum(report["histogram"].values()) == 3


def test_level_grid_snapping() -> None:
    rng = np.random.default_rng(1)
    c = rng.uniform(5, 20, 1000)
    d = rng.uniform(-5, 5, 1000)
    gp, gm = snap_pairs(c + d, c - d, 0.0, 25.0, 16)
    step = 25.0 / 15
    for g in (gp, gm):
        np.testing.assert_allclose(g / step, np.rint(g / step), atol=1e-9)
        assert g.min() >= 0 and g.max() <= 25.0 + 1e-9
    # the difference (the mean) is the nearest grid multiple of the ideal one
    assert np.all(np.abs((gp - gm) - 2 * d) <= step / 2 + 1e-9)


def test_alpha_is_chosen_for_feasibility_and_checked() -> None:
    rng = np.random.default_rng(2)
    mu = rng.normal(0, 0.1, 3000)
    sigma = rng.uniform(0.02, 0.04, 3000)
    law = Sqrt(0.0875)
    chosen = map_pairs(mu, sigma, law, 0.0, 25.0)
    fixed = map_pairs(mu, sigma, law, 0.0, 25.0, alpha=chosen.alpha * 4)
    feasible = feasibility_report(sigma, chosen.sigma_realised)["fraction_feasible"]
    assert feasible > 0.9
    assert feasible >= feasibility_report(sigma, fixed.sigma_realised)["fraction_feasible"]
    with pytest.raises(MappingError, match="does not fit"):
        map_pairs(mu, sigma, law, 0.0, 25.0, alpha=1e6)


def _read_weights(machine: BayesianMachine, layer: int, reads: int, seed: int = 0) -> np.ndarray:
    """``reads`` noisy reads of every weight of one layer: one-hot inputs, one sample each."""
    n_out, n_in = machine.layers[layer].shape
    eye = np.eye(n_in, dtype=np.float32)
    out = np.empty((reads, n_out, n_in))
    read_seed = 1234 + seed
    for s in range(reads):
        matrix = machine.matrices(s, read_seed)[layer]
        out[s] = matrix.mvm(eye, sample=s).T
    return out


@pytest.mark.parametrize("read_path", ["fast", "explicit"])
def test_m1_realises_the_target_sigma_per_weight(read_path: str) -> None:
    """Repeated reads of one programmed chip: each feasible weight's std is its target σ
    within 5 % (4,000 reads: relative SE of a std 1.1 %)."""
    model = _model()
    machine = BayesianMachine.compile(model, HardwareConfig(**PURE_READ, read_path=read_path))
    reads = 4000
    samples = _read_weights(machine, 0, reads)
    layer = machine.layers[0]
    mapped = np.abs(layer.pairs.sigma_realised / layer.sigma - 1)
    feasible, exact = mapped <= 0.10, mapped < 1e-6
    assert feasible.mean() > 0.8 and exact.mean() > 0.8
    measured = samples.std(axis=0, ddof=1)
    # what the chip does is what the report says, for every feasible weight ...
    rel = measured[feasible] / layer.pairs.sigma_realised[feasible] - 1
    assert np.all(np.abs(rel) < 0.05), f"worst {np.abs(rel).max():.3f}"
    # ... and where the common mode solved σ_w(c) = σ (not clipped), it is the target σ
    rel = measured[exact] / layer.sigma[exact] - 1
    assert np.all(np.abs(rel) < 0.05), f"worst {np.abs(rel).max():.3f}"
    # the mean of the reads is the mapped mean (no programming noise): within Z standard errors
    se = layer.sigma / math.sqrt(reads)
    assert np.all(np.abs(samples.mean(axis=0) - layer.mu) < Z * se + 1e-5)


def test_fast_and_explicit_paths_agree_in_distribution() -> None:
    model = _model()
    x = torch.rand(40, 12)
    probs = {path: BayesianMachine.compile(model, HardwareConfig(**PURE_READ, read_path=path))
             .sample_probs(x, 300, seed=3) for path in ("fast", "explicit")}
    mean = {k: v.mean(0) for k, v in probs.items()}
    se = torch.sqrt((probs["fast"].var(0) + probs["explicit"].var(0)) / 300)
    assert torch.all((mean["fast"] - mean["explicit"]).abs() <= Z * se + 1e-4)
    assert not torch.equal(probs["fast"], probs["explicit"])  # different draws, same law


@pytest.mark.parametrize("mapping", ["M0", "M1"])
def test_exact_machine_reproduces_the_software_predictor(mapping: str) -> None:
    """M0, or M1 on pure read noise, with no DAC/ADC quantization and no output noise: the
    per-input predictive mean equals software sampling's within Monte-Carlo error."""
    model = _model()
    hw = HardwareConfig(**{**PURE_READ, "mapping": mapping})
    machine = BayesianMachine.compile(model, hw)
    x = torch.rand(30, 12)
    s = 800
    analog = machine.sample_probs(x, s, seed=5).double()
    software = SoftwarePredictor(model).sample_probs(x, s, seed=6).double()
    se = torch.sqrt((analog.var(0) + software.var(0)) / s)
    diff = (analog.mean(0) - software.mean(0)).abs()
    if mapping == "M1":  # weights whose σ is infeasible would differ: this model has few
        assert machine.feasibility()["fraction_feasible"] > 0.8
    assert torch.all(diff <= Z * se + 2e-3), f"worst {(diff / (se + 1e-12)).max():.2f} SE"


def test_results_do_not_depend_on_batching_or_sample_chunks() -> None:
    model = _model()
    x = torch.rand(25, 12)
    hw = HardwareConfig(device="pcm_ibm_2020", mapping="M1")
    whole = BayesianMachine.compile(model, hw).sample_probs(x, 6, seed=1)
    small = BayesianMachine.compile(model, hw.model_copy(update={"batch_size": 7}))
    chunked = torch.cat([small.sample_probs(x, 4, seed=1),
                         small.sample_probs(x, 2, seed=1, sample_offset=4)])
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
    other = BayesianMachine.compile(model, hw).sample_probs(x, 6, seed=2)
    assert not torch.allclose(other, whole)


def test_first_layer_reuse_changes_nothing() -> None:
    """The per-batch memo of the first layer (DAC output, mean, variance) gives the same reads."""
    model = _model()
    machine = BayesianMachine.compile(model, HardwareConfig(device="pcm_ibm_2020"))
    matrix = machine.matrices(0, 9)[0]
    x = np.random.default_rng(0).uniform(-1, 1, (50, 12)).astype(np.float32)
    memo: dict = {}
    for s in range(3):
        np.testing.assert_array_equal(matrix.mvm(x, s, 0, memo), matrix.mvm(x, s, 0))


def test_m3_is_a_quenched_ensemble_and_m2_counts_writes() -> None:
    model = _model()
    base = {"device": "pcm_ibm_2020", "read_noise_scale": 0.0, "drift": False,
            "out_noise": 0.0}
    x = torch.rand(10, 12)
    m3 = BayesianMachine.compile(model, HardwareConfig(**base, mapping="M3", copies=3))
    probs = m3.sample_probs(x, 6, seed=0)
    # biases are sampled per sample in digital; compare the weights: every block of R samples
    # reads each copy once, in an order of its own
    w = [m3.matrices(s, 0)[0].tiles[0][0].w for s in range(6)]
    copies = [m3.layers[0].states[r].w for r in range(3)]
    used = [next(r for r, c in enumerate(copies) if np.allclose(c / np.abs(c).max(),
                                                                 x / np.abs(x).max(), atol=1e-6))
            for x in w]
    assert sorted(used[:3]) == [0, 1, 2] and sorted(used[3:]) == [0, 1, 2]
    assert not np.array_equal(copies[0], copies[1])
    assert probs.shape == (6, 10, 4)
    m2 = BayesianMachine.compile(model, HardwareConfig(**base, mapping="M2"))
    writes_before = m2.counters["device_writes"]
    m2.sample_probs(x, 5, seed=0)
    devices = 2 * sum(layer.mu.size for layer in m2.layers)
    assert m2.counters["device_writes"] - writes_before == 5 * devices
    assert m2.endurance(5)["fraction_of_budget"] == pytest.approx(5 / 1e7)


def test_m4_sums_several_devices() -> None:
    model = _model()
    machine = BayesianMachine.compile(model, HardwareConfig(device="rram_lin2023", mapping="M4",
                                                            devices_per_weight=3))
    layer = machine.layers[0]
    np.testing.assert_allclose(layer.pairs.weight, layer.mu, atol=1e-9)
    assert layer.pairs.n_devices == 3
    assert machine.tiling.max_in == 512 // 3
    assert machine.hardware_report(1)["n_devices"] == 6 * sum(x.mu.size for x in machine.layers)


def test_variance_decomposition_attributes_the_sampler() -> None:
    """With programming noise and drift off, all sampling variance except the digital biases'
    comes from read noise."""
    model = _model()
    for layer in bayesian_layers(model):
        with torch.no_grad():
            layer.bias_rho.fill_(-30.0)  # σ_b ≈ 1e-13: biases effectively fixed
    hw = HardwareConfig(**PURE_READ)
    result = variance_decomposition(model, hw, {"clean": torch.rand(20, 12)}, 20, seed=0)
    entry = result["clean"]
    assert entry["read_noise"]["share_of_variance"] == pytest.approx(1.0, abs=1e-6)
    assert entry["programming_noise"]["share_of_variance"] == pytest.approx(0.0, abs=1e-6)


def test_bad_hardware_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        validate(HardwareConfig, {"mapping": "M9"}, "test")
    with pytest.raises(ConfigError, match="devices_per_weight"):
        validate(HardwareConfig, {"devices_per_weight": 0}, "test")
    model = _model()
    with pytest.raises(MappingError, match="max_in"):
        BayesianMachine.compile(model, HardwareConfig(mapping="M4", devices_per_weight=8,
                                                      max_in=4, device="rram_lin2023"))
    with pytest.raises(MappingError, match="does not fit"):
        BayesianMachine.compile(model, HardwareConfig(alpha=1e9))
    machine = BayesianMachine.compile(model, HardwareConfig())
    with pytest.raises(ConfigError, match="≥ 1"):
        machine.sample_probs(torch.rand(2, 12), 0, seed=0)


def test_simulate_cli_rejects_bad_input(tmp_path, capsys) -> None:
    from bayesim.bnn.checkpoint import save_checkpoint

    model = build_model(ModelConfig(arch="mlp", hidden=[8]), 0)
    ckpt = save_checkpoint(tmp_path / "model.safetensors", model, ModelConfig(arch="mlp",
                                                                              hidden=[8]),
                           seed=0, experiment=ExperimentConfig().model_dump(mode="json"))
    out = tmp_path / "out"
    for args, needle in ((["--set", "hardware.mapping=M9"], "mapping"),
                         (["--samples", "0"], "positive"),
                         (["--set", "hardware.device=nonexistent_card"], "nonexistent_card")):
        code = main(["simulate", "--checkpoint", str(ckpt), "--out", str(out), "-q", *args])
        err = capsys.readouterr().err
        assert code == 2, err
        assert needle in err and "Traceback" not in err
        assert not out.exists()


def test_correlated_reads_follow_ar1_and_stay_chunk_invariant() -> None:
    rho = 0.8
    model = _model()
    hw = HardwareConfig(**PURE_READ, read_correlation=rho)
    machine = BayesianMachine.compile(model, hw)
    layer = machine.layers[0]
    n_out, n_in = layer.shape
    eye = np.eye(n_in, dtype=np.float32)
    matrix = machine.matrices(0, 5)[0]
    state: dict = {}
    reads = np.stack([matrix.mvm(eye, s, 0, None, state, rho).T for s in range(3000)])
    xi = (reads - reads.mean(0)) / reads.std(0)
    lag1 = (xi[1:] * xi[:-1]).mean(0)
    # each weight's lag-1 autocorrelation is ρ; mean over weights, SE ≈ sqrt((1-ρ²)/N)/sqrt(W)
    se = math.sqrt((1 - rho ** 2) / 3000 * (1 + rho ** 2) / (1 - rho ** 2)) / math.sqrt(lag1.size)
    assert abs(lag1.mean() - rho) < Z * se + 0.01
    # the marginal std is unchanged: AR(1) with unit stationary variance
    rel = reads.std(0, ddof=1) / layer.pairs.sigma_realised - 1
    assert abs(rel.mean()) < 0.03
    x = torch.rand(15, 12)
    whole = machine.sample_probs(x, 6, seed=1)
    chunked = torch.cat([machine.sample_probs(x, 4, seed=1),
                         machine.sample_probs(x, 2, seed=1, sample_offset=4)])
    fresh = BayesianMachine.compile(model, hw).sample_probs(x, 2, seed=1, sample_offset=4)
    torch.testing.assert_close(chunked, whole)
    torch.testing.assert_close(fresh, whole[4:])
    with pytest.raises(ConfigError, match="fast"):
        BayesianMachine.compile(model, hw.model_copy(update={"read_path": "explicit"}))


def test_effective_sample_size_of_ar1_chains() -> None:
    from bayesim.metrics import effective_sample_size

    gen = torch.Generator().manual_seed(0)
    s, n = 2000, 300
    for rho in (0.0, 0.6):
        z = torch.randn(s, n, generator=gen, dtype=torch.float64)
        x = torch.empty_like(z)
        x[0] = z[0]
        for i in range(1, s):
            x[i] = rho * x[i - 1] + math.sqrt(1 - rho * rho) * z[i]
        ess = effective_sample_size(x).mean().item()
        assert ess == pytest.approx(s * (1 - rho) / (1 + rho), rel=0.08)
    assert effective_sample_size(torch.ones(10, 2)).tolist() == [10.0, 10.0]


def test_device_constrained_family_compiles_without_remapping_losses() -> None:
    from bayesim.bnn.layers import kl_normal
    from bayesim.constrained import constrain_model, constraint_report, export_constrained

    model = _model(sigma=0.2)  # σ far above what the card gives: unconstrained is infeasible
    hw = HardwareConfig(device="pcm_ibm_2020", mapping="M1")
    plain = BayesianMachine.compile(model, hw.model_copy(update={"alpha": 20.0}))
    assert plain.feasibility()["nominal"]["fraction_feasible"] < 0.5
    constrained, alphas = constrain_model(model, hw.model_copy(update={"alpha": 20.0}))
    assert alphas == [20.0, 20.0]
    assert all(r["fraction_clamped"] > 0.5 for r in constraint_report(constrained))
    layer = bayesian_layers(constrained)[0]
    mu, sigma = layer.distribution("weight")
    lo, hi = layer.transform.bounds(layer.weight_mu)
    assert torch.all(sigma >= lo - 1e-7) and torch.all(sigma <= hi + 1e-7)
    # the KL of the ELBO sees the constrained σ
    expected = kl_normal(mu, sigma, layer.prior_mean, layer.prior_std) + kl_normal(
        *layer.distribution("bias"), layer.prior_mean, layer.prior_std)
    torch.testing.assert_close(layer.kl(), expected)
    exported = export_constrained(constrained)
    machine = BayesianMachine.compile(exported, hw.model_copy(update={"alpha": alphas}))
    assert machine.feasibility()["nominal"]["fraction_feasible"] > 0.99  # the mapping loses none
    pure = BayesianMachine.compile(exported, HardwareConfig(**PURE_READ, alpha=alphas))
    assert pure.feasibility()["fraction_feasible"] > 0.99  # and a chip without programming noise
    torch.testing.assert_close(bayesian_layers(exported)[0].weight_sigma, sigma.detach(),
                               rtol=1e-4, atol=1e-7)
    with pytest.raises(ConfigError, match="M1/M4"):
        constrain_model(model, hw.model_copy(update={"mapping": "M2"}))
    with pytest.raises(ConfigError, match="layer scales"):
        BayesianMachine.compile(model, hw.model_copy(update={"alpha": [1.0, 2.0, 3.0]}))


def test_alpha_policy_max_takes_the_largest_scale_that_fits() -> None:
    model = _model()
    machine = BayesianMachine.compile(model, HardwareConfig(alpha_policy="max"))
    for layer in machine.layers:
        assert layer.pairs.alpha == pytest.approx(25.0 / np.abs(layer.mu).max())
    with pytest.raises(ConfigError, match="at least 2 bits"):
        BayesianMachine.compile(model, HardwareConfig(adc_bits=1))


def test_m2_snaps_the_reprogrammed_sample_of_a_quantized_model() -> None:
    from bayesim.quant.strategies import QuantConfig, quantize_model

    model = quantize_model(_model(), QuantConfig(strategy="JQ", bits=3))
    machine = BayesianMachine.compile(model, HardwareConfig(mapping="M2", out_noise=0.0))
    w = machine.matrices(0, 0)[0].tiles[0][0].w * machine.matrices(0, 0)[0].scales[0][0]
    levels = np.unique(np.round(w, 5))
    assert levels.size <= 2 ** 3 - 1  # the 3-bit symmetric grid of the sample quantizer
    spq_m1 = BayesianMachine.compile(model, HardwareConfig(mapping="M1"))
    assert np.unique(spq_m1.layers[0].states[0].w).size > 2 ** 3  # M1: analog, ADC only


def test_column_scales_realise_at_least_as_many_sigmas() -> None:
    model = _model(sigma=0.08)
    layer_wise = BayesianMachine.compile(model, HardwareConfig(**PURE_READ))
    column_wise = BayesianMachine.compile(model, HardwareConfig(**PURE_READ,
                                                                alpha_scope="column"))
    for a, b in zip(layer_wise.feasibility()["layers"], column_wise.feasibility()["layers"],
                    strict=True):
        assert b["fraction_feasible"] >= a["fraction_feasible"] - 0.02
        assert b["alpha_scope"] == "column" and b["alpha_min"] <= b["alpha_max"]
    layer = column_wise.layers[0]
    assert layer.pairs.alpha.shape == (layer.shape[0], 1)
    np.testing.assert_allclose(layer.pairs.weight, layer.mu, atol=1e-9)
    # and the chip reads what it maps: repeated reads have the realised σ per weight
    reads = _read_weights(column_wise, 0, 2000)
    rel = reads.std(axis=0, ddof=1) / layer.pairs.sigma_realised - 1
    assert np.all(np.abs(rel[layer.pairs.sigma_realised > 0]) < 0.08)


def test_feasibility_of_the_programmed_chip() -> None:
    """With programming noise the conductances move and the per-read σ with them: the report
    gives this chip's measured numbers, and the nominal ones of the mapping beside them."""
    model = _model(sigma=0.01)  # small σ: low common modes, where programming noise matters
    noisy = BayesianMachine.compile(model, HardwareConfig(device="pcm_ibm_2020", drift=False,
                                                          mapping="M1"))
    layer = noisy.layers[0]
    moved = np.abs(noisy.realised_posterior(0).std / layer.pairs.sigma_realised - 1)
    assert np.median(moved) > 0.005  # the programmed conductances carry other per-read σ
    assert "nominal" in noisy.feasibility()
    clean = BayesianMachine.compile(model, HardwareConfig(**PURE_READ))
    layer = clean.layers[0]
    np.testing.assert_allclose(clean.realised_posterior(0).std, layer.pairs.sigma_realised,
                               rtol=1e-5)


_THREADS_SCRIPT = """
import hashlib, torch
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.machine import BayesianMachine, HardwareConfig
x = torch.randn(48, 1, 28, 28, generator=torch.Generator().manual_seed(0))
model = build_model(ModelConfig(arch="lenet5"), seed=0).eval()
h = hashlib.sha256()
for hw in (dict(device="pcm_ibm_2020", mapping="M1"),
           dict(device="rram_lin2023", mapping="M4", devices_per_weight=3, read_correlation=0.5)):
    machine = BayesianMachine.compile(model, HardwareConfig(batch_size=20, decomposition_inputs=0,
                                                            **hw))
    h.update(machine.sample_probs(x, 3, 5).numpy().tobytes())
print(h.hexdigest())
"""


def test_machine_samples_are_bit_identical_across_thread_counts() -> None:
    """The whole fast path (convolutions, tiles, periphery, read noise, AR(1) reads) gives the
    same bits with one and with two threads for numba and torch."""
    import subprocess
    import sys

    digests = set()
    for threads in ("1", "2"):
        env = {"NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], env=env, check=True,
                             capture_output=True, text=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1
