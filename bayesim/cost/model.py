"""Energy, latency and size per posterior sample and per inference, from a predictor's counters and
the cost cards (cards.py; docs/cost.md).

**Analog machine.** One posterior sample of one input is probed on the chip itself: its counters
(rows each layer read, ADC and DAC conversions, random draws, device writes) for that sample,
times the card constants:

- array: every row read drives all devices of its layer at the read voltage for the read time,
  E = V²·t·ΣG over the layer's programmed conductances (G⁺ and G⁻ of every device): an upper
  bound that takes every input at full scale;
- ADC: conversions × FoM·2^bits (Walden law; Schreier: ×4 per bit), DAC likewise;
- digital: one add per converted partial sum, one fp32 multiply per output (the rescale), and
  per bias one Gaussian sample, with one fp32 add per output;
- re-programming (M2): device writes × pulses × pulse energy per sample; the one-time programming
  of the chip (M1, M3, M4) is reported apart.

Latency of one sample: layers in sequence; within a layer the tiles read in parallel and the
rows (positions of a convolution) in sequence, each row a read pulse, a DAC and an ADC
conversion; M2 adds its re-programming (row by row, tiles in parallel, pulses × pulse time per
row). An inference is S samples in sequence.

**Digital baselines** (fp32, digital b-bit): per input and sample, every multiply-accumulate of
the forward at the predictor's precision (b-bit from the card's int8 figures: multiply ∝ b²,
add ∝ b, a stated first-order rule), and per weight and sample (shared by ``cost.batch`` inputs)
the read of μ and σ (b bits each) from the smallest memory level they fit (SRAM or DRAM), one
Gaussian sample and one multiply-add (w = μ + σ·ε); the shared-Gaussian model draws per codebook
entry and outlier instead of per weight.
Latency from the accelerator's operation and sample rates.

Every number comes with its breakdown by component and the card constants behind it; constants
whose source is ``assumed`` are listed, so a report never passes an assumption off as a
measurement.
"""

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from bayesim.bnn.layers import BayesianLayer, bayesian_layers, sampling
from bayesim.cost.cards import CostCard, load_cost_card
from bayesim.crossbar.tile import split_sizes
from bayesim.errors import ConfigError
from bayesim.schema import StrictModel
from bayesim.sharing.model import SharedNet
from bayesim.sharing.storage import storage_report


class CostConfig(StrictModel):
    """Which cost cards price a run (cost_models/*.toml)."""

    array: str | None = None
    """Analog array card; default by the device card's technology: array_pcm, array_rram."""
    periphery: str = "periphery_sar"
    digital: str = "digital_45nm"
    node_nm: float | None = Field(default=None, gt=0)
    """Scale every energy and time to this node (E ∝ node); None: each at its card's node."""
    batch: int = Field(default=1, ge=1)
    """Inputs that share one weight sample: the digital baselines' memory reads and Gaussian
    draws, and M2's re-programming, are divided among them; 1 is one input per inference."""


ARRAY_BY_TECHNOLOGY = {"pcm": "array_pcm", "rram": "array_rram"}


def converter_energy(card: CostCard, part: Literal["adc", "dac"], bits: int | None,
                     node: float | None) -> float:
    """J per conversion of a ``bits``-bit converter by the card's law (0 for none/ideal):
    ``walden`` E = FoM·2^b (×2 per bit); ``thermal`` E = FoM·2^8·4^(b − 8), the thermal-noise
    limit's ×4 per bit, equal to Walden at 8 bits (a scaling law, not a Schreier FoM)."""
    if not bits:
        return 0.0
    fom = card.get(f"{part}.fom", node)
    law = card.laws.get(f"{part}.law", "walden")
    if law == "walden":
        return fom * 2.0 ** bits
    if law == "thermal":
        return fom * 2.0 ** 8 * 4.0 ** (bits - 8)
    raise ConfigError(f"cost card {card.name}: {part}.law must be 'walden' or 'thermal', "
                      f"got {law!r}")


NEEDS = {
    "array": {"read.voltage": "voltage", "read.pulse_time": "time",
              "program.pulse_energy": "energy", "program.pulse_time": "time",
              "program.pulses": "count"},
    "periphery": {"adc.fom": "energy", "adc.conversion_time": "time", "dac.fom": "energy",
                  "dac.conversion_time": "time"},
    "digital": {"energy.fp32_mult": "energy", "energy.fp32_add": "energy",
                "energy.int8_mult": "energy", "energy.int8_add": "energy",
                "energy.int32_add": "energy", "energy.sram_8kb_read_bit": "energy",
                "energy.sram_1mb_read_bit": "energy", "energy.dram_read_bit": "energy",
                "energy.gaussian_sample": "energy", "throughput.operations": "rate",
                "throughput.gaussian_samples": "rate"},
}
"""The constants each kind of card must have, with their quantity."""


def load_checked(name: str, kind: str, node: float | None) -> CostCard:
    """A card of ``kind`` with every constant the model needs, each resolvable at ``node``
    (array constants are device physics and never node-scaled)."""
    card = load_cost_card(name, kind)
    card.require(NEEDS[kind])
    for key in NEEDS[kind]:
        card.get(key, None if kind == "array" else node)
    for part in ("adc", "dac") if kind == "periphery" else ():
        converter_energy(card, part, 8, node)
    return card


def _breakdown(parts: dict[str, float], n_samples: int) -> dict[str, Any]:
    per_sample = float(sum(parts.values()))
    return {"energy_per_sample_J": per_sample, "energy_per_inference_J": per_sample * n_samples,
            "energy_per_sample_by_component_J": {k: float(v) for k, v in parts.items()}}


def _assumed(*cards: CostCard) -> list[str]:
    return [f"{card.name}: {key}" for card in cards for key, c in card.constants.items()
            if c.source == "assumed"]


def array_card(config: CostConfig, technology: str) -> CostCard:
    """The array card of ``config`` or, by default, of the device card's ``technology``."""
    name = config.array or ARRAY_BY_TECHNOLOGY.get(technology.lower())
    if name is None:
        raise ConfigError(f"no cost card for the device technology {technology!r}; set "
                          f"cost.array to a card of kind 'array'")
    return load_checked(name, "array", config.node_nm)


def check_cards(config: CostConfig, technology: str | None) -> None:
    """Load every card ``config`` names (the array card only for a ``technology``), so that a bad
    card stops a command before any work."""
    load_checked(config.periphery, "periphery", config.node_nm)
    load_checked(config.digital, "digital", config.node_nm)
    if technology is not None:
        array_card(config, technology)


def machine_cost(machine: Any, n_samples: int, config: CostConfig, x: torch.Tensor
                 ) -> dict[str, Any]:
    """The ``cost`` section of an analog machine's report (module docstring); ``x``: inputs of
    which the first is probed for one sample (the chip's counters are left as they were)."""
    chip, hw = machine.chip, machine.hw
    if machine.device is None:
        return {"note": f"{hw.mapping} has no devices: the exact sampler is not priced as a chip"}
    array = array_card(config, str(machine.device.card.get("technology", "")))
    node = config.node_nm
    periphery = load_checked(config.periphery, "periphery", node)
    digital = load_checked(config.digital, "digital", node)
    probe = probe_sample(machine, x[:1])
    v, t_read = array.get("read.voltage"), array.get("read.pulse_time")
    pulse_e, pulses = array.get("program.pulse_energy"), array.get("program.pulses")
    g_sum = [0.0 if layer.pairs is None else float(
        (np.sum(layer.pairs.g_plus) + np.sum(layer.pairs.g_minus)) * chip.n * 1e-6)
        for layer in chip.layers]  # S: every device of G⁺ and G⁻
    rows = probe["rows"]
    outputs = [r * layer.shape[0] for r, layer in zip(rows, chip.layers, strict=True)]
    bias_draws = sum(layer.shape[0] for layer in chip.layers if layer.bias_mu is not None)
    bias_adds = sum(o for o, layer in zip(outputs, chip.layers, strict=True)
                    if layer.bias_mu is not None)
    parts = {
        "array_read": sum(r * v * v * t_read * g for r, g in zip(rows, g_sum, strict=True)),
        "adc": probe["adc_conversions"] * converter_energy(periphery, "adc", hw.adc_bits, node),
        "dac": probe["dac_conversions"] * converter_energy(periphery, "dac", hw.dac_bits, node),
        "digital_accumulate": probe["adc_conversions"] * digital.get("energy.int32_add", node),
        "digital_rescale": sum(outputs) * digital.get("energy.fp32_mult", node),
        "digital_bias": bias_draws * digital.get("energy.gaussian_sample", node)
        + bias_adds * digital.get("energy.fp32_add", node),
        # one programming per sample serves the cost.batch inputs of that sample
        "reprogramming": probe["device_writes"] * pulses * pulse_e / config.batch,
    }
    t_row = t_read + (periphery.get("dac.conversion_time", node) if hw.dac_bits else 0.0) + \
        (periphery.get("adc.conversion_time", node) if hw.adc_bits else 0.0)
    t_prog = 0.0
    if probe["device_writes"]:
        t_pulse = array.get("program.pulse_time")
        t_prog = sum(min(layer.shape[1] * chip.n, hw.max_in) for layer in chip.layers) * \
            pulses * t_pulse
    latency = sum(rows) * t_row + t_prog
    n_states = max(1, chip.scheme.n_states(hw)) if not probe["device_writes"] else 0
    arrays = chip.scheme.arrays(hw)  # M3: R copies on devices of their own
    devices = int(sum(2 * chip.n * layer.mu.size for layer in chip.layers))
    ins = [split_sizes(layer.shape[1], chip.tiling.max_in) for layer in chip.layers]
    outs = [split_sizes(layer.shape[0], chip.tiling.max_out) for layer in chip.layers]
    tiles = sum(len(i) * len(o) for i, o in zip(ins, outs, strict=True))
    adcs = sum(len(i) * sum(o) for i, o in zip(ins, outs, strict=True))
    dacs = sum(sum(i) * chip.n * len(o) for i, o in zip(ins, outs, strict=True))
    report = _breakdown(parts, n_samples)
    report.update({
        "latency_per_sample_s": latency, "latency_per_inference_s": latency * n_samples,
        "latency_note": "layers in sequence; tiles of a layer in parallel; rows in sequence, "
                        "each a read pulse + DAC + ADC conversion; M2 adds row-by-row "
                        "re-programming",
        "programming_once_J": devices * n_states * pulses * pulse_e,
        "programming_once_note": f"{n_states} programmed state(s) of {devices} devices, "
                                 f"{pulses:g} pulses each (0 for M2, which pays per sample, "
                                 f"shared by cost.batch = {config.batch} inputs)",
        "probe": {k: probe[k] for k in ("rows", "adc_conversions", "dac_conversions",
                                        "device_writes")},
        "size": {"devices": devices * arrays, "tiles": tiles * arrays,
                 "adcs": adcs * arrays, "dacs": dacs * arrays, "copies": arrays,
                 "note": "first-order size as counts: one ADC per used tile column, one DAC per "
                         "used tile row (device rows), × the copies of M3; no area per cell "
                         "(the cards carry none)"},
        "array_read_note": "upper bound: every input at full scale (V_read on every row), over "
                           "the mapping's target conductances",
        "rules": ["array constants are device physics: never node-scaled",
                  "periphery and digital constants scaled by E ∝ t ∝ node when cost.node_nm "
                  "is set"],
        "cards": {"array": array.describe(), "periphery": periphery.describe(),
                  "digital": digital.describe()},
        "assumed_constants": _assumed(array, periphery, digital),
        "node_nm": node,
    })
    return report


def probe_sample(machine: Any, x: torch.Tensor) -> dict[str, Any]:
    """The counters of one Monte-Carlo sample of the single input ``x`` on the chip; the chip's
    counters and row tallies are restored afterwards."""
    chip = machine.chip
    counters, rows = dict(machine.counters), list(chip.rows_read)
    try:
        machine.sample_probs(x, 1, seed=0)
        out = {k: machine.counters[k] - counters[k] for k in counters}
        out["rows"] = [a - b for a, b in zip(chip.rows_read, rows, strict=True)]
    finally:
        machine.counters.clear()
        machine.counters.update(counters)
        chip.rows_read[:] = rows
    return out


def _macs(model: nn.Module, x: torch.Tensor) -> list[int]:
    """Multiply-accumulates of each Bayesian layer for one input ``x[:1]`` (mean forward)."""
    layers = bayesian_layers(model)
    counts = [0] * len(layers)

    def hook(index: int):
        def count(module: BayesianLayer, args: tuple, output: torch.Tensor) -> None:
            per_output = module.weight_mu[0].numel()
            counts[index] += int(output.numel() * per_output)
        return count

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        with torch.no_grad(), sampling(model, "mean"):
            model(x[:1].float())
    finally:
        for handle in handles:
            handle.remove()
    return counts


def memory_level(card: CostCard, bits: int, node: float | None) -> tuple[str, float]:
    """(level, J per bit read) of the smallest memory a ``bits``-bit weight store fits in."""
    if bits <= 8 * 1024 * 8:
        return "SRAM 8 kB", card.get("energy.sram_8kb_read_bit", node)
    if bits <= 8 * 1024 * 1024:
        return "SRAM 1 MB", card.get("energy.sram_1mb_read_bit", node)
    return "DRAM", card.get("energy.dram_read_bit", node)


def digital_cost(model: nn.Module, bits: int | None, n_samples: int, config: CostConfig,
                 x: torch.Tensor) -> dict[str, Any]:
    """The ``cost`` section of a mean-field software predictor: fp32 (``bits`` None) or digital
    b-bit sampling of ``model`` (module docstring): per sample one Gaussian draw and one
    multiply-add per weight and bias, μ and σ read at ``bits`` (fp32: 32) each."""
    layers = bayesian_layers(model)
    n_params = sum(layer.weight_mu.numel() + (0 if layer.bias_mu is None else
                                              layer.bias_mu.numel()) for layer in layers)
    width = 32 if bits is None else bits
    return _digital_report(sum(_macs(model, x)), bits, n_samples, config, store_bits=n_params * 2
                           * width, draws=n_params, rule="μ and σ are read from the smallest "
                           "memory level the store fits (8 kB, 1 MB SRAM, else DRAM) once per "
                           "sample; one Gaussian draw and one multiply-add per weight and bias")


def shared_digital_cost(net: SharedNet, bits: int | None, n_samples: int, config: CostConfig,
                        x: torch.Tensor, memory: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``cost`` section of a shared-Gaussian software predictor (bayesim.sharing): per
    sample one Gaussian draw and one multiply-add per *source* (K codebook entries + O outliers;
    every weight of an entry takes its entry's draw), and the checkpoint's inference tensors
    (labels, codebook, biases; ``storage_report``) read once to assemble the weights. MACs are
    those of the architecture (the mean-field export of ``net``); ``bits`` as for
    :func:`digital_cost`; ``memory``: the predictor's storage report (``SharedPredictor.memory``,
    which counts a VPQ/JQ-quantized codebook at its bits), by default the fp32 one."""
    sources = net.sources()[0].numel()  # the values one sample draws (SharedNet.sample_flat)
    memory = memory or storage_report(net)
    return _digital_report(
        sum(_macs(net.export_mean_field(), x)), bits, n_samples, config,
        store_bits=int(8 * memory["total_bytes"]), draws=sources,
        rule="the checkpoint's inference tensors (int16 labels, codebook, ellipse pairs and "
             "blends, fp32 biases: the memory section) are read from the smallest memory level "
             "they fit once per sample; one Gaussian draw and one multiply-add per codebook "
             "entry and outlier; not priced: the gather of each weight's value beyond the label "
             "read, the per-weight quantization of SPQ/JQ samples, the ellipse blends",
        extra={"sources_sampled": sources, "codebook": net.codebook().counts()})


def _digital_report(macs: int, bits: int | None, n_samples: int, config: CostConfig, *,
                    store_bits: int, draws: int, rule: str,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Energy and latency of a digital sampler: ``macs`` multiply-accumulates per input and
    sample at ``bits`` (None: fp32), and per sample (shared by ``config.batch`` inputs) a read of
    ``store_bits`` bits, ``draws`` Gaussian samples and as many multiply-adds."""
    node = config.node_nm
    card = load_checked(config.digital, "digital", node)
    if bits is None:
        mult, add = card.get("energy.fp32_mult", node), card.get("energy.fp32_add", node)
    else:
        mult = card.get("energy.int8_mult", node) * (bits / 8) ** 2
        add = card.get("energy.int8_add", node) * bits / 8
    share = 1.0 / config.batch
    level, per_bit = memory_level(card, store_bits, node)
    parts = {
        "mac": macs * (mult + add),
        "weight_memory": store_bits * per_bit * share,
        "gaussian_samples": draws * card.get("energy.gaussian_sample", node) * share,
        "weight_sample_arithmetic": draws * (mult + add) * share,
    }
    ops_rate = card.get("throughput.operations")
    rng_rate = card.get("throughput.gaussian_samples")
    latency = 2 * macs / ops_rate + draws * share / rng_rate
    report = _breakdown(parts, n_samples)
    report.update({
        "latency_per_sample_s": latency, "latency_per_inference_s": latency * n_samples,
        "latency_note": "2 operations per MAC at the accelerator's operation rate, plus the "
                        "weight samples at its Gaussian-sample rate (not overlapped)",
        "macs_per_sample": macs, "parameters_sampled": draws, "batch": config.batch,
        "weight_store": {"bits": store_bits, "read_from": level},
        "precision": "fp32" if bits is None else f"{bits}-bit",
        "rules": ["b-bit MAC energies from the int8 figures: multiply ∝ b², add ∝ b, "
                  "activations taken at b bits too (optimistic for a model that keeps fp32 "
                  "activations)", rule,
                  "latency at the operation and sample rates of Enciso 2025's SRAM "
                  "compute-in-memory accelerator, a stand-in for any digital sampler"],
        "cards": {"digital": card.describe()}, "assumed_constants": _assumed(card),
        "node_nm": node, **(extra or {}),
    })
    return report
