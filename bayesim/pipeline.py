"""The end-to-end experiment: build data → train → checkpoint → evaluate → report.

Every function validates all of its inputs (config, data, checkpoint) before it writes anything, and
writes each output atomically, so a bad input leaves no output file behind.
"""

import io
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bayesim.atomic import write_bytes, write_json
from bayesim.bnn.checkpoint import load_checkpoint, save_checkpoint
from bayesim.bnn.layers import attach_generator, bayesian_layers, sampling
from bayesim.bnn.models import build_model
from bayesim.bnn.train import EpochStats, fit
from bayesim.config import (
    ExperimentConfig,
    apply_overrides,
    check_file_sections,
    read_toml,
    validate,
)
from bayesim.constrained import constrain_model, constraint_report, export_constrained
from bayesim.cost import check_cards, digital_cost, machine_cost, shared_digital_cost
from bayesim.data.dirty import Benchmark, build_benchmark
from bayesim.devices.presets import read_card
from bayesim.errors import ConfigError, DataError
from bayesim.evaluate import EvaluationResult, SoftwarePredictor, evaluate
from bayesim.machine import (
    SOURCES,
    BayesianMachine,
    HardwareConfig,
    sampling_report,
    variance_decomposition,
)
from bayesim.machine.schemes import scheme_for
from bayesim.progress import progress_bar
from bayesim.quant.strategies import QuantConfig, quantize_model
from bayesim.reports import REPORT_NAME, SCORES_NAME, finished
from bayesim.seeding import derive_seed
from bayesim.sharing.codebook import check_config_for
from bayesim.sharing.model import SharedNet, flat_posterior
from bayesim.sharing.predictor import SharedPredictor, quantize_shared
from bayesim.sharing.storage import (
    is_shared_checkpoint,
    load_shared,
    save_shared,
    storage_report,
)
from bayesim.sharing.train import SharingLog, build_shared, finetune, fit_shared, pretrain
from bayesim.verdict import cached_reference, reference_section, verdict

CHECKPOINT_NAME = "model.safetensors"
DIGITAL_DEMO_DIR = "digital"
EVALUATE_SECTIONS = ("data", "eval", "cost")
SIMULATE_SECTIONS = ("data", "eval", "hardware", "cost")
QAT_KEYS = ("train.batch_size", "train.kl_weight", "train.mc_train")
"""What fine-tuning (QAT, device-constrained training) takes from [train]
(TrainConfig.fine_tuning); its epochs and learning rate are quant.qat_epochs (or
--train-constrained) and quant.qat_lr."""
QUANTIZE_SECTIONS = ("data", "eval", "quant", "cost", *QAT_KEYS)
CONSTRAINED_SECTIONS = (*SIMULATE_SECTIONS, *QAT_KEYS, "quant.qat_lr")
"""simulate --train-constrained: the chip's sections and what its fine-tuning reads."""
ALL_SECTIONS = ("data", "model", "train", "eval", "quant", "hardware", "sharing", "cost")

DEMO_ANALOG: dict[str, dict[str, Any]] = {
    # IBM's PCM model as a quenched ensemble of 8 programmed copies (M3): its programming noise
    # is the sampler. Under M1 (per-read noise) the card's frozen programming and 1/f errors,
    # about 3x its per-read σ, dominate (docs/results/machine.md)
    "analog_pcm": {"device": "pcm_ibm_2020", "mapping": "M3", "copies": 8},
    # Lin et al. 2023's RRAM, three devices per side summed (M4), as their chip does
    "analog_rram": {"device": "rram_lin2023", "mapping": "M4", "devices_per_weight": 3},
}
"""The demo's analog rows: ``config.hardware`` with these changes (docs/machine.md)."""

COMMAND_SECTIONS = {
    # train stores its whole config in the checkpoint: the defaults of every later evaluate,
    # quantize and simulate of it ([sharing] excepted: nothing reads it from a mean-field one)
    "train": tuple(s for s in ALL_SECTIONS if s != "sharing"),
    "share": ALL_SECTIONS,
    "evaluate": EVALUATE_SECTIONS,
    "quantize": QUANTIZE_SECTIONS,
    "simulate": SIMULATE_SECTIONS,
    "simulate --train-constrained": CONSTRAINED_SECTIONS,
    # the demo's chips take [hardware] but set these keys themselves (DEMO_ANALOG)
    "demo": (*(s for s in ALL_SECTIONS if s not in ("sharing", "hardware")),
             *(f"hardware.{key}" for key in HardwareConfig.model_fields
               if not any(key in change for change in DEMO_ANALOG.values()))),
}
"""What each command uses (whole sections, or "section.key" for single keys): a ``--set`` or
``--config`` key of anything else is refused (bayesim.config.check_override_sections,
check_file_sections) instead of being ignored."""


@dataclass
class TrainedModel:
    model: nn.Module
    benchmark: Benchmark
    history: list[EpochStats]
    checkpoint: Path


def train_experiment(config: ExperimentConfig, out_dir: str | os.PathLike[str],
                     progress: bool = True) -> TrainedModel:
    """Build the benchmark, train the BNN of ``config`` and save ``out_dir/model.safetensors``."""
    benchmark = build_benchmark(config.data, config.seed)
    if config.data.file is not None and benchmark.info.get("train") is None:
        raise DataError(f"{config.data.file} has no x_train/y_train: training needs them (on "
                        f"x_test the evaluation would see its own training data)")
    model = build_model(config.model, config.seed)
    with progress_bar(f"training {config.model.arch} on {config.data.benchmark}",
                      progress) as update:
        history = fit(model, benchmark.train, config.train, config.seed, on_step=update)
    path = save_trained(out_dir, model, config, benchmark, history)
    return TrainedModel(model, benchmark, history, path)


def save_trained(out_dir: str | os.PathLike[str], model: nn.Module, config: ExperimentConfig,
                 benchmark: Benchmark, history: list[EpochStats], **extra: Any) -> Path:
    """``out_dir/model.safetensors`` with the metadata every trained or fine-tuned checkpoint
    carries (its architecture, seed, experiment config, data provenance and training history),
    plus ``extra`` (the quantization, the source checkpoint, the device constraint)."""
    return save_checkpoint(Path(out_dir) / CHECKPOINT_NAME, model, config.model, seed=config.seed,
                           experiment=config.model_dump(mode="json"), data_info=benchmark.info,
                           history=[asdict(h) for h in history], **extra)


def _sampling_bits(quant: QuantConfig | None) -> int | None:
    """The precision a digital sampler of a model quantized by ``quant`` is priced at (None:
    fp32)."""
    return None if quant is None or quant.strategy == "fp" else quant.bits


def predictor_for(model: nn.Module, config: ExperimentConfig,
                  quantized: bool = False) -> SoftwarePredictor | SharedPredictor:
    """The software predictor of a model of either family: a mean-field model's (fp32, or the
    digital b-bit predictor of a quantized one) or a SharedNet's (``quantized``: its codebook
    quantized by ``config.quant``)."""
    if isinstance(model, SharedNet):
        return shared_predictor(model, config, quantized)
    return SoftwarePredictor(model, config.eval.batch_size,
                             {"model": config.model.model_dump(mode="json")})


def software_cost(predictor: SoftwarePredictor | SharedPredictor, config: ExperimentConfig,
                  benchmark: Benchmark, memory: dict[str, Any]) -> dict[str, Any]:
    """The cost section of a software predictor's report (digital sampling at its precision)."""
    x = benchmark.test["clean"].x
    bits = _sampling_bits(predictor.quant)
    if isinstance(predictor, SharedPredictor):
        return shared_digital_cost(predictor.net, bits, config.eval.n_samples, config.cost, x,
                                   memory)
    return digital_cost(predictor.model, bits, config.eval.n_samples, config.cost, x)


def evaluate_model(model: nn.Module, benchmark: Benchmark, config: ExperimentConfig,
                   progress: bool = True, quantized: bool = False) -> EvaluationResult:
    """Monte-Carlo evaluation of the software predictor of ``model``, either family
    (:func:`predictor_for`), with its cost."""
    predictor = predictor_for(model, config, quantized)
    name = predictor.describe().get("label")
    with progress_bar(f"evaluating{f' {name}' if name else ''}, S = {config.eval.n_samples}",
                      progress) as update:
        result = evaluate(predictor, benchmark, config.eval, config.seed, on_progress=update)
    result.report["cost"] = software_cost(predictor, config, benchmark, result.report["memory"])
    return result


def write_evaluation(result: EvaluationResult, out_dir: str | os.PathLike[str],
                     extra: dict[str, Any] | None = None) -> Path:
    """Write ``report.json`` (rounded, with its provenance: bayesim.reports) and ``scores.npz``
    (per-example PE/EE/MI) atomically."""
    out = Path(out_dir)
    report = finished({**result.report, **(extra or {})})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **result.scores)
    write_bytes(out / SCORES_NAME, buffer.getvalue())
    write_json(out / REPORT_NAME, report)
    return out / REPORT_NAME


def evaluation_config(checkpoint_experiment: dict[str, Any], config_path: str | None,
                      overrides: list[str], sections: tuple[str, ...] = EVALUATE_SECTIONS,
                      command: str = "evaluate") -> ExperimentConfig:
    """The checkpoint's experiment config, with ``sections`` of an optional config file and
    ``--set`` overrides applied on top."""
    merged = dict(checkpoint_experiment)
    if config_path is not None:
        file_data = read_toml(config_path)
        check_file_sections(file_data, sections, command, config_path)
        for section, value in file_data.items():
            merged[section] = ({**merged.get(section, {}), **value} if isinstance(value, dict)
                               else value)
    return validate(ExperimentConfig, apply_overrides(merged, overrides),
                    "the checkpoint's config" + (f" with {config_path}" if config_path else ""))


def load_model(checkpoint: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint of either family with its metadata: a mean-field model (a quantized one
    with its quantizers attached) or, for ``bayesim share``'s shared.safetensors, the SharedNet.
    Every command takes the model this returns (evaluate_model, simulate_model)."""
    if is_shared_checkpoint(checkpoint):
        shared = load_shared(checkpoint)
        return shared.net, shared.metadata
    loaded = load_checkpoint(checkpoint)
    model = loaded.model
    if "quant" in loaded.metadata:
        quant = validate(QuantConfig, loaded.metadata["quant"], f"{checkpoint} (quant metadata)")
        model = quantize_model(model, quant, source=str(checkpoint))
    return model, loaded.metadata


def evaluate_checkpoint(checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                        config_path: str | None = None, overrides: list[str] | None = None,
                        progress: bool = True) -> Path:
    """Load a checkpoint (mean-field, quantized or shared-Gaussian), rebuild its benchmark (same
    seed → same splits), evaluate, report."""
    model, metadata = load_model(checkpoint)
    config = evaluation_config(metadata.get("experiment", {}), config_path, overrides or [])
    check_cards(config.cost, None)
    benchmark = build_benchmark(config.data, config.seed)
    if isinstance(model, SharedNet):  # trained by `share` on its own benchmark, no own data
        return write_evaluation(evaluate_model(model, benchmark, config, progress), out_dir,
                                {"checkpoint": str(Path(checkpoint))})
    trained_on = metadata.get("data_info", {}).get("in_distribution")
    same_data = trained_on == benchmark.info["in_distribution"]
    check_own_data(model, benchmark, config, metadata)
    if not same_data and config.data.file is None:
        warnings.warn(f"the checkpoint was trained on '{trained_on}' but the in-distribution data "
                      f"found now is '{benchmark.info['in_distribution']}': the test split may "
                      f"overlap its training data", stacklevel=2)
    result = evaluate_model(model, benchmark, config, progress)
    return write_evaluation(result, out_dir, {"checkpoint": str(Path(checkpoint)),
                                              "same_data_as_training": same_data})


def device_technology(hw: HardwareConfig) -> str | None:
    """The technology of the device card a chip of ``hw`` uses (None for M0, which has none)."""
    if not scheme_for(hw).has_devices:
        return None
    return str(read_card(hw.device).get("technology", ""))


def check_own_data(model: nn.Module, benchmark: Benchmark, config: ExperimentConfig,
                   metadata: dict[str, Any]) -> None:
    """With ``data.file``: a DataError unless the model takes the data's inputs and has its
    number of classes, and a warning when the checkpoint was trained on normalised inputs but the
    file's are used as given."""
    if config.data.file is None:
        return
    x = benchmark.test["clean"].x[:2]
    try:
        with torch.no_grad(), sampling(model, "mean"):
            out = model(x)
    except RuntimeError as exc:
        raise DataError(f"{config.data.file}: the model cannot take inputs of shape "
                        f"{tuple(x.shape[1:])} ({str(exc).splitlines()[0]})") from None
    logits = out[0] if isinstance(out, tuple | list) else out
    if logits.shape[-1] != benchmark.n_classes:
        raise DataError(f"{config.data.file}: the model has {logits.shape[-1]} classes, the data "
                        f"data.n_classes = {benchmark.n_classes}; set data.n_classes")
    norm = metadata.get("data_info", {}).get("normalisation")
    if norm and (config.data.file_mean, config.data.file_std) == (0.0, 1.0):
        warnings.warn(f"the checkpoint was trained on inputs normalised by mean {norm['mean']}, "
                      f"std {norm['std']} ({norm.get('from')}); {config.data.file} is used as "
                      f"given — set data.file_mean/data.file_std if it is not normalised",
                      stacklevel=2)


def quantize_trained(model: nn.Module, benchmark: Benchmark, config: ExperimentConfig,
                     out_dir: str | os.PathLike[str], source: str,
                     progress: bool = True) -> tuple[nn.Module, Path]:
    """PTQ of ``model`` with ``config.quant``, then ``qat_epochs`` of QAT; saves the checkpoint.

    QAT draws its weight noise from a generator seeded with ``config.seed``, the state a model
    read back from its checkpoint starts in (bayesim.bnn.checkpoint builds it with the
    experiment's seed), so a model trained in this process and the same model loaded from disk
    fine-tune identically (not from wherever training and evaluation left its generator). The
    draws are standard normal and independent of μ and σ,
    so starting the stream where training started it biases nothing."""
    quant = config.quant
    qmodel = quantize_model(model, quant, source=source)
    history: list[EpochStats] = []
    if quant.qat_epochs:
        attach_generator(qmodel, config.seed)
        qat = config.train.fine_tuning(quant.qat_epochs, quant.qat_lr)
        with progress_bar(f"QAT {quant.label}", progress) as update:
            history = fit(qmodel, benchmark.train, qat, derive_seed(config.seed, "qat"),
                          on_step=update)
    path = save_trained(out_dir, qmodel, config, benchmark, history,
                        quant=quant.model_dump(mode="json"), source_checkpoint=source)
    return qmodel, path


def quantize_checkpoint(checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                        config_path: str | None = None, overrides: list[str] | None = None,
                        progress: bool = True) -> Path:
    """Quantize an fp32 checkpoint (``[quant]`` of its config, a ``--config`` file or
    ``--set quant.…``), optionally fine-tune it (QAT), evaluate the digital predictor, report."""
    loaded = load_checkpoint(checkpoint)
    if "quant" in loaded.metadata:
        raise ConfigError(f"{checkpoint} is already quantized; quantize its fp32 source "
                          f"{loaded.metadata.get('source_checkpoint', '')}".rstrip())
    config = evaluation_config(loaded.metadata.get("experiment", {}), config_path,
                               overrides or [], QUANTIZE_SECTIONS, "quantize")
    benchmark = build_benchmark(config.data, config.seed)
    qmodel, path = quantize_trained(loaded.model, benchmark, config, out_dir, str(checkpoint),
                                    progress)
    result = evaluate_model(qmodel, benchmark, config, progress)
    return write_evaluation(result, out_dir, {"checkpoint": str(path),
                                              "source_checkpoint": str(checkpoint)})


DEMO_SAMPLES = 30
"""Monte-Carlo samples per prediction of the demo's four rows when the config leaves
``eval.n_samples`` unset (other commands: 100). The guideline sweeps found S = 10–30 enough
(docs/results/guidelines.md, finding 6: AUROC MI 0.889 / 0.887 / 0.889 on the PCM chip and
0.895 / 0.891 / 0.893 on the RRAM chip for S = 10 / 30 / 100), and S = 30 keeps ``make demo``
under five minutes on 2 cores (docs/results/fp32_baseline.md, "Demo timing")."""


def demo_config(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with S = :data:`DEMO_SAMPLES` unless it sets ``eval.n_samples`` itself."""
    if "n_samples" in config.eval.model_fields_set:
        return config
    return config.model_copy(update={"eval": config.eval.model_copy(
        update={"n_samples": DEMO_SAMPLES})})


def run_demo(config: ExperimentConfig, out_dir: str | os.PathLike[str],
             progress: bool = True) -> list[Path]:
    """Train the fp32 BNN of ``config`` and evaluate it (``out_dir``), quantize it with
    ``config.quant`` and evaluate the digital predictor (``out_dir/digital``), then compile the
    fp32 model onto the analog chips of :data:`DEMO_ANALOG` (``out_dir/analog_*``), all with the
    same data and S. Returns the reports, in that order."""
    trained = train_experiment(config, out_dir, progress)
    result = evaluate_model(trained.model, trained.benchmark, config, progress)
    last = trained.history[-1]
    report = write_evaluation(result, out_dir, {
        "checkpoint": str(trained.checkpoint),
        "training": {"epochs": last.epoch, "final_loss": last.loss,
                     "final_train_accuracy": last.accuracy},
    })
    digital_dir = Path(out_dir) / DIGITAL_DEMO_DIR
    qmodel, qpath = quantize_trained(trained.model, trained.benchmark, config, digital_dir,
                                     str(trained.checkpoint), progress)
    digital = evaluate_model(qmodel, trained.benchmark, config, progress)
    reports = [report, write_evaluation(digital, digital_dir, {
        "checkpoint": str(qpath), "source_checkpoint": str(trained.checkpoint)})]
    for name, change in DEMO_ANALOG.items():
        analog_config = config.model_copy(update={
            "hardware": config.hardware.model_copy(update=change)})
        analog = simulate_model(trained.model, trained.benchmark, analog_config, progress)
        with_verdict(analog, reference_section(result.report, cached=False))
        reports.append(write_evaluation(analog, Path(out_dir) / name,
                                        {"checkpoint": str(trained.checkpoint)}))
    return reports


def with_verdict(chip: EvaluationResult, reference: dict[str, Any]) -> EvaluationResult:
    """Add the ``reference`` and ``verdict`` sections (bayesim.verdict) to a chip's report."""
    chip.report["reference"] = reference
    chip.report["verdict"] = verdict(chip.report, reference)
    return chip


def reference_settings(benchmark: Benchmark, config: ExperimentConfig) -> dict[str, Any]:
    """What decides a software reference besides the checkpoint: the data (as found), the
    evaluation settings and the seed."""
    return {"data": benchmark.info, "eval": config.eval.model_dump(mode="json"),
            "seed": config.seed}


CALIBRATION_INPUTS = 256
"""Training images whose rows' statistics the machine's α choice uses (the periphery's weight
against each layer's weights); a calibration set as post-training quantization uses one."""


def calibration_inputs(benchmark: Benchmark) -> torch.Tensor:
    """The first :data:`CALIBRATION_INPUTS` training images of ``benchmark``."""
    return benchmark.train.x[:CALIBRATION_INPUTS]


def simulate_model(model: nn.Module, benchmark: Benchmark, config: ExperimentConfig,
                   progress: bool = True) -> EvaluationResult:
    """Compile ``model`` onto the chip of ``config.hardware``, run Monte-Carlo inference on it and
    return the report with its ``hardware`` section (feasibility, counters, variance
    decomposition) and the σ pairs behind the realised-σ plot. A SharedNet is compiled as one
    device pair per weight programmed to its codebook entry's marginal (μ, σ)
    (SharedNet.export_mean_field), so the chip draws every weight independently; its report's
    ``hardware.device_states`` counts the distinct states that needs, and ``sharing`` the
    codebook behind them."""
    if isinstance(model, SharedNet):
        result = simulate_model(model.export_mean_field(), benchmark, config, progress)
        result.report["sharing"] = {"codebook": model.codebook().counts(),
                                    "memory": storage_report(model)}
        return result
    hw = config.hardware
    machine = BayesianMachine.compile(model, hw, calibration=calibration_inputs(benchmark))
    with progress_bar(f"simulating {machine.describe()['label']}, S = {config.eval.n_samples}",
                      progress) as update:
        result = evaluate(machine, benchmark, config.eval, config.seed, on_progress=update)
    hardware = machine.hardware_report(config.eval.n_samples)
    if hw.decomposition_inputs > 0:
        inputs = {name: benchmark.test[name].x[:hw.decomposition_inputs]
                  for name in ("clean", "ood") if name in benchmark.test}
        with progress_bar("variance decomposition", progress) as update:
            steps = 1 + len(SOURCES)
            done = [0]

            def step() -> None:
                done[0] += 1
                update(done[0], steps)

            reference = {name: machine.sample_probs(x, config.eval.n_samples, config.seed)
                         for name, x in inputs.items()}
            hardware["variance_decomposition"] = variance_decomposition(
                model, hw, inputs, config.eval.n_samples, config.seed, on_step=step,
                reference=reference, machine=machine)
        if config.eval.n_samples >= 4:
            hardware["sampling"] = sampling_report(reference["clean"], hw.read_correlation,
                                                   machine.chip.scheme.cycled_states(hw))
    result.report["hardware"] = hardware
    result.report["cost"] = machine_cost(machine, config.eval.n_samples, config.cost,
                                         benchmark.test["clean"].x)
    target, realised = machine.sigma_pairs()
    result.scores["sigma_target"] = target.astype(np.float32)
    result.scores["sigma_realised"] = realised.astype(np.float32)
    result.scores.update(machine.realised_arrays())
    return result


def train_constrained(model: nn.Module, benchmark: Benchmark, config: ExperimentConfig,
                      epochs: int, out_dir: str | os.PathLike[str], source: str,
                      progress: bool = True) -> tuple[nn.Module, ExperimentConfig, Path]:
    """Fine-tune ``model`` for ``epochs`` in the device-constrained family of
    ``config.hardware`` (bayesim.constrained) and save it as ``out_dir/model.safetensors``;
    returns the exported model and the config whose ``hardware.alpha`` holds the layer scales."""
    constrained, alphas = constrain_model(model, config.hardware)
    clamped_before = constraint_report(constrained)
    train = config.train.fine_tuning(epochs, config.quant.qat_lr)
    with progress_bar(f"device-constrained training on {config.hardware.device}",
                      progress) as update:
        history = fit(constrained, benchmark.train, train, derive_seed(config.seed, "constrained"),
                      on_step=update)
    plain = export_constrained(constrained)
    config = config.model_copy(update={"hardware": config.hardware.model_copy(
        update={"alpha": alphas})})
    path = save_trained(
        out_dir, plain, config, benchmark, history, source_checkpoint=source,
        device_constraint={"device": config.hardware.device, "mapping": config.hardware.mapping,
                           "alpha_uS_per_unit": alphas, "epochs": epochs,
                           "clamped_before_training": clamped_before})
    return plain, config, path


def simulate_checkpoint(checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                        config_path: str | None = None, overrides: list[str] | None = None,
                        progress: bool = True, constrained_epochs: int = 0) -> Path:
    """Load a checkpoint (fp32 or quantized), compile it onto the virtual chip of the config's
    ``[hardware]`` section, evaluate, and write the report with its ``hardware`` section. With
    ``constrained_epochs`` > 0 the model is first fine-tuned in the device-constrained family
    (saved as ``out_dir/model.safetensors``) and compiled with the layer scales of training."""
    extra: dict[str, Any] = {"checkpoint": str(Path(checkpoint))}
    model, metadata = load_model(checkpoint)
    shared = isinstance(model, SharedNet)
    if shared and constrained_epochs > 0:
        raise ConfigError("--train-constrained applies to mean-field checkpoints, not to a "
                          "shared-Gaussian one")
    command = "simulate --train-constrained" if constrained_epochs > 0 else "simulate"
    config = evaluation_config(metadata.get("experiment", {}), config_path, overrides or [],
                               COMMAND_SECTIONS[command], command)
    check_cards(config.cost, device_technology(config.hardware))
    benchmark = build_benchmark(config.data, config.seed)
    if not shared:
        check_own_data(model, benchmark, config, metadata)
    compiled = Path(checkpoint)
    if constrained_epochs > 0:
        model, config, compiled = train_constrained(model, benchmark, config, constrained_epochs,
                                                    out_dir, str(checkpoint), progress)
        extra = {"checkpoint": str(compiled), "source_checkpoint": str(checkpoint),
                 "device_constrained_epochs": constrained_epochs}
    result = simulate_model(model, benchmark, config, progress)
    # the reference is the software predictor of what the chip compiles: for a shared model its
    # mean-field export (every weight drawn independently from its entry's marginal, as the
    # chip draws it), not the shared sampler (one draw per Gaussian, shared by its members)
    reference = cached_reference(
        compiled, reference_settings(benchmark, config),
        lambda: evaluate_model(model.export_mean_field() if shared else model, benchmark,
                               config, progress).report,
        **({"note": SHARED_REFERENCE} if shared else {}))
    return write_evaluation(with_verdict(result, reference), out_dir, extra)


SHARED_REFERENCE = ("the software predictor of the shared checkpoint's mean-field export (each "
                    "weight drawn independently from its codebook entry's marginal, as the chip "
                    "draws it), same S, data and seed")
"""The ``reference.note`` of a chip compiled from a shared checkpoint."""


SHARED_CHECKPOINT_NAME = "shared.safetensors"


@dataclass
class SharedModel:
    net: SharedNet
    benchmark: Benchmark
    log: SharingLog
    checkpoint: Path


def share_experiment(config: ExperimentConfig, out_dir: str | os.PathLike[str],
                     progress: bool = True) -> SharedModel:
    """The stochastic-weight-sharing pipeline of ``config.sharing`` (bayesim.sharing.train):
    pre-training, fine-tuning, codebook, shared ELBO training; saves
    ``out_dir/shared.safetensors``."""
    sharing = config.sharing
    benchmark = build_benchmark(config.data, config.seed)
    model = build_model(config.model, config.seed)
    check_config_for(sharing, sum(layer.weight_mu.numel() for layer in bayesian_layers(model)))
    log = SharingLog()
    with progress_bar("sharing, stage 0: deterministic pre-training", progress) as update:
        pretrain(model, benchmark.train, config.train, sharing, config.seed, log, update)
    with progress_bar("sharing, stage 1: stochastic fine-tuning", progress) as update:
        importance = finetune(model, benchmark.train, config.train, sharing, config.seed, log,
                              update)
    member_mu = flat_posterior(model)[0]
    net = build_shared(model, importance, sharing, config.seed, log)
    if sharing.epochs:
        variant = "gradient" if sharing.gradient else "detached"
        with progress_bar(f"sharing, stage 2: shared ELBO ({variant})", progress) as update:
            net = fit_shared(net, member_mu, benchmark.train, config.train, sharing, config.seed,
                             log, update)
    path = save_shared(Path(out_dir) / SHARED_CHECKPOINT_NAME, net, config.model,
                       seed=config.seed, experiment=config.model_dump(mode="json"),
                       data_info=benchmark.info, sharing_log=log.as_json())
    return SharedModel(net, benchmark, log, path)


def shared_predictor(net: SharedNet, config: ExperimentConfig, quantized: bool = False
                     ) -> SharedPredictor:
    """The software predictor of ``net``; ``quantized`` applies ``config.quant`` to its
    codebook."""
    if quantized:
        net = quantize_shared(net, config.quant)
    return SharedPredictor(net, config.eval.batch_size,
                           {"sharing": config.sharing.model_dump(mode="json")})


def run_sharing(config: ExperimentConfig, out_dir: str | os.PathLike[str],
                         progress: bool = True) -> Path:
    """`bayesim share`: run the pipeline, evaluate the shared model, write its report (with the
    training log) next to the checkpoint."""
    check_cards(config.cost, None)
    shared = share_experiment(config, out_dir, progress)
    result = evaluate_model(shared.net, shared.benchmark, config, progress)
    return write_evaluation(result, out_dir, {"checkpoint": str(shared.checkpoint),
                                              "sharing": shared.log.as_json()})


def import_checkpoint(kind: str, source: str | os.PathLike[str], arch: str,
                      overrides: list[str], out: str | os.PathLike[str],
                      mapping: dict[str, str] | None = None, guide: str | None = None) -> Path:
    """Import a posterior trained elsewhere (bayesim.importers) onto architecture ``arch``
    (``--set model.*`` overrides) and write the signed checkpoint ``out``."""
    from bayesim.importers import read_posterior, to_checkpoint

    bad = [o for o in overrides if not o.startswith("model.")]
    if bad:
        raise ConfigError(f"import takes only model.* overrides (the architecture), not {bad[0]}")
    experiment = validate(ExperimentConfig, apply_overrides({"model": {"arch": arch}},
                                                            overrides), "the architecture")
    if Path(out).is_dir():
        raise ConfigError(f"--out {out} is a directory; give the checkpoint's file name, e.g. "
                          f"{Path(out) / 'model.safetensors'}")
    posterior = read_posterior(kind, source, guide)
    return to_checkpoint(posterior, experiment.model, out, mapping,
                         experiment.model_dump(mode="json"))
