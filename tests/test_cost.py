"""The cost model: energies equal counters × card constants on hand-computed cases (the card
constants read independently with tomllib), linear growth where the physics says so, converter
laws, and bad cost cards refused."""

import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bayesim.bnn.layers import BayesConv2d, BayesLinear, attach_generator
from bayesim.cost import CostConfig, converter_energy, digital_cost, load_cost_card, machine_cost
from bayesim.cost.cards import CARD_DIR
from bayesim.errors import ConfigError
from bayesim.machine import BayesianMachine, HardwareConfig

SI = {"pJ": 1e-12, "fJ": 1e-15, "ns": 1e-9, "V": 1.0, "1": 1.0, "GOp/s": 1e9, "GSa/s": 1e9}


def constant(card: str, section: str, key: str) -> float:
    entry = tomllib.loads((CARD_DIR / f"{card}.toml").read_text())[section][key]
    return entry["value"] * SI[entry["unit"]]


def tiny(n_in: int = 4, n_out: int = 3) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(BayesLinear(n_in, n_out, rho_init=-3.0))
    attach_generator(net, 0)
    return net.eval()


def compile_quietly(net: nn.Module, hw: HardwareConfig) -> BayesianMachine:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesianMachine.compile(net, hw)


def test_analog_energy_is_counters_times_card_constants() -> None:
    """One linear layer 4 → 3 on one tile, M1 on PCM, 8-bit DAC and ADC: every component by
    hand."""
    hw = HardwareConfig(mapping="M1", dac_bits=8, adc_bits=8)
    machine = compile_quietly(tiny(), hw)
    cost = machine_cost(machine, 10, CostConfig(), torch.rand(2, 4))
    parts = cost["energy_per_sample_by_component_J"]
    layer = machine.layers[0]
    g = (layer.pairs.g_plus.sum() + layer.pairs.g_minus.sum()) * machine.n_devices * 1e-6
    v, t = constant("array_pcm", "read", "voltage"), constant("array_pcm", "read", "pulse_time")
    assert parts["array_read"] == pytest.approx(1 * v * v * t * g, rel=1e-12)
    adc = constant("periphery_sar", "adc", "fom") * 2 ** 8
    dac = constant("periphery_sar", "dac", "fom") * 2 ** 8
    assert parts["adc"] == pytest.approx(3 * adc, rel=1e-12)  # one row × 3 columns × 1 tile
    assert parts["dac"] == pytest.approx(4 * dac, rel=1e-12)  # one row × 4 inputs × 1 tile
    assert parts["digital_accumulate"] == pytest.approx(
        3 * constant("digital_45nm", "energy", "int32_add"))
    assert parts["digital_rescale"] == pytest.approx(
        3 * constant("digital_45nm", "energy", "fp32_mult"))
    assert parts["digital_bias"] == pytest.approx(3 * (
        constant("digital_45nm", "energy", "gaussian_sample")
        + constant("digital_45nm", "energy", "fp32_add")))
    assert parts["reprogramming"] == 0.0
    assert cost["energy_per_sample_J"] == pytest.approx(sum(parts.values()))
    assert cost["energy_per_inference_J"] == pytest.approx(10 * cost["energy_per_sample_J"])
    t_row = t + constant("periphery_sar", "dac", "conversion_time") + constant(
        "periphery_sar", "adc", "conversion_time")
    assert cost["latency_per_sample_s"] == pytest.approx(t_row)
    devices = 2 * machine.n_devices * 12
    assert cost["programming_once_J"] == pytest.approx(
        devices * constant("array_pcm", "program", "pulses")
        * constant("array_pcm", "program", "pulse_energy"))
    assert "array_pcm: read.voltage" in cost["assumed_constants"]
    assert machine.counters["adc_conversions"] == 0  # the probe left the counters alone


def test_per_sample_probe_matches_the_counters_of_s_samples() -> None:
    """A per-read sampler's counted work over S samples is S times the probed sample's: the
    energy per inference is linear in S. A convolution reads one row per output position."""
    torch.manual_seed(0)
    net = nn.Sequential(BayesConv2d(1, 2, 3, padding=1), nn.Flatten(), BayesLinear(2 * 36, 3))
    machine = compile_quietly(net.eval(), HardwareConfig(mapping="M1", max_in=16))
    x = torch.rand(1, 1, 6, 6)
    cost = machine_cost(machine, 1, CostConfig(), x)
    assert cost["probe"]["rows"] == [36, 1]
    before = dict(machine.counters)
    machine.sample_probs(x, 7, seed=5)
    for key in ("adc_conversions", "dac_conversions"):
        assert machine.counters[key] - before[key] == 7 * cost["probe"][key]
    assert cost["probe"]["dac_conversions"] == 36 * 9 * 1 + 1 * 72 * 1
    assert cost["probe"]["adc_conversions"] == 36 * 2 * 1 + 1 * 3 * 5  # 72 inputs: 5 tiles of 16


def test_reprogramming_energy_grows_as_samples_times_weights() -> None:
    energies = {}
    for n_in in (4, 8):
        machine = compile_quietly(tiny(n_in), HardwareConfig(mapping="M2"))
        energies[n_in] = machine_cost(machine, 5, CostConfig(), torch.rand(1, n_in))
    per_write = constant("array_pcm", "program", "pulses") * constant(
        "array_pcm", "program", "pulse_energy")
    for n_in, cost in energies.items():
        weights = 3 * n_in
        devices = 2 * compile_quietly(tiny(n_in), HardwareConfig(mapping="M2")).n_devices
        assert cost["energy_per_sample_by_component_J"]["reprogramming"] == pytest.approx(
            devices * weights * per_write)
        assert cost["programming_once_J"] == 0.0
    ratio = (energies[8]["energy_per_sample_by_component_J"]["reprogramming"]
             / energies[4]["energy_per_sample_by_component_J"]["reprogramming"])
    assert ratio == pytest.approx(2.0)


def test_converter_energy_follows_the_cards_law(tmp_path: Path) -> None:
    card = load_cost_card("periphery_sar", "periphery")
    assert converter_energy(card, "adc", 8, None) / converter_energy(card, "adc", 6, None) == \
        pytest.approx(4.0)  # Walden: ×2 per bit
    text = (CARD_DIR / "periphery_sar.toml").read_text().replace(
        'law = "walden"                # E', 'law = "thermal"                # E', 1)
    path = tmp_path / "thermal.toml"
    path.write_text(text)
    thermal = load_cost_card(str(path), "periphery")
    assert converter_energy(thermal, "adc", 10, None) / converter_energy(
        thermal, "adc", 8, None) == pytest.approx(16.0)  # ×4 per bit
    assert converter_energy(thermal, "adc", 8, None) == converter_energy(card, "adc", 8, None)
    assert converter_energy(card, "adc", None, None) == 0.0


def test_digital_energy_by_hand() -> None:
    """fp32 and 4-bit sampling of a 4 → 3 layer, one input, batch 1."""
    net = tiny()
    x = torch.rand(1, 4)
    e = {k: constant("digital_45nm", "energy", k) for k in (
        "fp32_mult", "fp32_add", "int8_mult", "int8_add", "sram_8kb_read_bit",
        "gaussian_sample")}
    fp = digital_cost(net, None, 3, CostConfig(), x)["energy_per_sample_by_component_J"]
    assert fp["mac"] == pytest.approx(12 * (e["fp32_mult"] + e["fp32_add"]))
    assert fp["weight_memory"] == pytest.approx(15 * 2 * 32 * e["sram_8kb_read_bit"])
    assert fp["gaussian_samples"] == pytest.approx(15 * e["gaussian_sample"])
    four = digital_cost(net, 4, 3, CostConfig(batch=5), x)["energy_per_sample_by_component_J"]
    mult4, add4 = e["int8_mult"] / 4, e["int8_add"] / 2
    assert four["mac"] == pytest.approx(12 * (mult4 + add4))
    assert four["weight_memory"] == pytest.approx(15 * 2 * 4 * e["sram_8kb_read_bit"] / 5)
    assert four["weight_sample_arithmetic"] == pytest.approx(15 * (mult4 + add4) / 5)


def test_node_scaling_and_its_limit() -> None:
    card = load_cost_card("digital_45nm", "digital")
    assert card.get("energy.fp32_add", 90.0) == pytest.approx(2 * card.get("energy.fp32_add"))
    with pytest.raises(ConfigError, match="extrapolates"):
        card.get("energy.fp32_add", 7.0)


@pytest.mark.parametrize("edit, pattern", [
    (lambda s: s.replace('unit = "pJ", node_nm = 45, source = "horowitz2014" }\nfp32_add',
                         'node_nm = 45, source = "horowitz2014" }\nfp32_add', 1),
     "energy.fp32_mult has no unit"),
    (lambda s: s.replace("value = 0.9,", "value = -0.9,", 1), "must be a finite number ≥ 0"),
    (lambda s: s.replace('unit = "pJ"', 'unit = "kWh"', 1), "has unit 'kWh'"),
    (lambda s: s.replace('source = "enciso2025" }', 'source = "nobody" }', 1),
     "cites 'nobody'"),
    (lambda s: s.replace('int32_add = { value = 0.1, unit = "pJ", node_nm = 45, source = '
                         '"horowitz2014" }', 'int32_add = "0.1 pJ"', 1), "is a string"),
])
def test_bad_cards_are_refused(edit, pattern, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(edit((CARD_DIR / "digital_45nm.toml").read_text()))
    with pytest.raises(ConfigError, match=pattern):
        load_cost_card(str(path), "digital")
    with pytest.raises(ConfigError, match="not found"):
        load_cost_card("no_such_card", "digital")
    with pytest.raises(ConfigError, match="kind 'digital'; cost.array needs"):
        load_cost_card("digital_45nm", "array")


def test_a_card_without_a_needed_constant_or_with_the_wrong_quantity_is_refused(
        tmp_path: Path) -> None:
    from bayesim.cost.model import load_checked

    text = (CARD_DIR / "array_pcm.toml").read_text()
    path = tmp_path / "a.toml"
    path.write_text(text.replace("pulses = {", "pulse_count = {"))
    with pytest.raises(ConfigError, match="has no program.pulses"):
        load_checked(str(path), "array", None)
    path.write_text(text.replace('voltage = { value = 0.2, unit = "V"',
                                 'voltage = { value = 0.2, unit = "ns"'))
    with pytest.raises(ConfigError, match="read.voltage must be a voltage"):
        load_checked(str(path), "array", None)
    with pytest.raises(ConfigError, match="extrapolates"):
        load_checked("digital_45nm", "digital", 5.0)


def test_bad_cost_cards_on_the_command_line_exit_2(tmp_path: Path, capsys) -> None:
    from tests.test_bring_your_own import assert_bad_input, imported_mlp, run

    ck = imported_mlp(tmp_path, capsys)
    data = tmp_path / "mine.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x_test=rng.random((20, 784), dtype=np.float32),
             y_test=rng.integers(0, 10, 20))
    bad = tmp_path / "bad.toml"
    bad.write_text((CARD_DIR / "array_pcm.toml").read_text().replace("value = 0.2,",
                                                                     "value = -0.2,"))
    for setting, pattern in [(f"cost.array='{bad}'", "must be a finite number ≥ 0"),
                             ("cost.periphery='nope'", "cost card 'nope' not found")]:
        out = tmp_path / "sim"
        code, _, err = run(["simulate", "--checkpoint", ck, "--out", out, "--data", data,
                            "--samples", "2", "--set", "hardware.mapping='M1'", "--set",
                            setting, "-q"], capsys)
        assert_bad_input(code, err, pattern, out)
    out = tmp_path / "sim"
    code, _, err = run(["simulate", "--checkpoint", ck, "--out", out, "--data", data,
                        "--samples", "2", "--set", "hardware.mapping='M1'",
                        "--set", "hardware.decomposition_inputs=0", "-q"], capsys)
    assert code == 0, err
    import json
    report = json.loads((out / "report.json").read_text())
    cost = report["cost"]
    assert cost["energy_per_inference_J"] == pytest.approx(2 * cost["energy_per_sample_J"])
    assert cost["probe"]["rows"] == [1, 1] and cost["size"]["devices"] == report["hardware"][
        "n_devices"]
    digital = tmp_path / "eval"
    assert run(["evaluate", "--checkpoint", ck, "--out", digital, "--data", data,
                "--samples", "2", "-q"], capsys)[0] == 0
    soft = json.loads((digital / "report.json").read_text())["cost"]
    assert soft["macs_per_sample"] == 784 * 8 + 8 * 10
    for run_dir in (out, digital):  # the energy-breakdown figure beside each report
        assert (run_dir / "cost_breakdown.png").stat().st_size > 1000


def test_two_layers_a_convolution_and_the_copies_of_m3() -> None:
    """Array energy and latency sum over layers (rows × V²·t·ΣG, 36 positions of the
    convolution); M3's size counts its R copies; M2's costing leaves the chip's counters
    alone."""
    torch.manual_seed(0)
    net = nn.Sequential(BayesConv2d(1, 2, 3, padding=1), nn.Flatten(),
                        BayesLinear(2 * 36, 3)).eval()
    x = torch.rand(1, 1, 6, 6)
    m1 = compile_quietly(net, HardwareConfig(mapping="M1"))
    cost = machine_cost(m1, 4, CostConfig(), x)
    v, t = constant("array_pcm", "read", "voltage"), constant("array_pcm", "read", "pulse_time")
    g = [(layer.pairs.g_plus.sum() + layer.pairs.g_minus.sum()) * m1.n_devices * 1e-6
         for layer in m1.layers]
    assert cost["energy_per_sample_by_component_J"]["array_read"] == pytest.approx(
        v * v * t * (36 * g[0] + 1 * g[1]), rel=1e-12)
    t_row = t + constant("periphery_sar", "dac", "conversion_time") + constant(
        "periphery_sar", "adc", "conversion_time")
    assert cost["latency_per_sample_s"] == pytest.approx(37 * t_row)
    assert cost["latency_per_inference_s"] == pytest.approx(4 * 37 * t_row)
    bias_adds = 36 * 2 + 3  # a convolution adds its bias at every output position
    assert cost["energy_per_sample_by_component_J"]["digital_bias"] == pytest.approx(
        5 * constant("digital_45nm", "energy", "gaussian_sample")
        + bias_adds * constant("digital_45nm", "energy", "fp32_add"))
    m3 = compile_quietly(net, HardwareConfig(mapping="M3", copies=4))
    size = machine_cost(m3, 4, CostConfig(), x)["size"]
    assert size["copies"] == 4 and size["devices"] == 4 * 2 * m3.n_devices * (18 + 216)
    assert size["adcs"] == 4 * (2 + 3)  # one tile each: 2 and 3 used columns
    m2 = compile_quietly(net, HardwareConfig(mapping="M2"))
    before = dict(m2.counters)
    shared = machine_cost(m2, 4, CostConfig(batch=4), x)
    assert m2.counters == before
    alone = machine_cost(m2, 4, CostConfig(), x)
    assert shared["energy_per_sample_by_component_J"]["reprogramming"] == pytest.approx(
        alone["energy_per_sample_by_component_J"]["reprogramming"] / 4)


def test_digital_macs_of_a_convolution_and_the_memory_level() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(BayesConv2d(1, 2, 3, padding=1), nn.Flatten(),
                        BayesLinear(2 * 36, 3)).eval()
    cost = digital_cost(net, None, 2, CostConfig(), torch.rand(1, 1, 6, 6))
    assert cost["macs_per_sample"] == 36 * 2 * 9 + 3 * 72
    params = 2 * 9 + 2 + 3 * 72 + 3
    assert cost["weight_store"] == {"bits": params * 64, "read_from": "SRAM 8 kB"}
    rate = constant("digital_45nm", "throughput", "operations")
    samples = constant("digital_45nm", "throughput", "gaussian_samples")
    assert cost["latency_per_sample_s"] == pytest.approx(2 * cost["macs_per_sample"] / rate
                                                         + params / samples)
    big = nn.Sequential(BayesLinear(784, 512), nn.ReLU(), BayesLinear(512, 512)).eval()
    assert digital_cost(big, None, 1, CostConfig(), torch.rand(1, 784))["weight_store"][
        "read_from"] == "DRAM"
    assert digital_cost(big, 4, 1, CostConfig(), torch.rand(1, 784))["weight_store"][
        "read_from"] == "SRAM 1 MB"


def test_shared_gaussian_digital_energy_by_hand() -> None:
    """A shared-Gaussian MLP: one draw and one multiply-add per codebook entry and outlier (not
    per weight), the checkpoint's inference tensors read once per sample, the architecture's
    MACs; priced against the card constants read independently."""
    from bayesim.bnn.models import ModelConfig, build_model
    from bayesim.cost import shared_digital_cost
    from bayesim.sharing.codebook import SharingConfig, build_codebook
    from bayesim.sharing.model import SharedNet, flat_posterior

    model = build_model(ModelConfig(arch="mlp", hidden=[24]), seed=0)
    mu, sigma, sizes = flat_posterior(model)
    importance = torch.rand(mu.numel(), generator=torch.Generator().manual_seed(1))
    net = SharedNet(model, build_codebook(mu, sigma, importance, sizes,
                                          SharingConfig(n_clusters=12), seed=0))
    counts = net.codebook().counts()
    n, b = net.n_weights, 24 + 10
    store_bits = 8 * (2 * n + 20 * counts["gaussians"] + 8 * counts["outliers"]
                      + 8 * counts["ellipse_points"] + 4 * b)
    draws = net.sources()[0].numel()  # the values one sample draws (sample_flat)
    assert 0 < draws < n
    e = {k: constant("digital_45nm", "energy", k) for k in (
        "fp32_mult", "fp32_add", "sram_1mb_read_bit", "gaussian_sample")}
    cost = shared_digital_cost(net, None, 4, CostConfig(batch=2), torch.rand(1, 1, 28, 28))
    parts = cost["energy_per_sample_by_component_J"]
    macs = 784 * 24 + 24 * 10
    assert cost["macs_per_sample"] == macs
    assert parts["mac"] == pytest.approx(macs * (e["fp32_mult"] + e["fp32_add"]))
    assert cost["weight_store"] == {"bits": store_bits, "read_from": "SRAM 1 MB"}
    assert parts["weight_memory"] == pytest.approx(store_bits * e["sram_1mb_read_bit"] / 2)
    assert parts["gaussian_samples"] == pytest.approx(draws * e["gaussian_sample"] / 2)
    assert parts["weight_sample_arithmetic"] == pytest.approx(
        draws * (e["fp32_mult"] + e["fp32_add"]) / 2)
    assert cost["energy_per_inference_J"] == pytest.approx(4 * sum(parts.values()))
    mean_field = digital_cost(model, None, 4, CostConfig(batch=2), torch.rand(1, 1, 28, 28))
    assert mean_field["macs_per_sample"] == macs
    assert parts["gaussian_samples"] < mean_field["energy_per_sample_by_component_J"][
        "gaussian_samples"]

    # a JQ-4 codebook: the store is the predictor's own memory section (μ + σ bits per source)
    from bayesim.quant.strategies import QuantConfig
    from bayesim.sharing.predictor import SharedPredictor, quantize_shared

    predictor = SharedPredictor(quantize_shared(net, QuantConfig(strategy="JQ", bits=4)))
    four = shared_digital_cost(predictor.net, 4, 4, CostConfig(), torch.rand(1, 1, 28, 28),
                               predictor.memory())
    quantized_bits = 8 * predictor.memory()["total_bytes"]
    assert quantized_bits < store_bits
    assert four["weight_store"]["bits"] == quantized_bits
    mult4 = constant("digital_45nm", "energy", "int8_mult") / 4
    add4 = constant("digital_45nm", "energy", "int8_add") / 2
    assert four["energy_per_sample_by_component_J"]["mac"] == pytest.approx(macs * (mult4 + add4))
