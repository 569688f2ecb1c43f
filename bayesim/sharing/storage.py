"""Storage of a shared-Gaussian model and its compression accounting (Lin et al., AISTATS 2025:
"75% smaller model"; int16 labels as the released 2DGBNNs_train.py saves them).

The checkpoint is a safetensors file like bayesim.bnn.checkpoint's (JSON metadata + SHA-256
digest, never pickle), format ``bayesim.sharing/1``, holding exactly what inference needs:

=====================  ============  =========================================================
tensor                 dtype         content
=====================  ============  =========================================================
``labels``             int16 [N]     Gaussian k ≥ 0, −1 outlier, −2 ellipse point, per weight
``centers``            fp32 [K, 2]   c_k over (μ, σ)
``chol``               fp32 [K, 3]   L_k as (L₀₀, L₁₀, L₁₁)
``outlier_params``     fp32 [O, 2]   (m_j, s_j), in the order of the weights labelled −1
``ellipse_pair``       int16 [E, 2]  the two Gaussians of each weight labelled −2, in order
``ellipse_alpha``      fp32 [E]      the blend weight of the first
``bias.<layer>``       fp32          the frozen biases
=====================  ============  =========================================================

plus the empirical-Bayes prior (``prior.*``), which continued training needs and inference does
not; :func:`storage_report` counts only the inference tensors. The outlier and ellipse-point
indices are the positions of the labels −1 and −2; storing them again (the released code keeps
int32 index lists) would cost 4 bytes per outlier and could disagree with the labels.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import safetensors
import torch

from bayesim.bnn.checkpoint import check_digest, read_signed, write_signed
from bayesim.bnn.layers import bayesian_layers
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.errors import CheckpointError
from bayesim.sharing.codebook import ELLIPSE, OUTLIER, Codebook
from bayesim.sharing.model import SharedNet

FORMAT = "bayesim.sharing/1"
INFERENCE_TENSORS = ("labels", "centers", "chol", "outlier_params", "ellipse_pair",
                     "ellipse_alpha")


@dataclass
class SharedCheckpoint:
    net: SharedNet
    model_config: ModelConfig
    metadata: dict[str, Any]
    path: Path


def _chol3(chol: torch.Tensor) -> torch.Tensor:
    return torch.stack([chol[:, 0, 0], chol[:, 1, 0], chol[:, 1, 1]], 1)


def _chol22(values: torch.Tensor) -> torch.Tensor:
    zeros = torch.zeros_like(values[:, 0])
    return torch.stack([torch.stack([values[:, 0], zeros], -1),
                        torch.stack([values[:, 1], values[:, 2]], -1)], -2)


def shared_tensors(net: SharedNet) -> dict[str, torch.Tensor]:
    """The tensors of the checkpoint (module docstring)."""
    book = net.codebook()
    tensors = {
        "labels": book.labels.to(torch.int16),
        "centers": book.centers.float(),
        "chol": _chol3(book.chol.float()),
        "outlier_params": torch.stack([book.outlier_loc, book.outlier_sigma], 1).float(),
        "ellipse_pair": book.ellipse_pair.to(torch.int16),
        "ellipse_alpha": book.ellipse_alpha.float(),
        "prior.centers": net.prior_centers.float(),
        "prior.chol": _chol3(net.prior_chol.float()),
        "prior.outlier_params": torch.stack([net.prior_outlier_loc, net.prior_outlier_sigma],
                                            1).float(),
    }
    for i, layer in enumerate(bayesian_layers(net.skeleton)):
        if layer.bias_mu is not None:
            tensors[f"bias.{i}"] = layer.bias_mu.detach().float()
    return {k: v.contiguous() for k, v in tensors.items()}


def save_shared(path: str | os.PathLike[str], net: SharedNet, model_config: ModelConfig,
                **extra: Any) -> Path:
    """Write ``net`` (atomically) with its architecture and ``extra`` JSON-ready metadata."""
    return write_signed(path, shared_tensors(net), FORMAT,
                        model=model_config.model_dump(mode="json"), layer_sizes=net.layer_sizes,
                        gradient=net.gradient, **extra)


def is_shared_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a readable safetensors file in this module's format."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("bayesim", "{}"))
    except Exception:  # not a file, not safetensors, no JSON: not ours
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def load_shared(path: str | os.PathLike[str]) -> SharedCheckpoint:
    """Load and validate a checkpoint written by :func:`save_shared`."""
    path = Path(path)
    signed = read_signed(path, FORMAT, "shared-model checkpoint",
                         "; train one with `bayesim share`")
    check_digest(path, signed)
    meta, tensors = signed.meta, signed.tensors
    missing = [k for k in (*INFERENCE_TENSORS, "prior.centers", "prior.chol",
                           "prior.outlier_params") if k not in tensors]
    if missing:
        raise CheckpointError(f"{path}: missing tensors {missing}")
    try:
        model_config = ModelConfig.model_validate(meta.get("model"))
    except pydantic.ValidationError as exc:
        raise CheckpointError(f"{path}: invalid model metadata "
                              f"({exc.errors()[0]['msg']})") from None
    skeleton = build_model(model_config, seed=0)
    for i, layer in enumerate(bayesian_layers(skeleton)):
        if layer.bias_mu is not None:
            bias = tensors.get(f"bias.{i}")
            if bias is None or bias.shape != layer.bias_mu.shape:
                raise CheckpointError(f"{path}: bias of layer {i} missing or of the wrong shape")
            with torch.no_grad():
                layer.bias_mu.copy_(bias)
    params = tensors["outlier_params"]
    labels = tensors["labels"]
    outlier_index = torch.nonzero(labels == OUTLIER).squeeze(1)
    ellipse_index = torch.nonzero(labels == ELLIPSE).squeeze(1)
    if outlier_index.numel() != params.shape[0] or \
            ellipse_index.numel() != tensors["ellipse_pair"].shape[0]:
        raise CheckpointError(f"{path}: the labels mark {outlier_index.numel()} outliers and "
                              f"{ellipse_index.numel()} ellipse points, the tensors hold "
                              f"{params.shape[0]} and {tensors['ellipse_pair'].shape[0]}")
    book = Codebook(labels, tensors["centers"], _chol22(tensors["chol"]), outlier_index,
                    params[:, 0], params[:, 1], ellipse_index, tensors["ellipse_pair"].long(),
                    tensors["ellipse_alpha"], list(meta.get("layer_sizes", [])))
    prior = tensors["prior.outlier_params"]
    prior_book = Codebook(book.labels, tensors["prior.centers"], _chol22(tensors["prior.chol"]),
                          book.outlier_index, prior[:, 0], prior[:, 1], book.ellipse_index,
                          book.ellipse_pair, book.ellipse_alpha, book.layer_sizes)
    try:
        net = SharedNet(skeleton, prior_book, gradient=bool(meta.get("gradient", True)))
    except (ValueError, RuntimeError, IndexError) as exc:
        raise CheckpointError(f"{path}: the codebook does not fit the {model_config.arch} "
                              f"architecture ({exc})") from None
    net.load_codebook(book)
    return SharedCheckpoint(net.eval(), model_config, meta, path)


def storage_report(net: SharedNet, source_bits: int | None = None) -> dict[str, Any]:
    """The report's ``memory`` section: parameters and bytes of the shared model against the
    deterministic network and the mean-field BNN of the same architecture.

    Bytes count the inference tensors of the checkpoint (module docstring); with
    ``source_bits`` (a VPQ/JQ-quantized codebook: μ bits + σ bits) each of the K + O source
    (μ, σ) pairs takes that many bits instead of its fp32 values. Biases are fp32 everywhere; the
    mean-field BNN stores μ and σ (2 × fp32) per weight and bias, the deterministic network one
    fp32 value."""
    layers = bayesian_layers(net.skeleton)
    n_weights = net.n_weights
    n_biases = sum(layer.bias_mu.numel() for layer in layers if layer.bias_mu is not None)
    counts = net.codebook().counts()
    k, o = counts["gaussians"], counts["outliers"]
    tensors = shared_tensors(net)
    sizes = {name: tensors[name].numel() * tensors[name].element_size()
             for name in INFERENCE_TENSORS}
    if source_bits is not None:  # the quantized sources replace the fp32 codebook values
        for name in ("centers", "chol", "outlier_params"):
            sizes[name] = 0
        sizes["quantized_sources"] = (k + o) * source_bits / 8
    sizes["biases"] = 4 * n_biases
    total = float(sum(sizes.values()))
    mean_field_bytes = 8 * (n_weights + n_biases)
    deterministic_bytes = 4 * (n_weights + n_biases)
    trainable = net.n_trainable()
    mean_field_params = 2 * (n_weights + n_biases)
    bits = 8 * (total - sizes["biases"]) / n_weights
    return {
        "strategy": "shared",
        "n_weights": n_weights,
        "n_biases": n_biases,
        **{f"n_{name}": value for name, value in counts.items() if name != "weights"},
        "trainable_parameters": trainable,
        "trainable_parameters_mean_field": mean_field_params,
        "trainable_parameters_deterministic": n_weights + n_biases,
        "fewer_trainable_than_mean_field": mean_field_params / trainable if trainable else None,
        "fewer_trainable_than_deterministic": (n_weights + n_biases) / trainable
        if trainable else None,
        "bytes": sizes,
        "total_bytes": total,
        "mean_field_bytes": mean_field_bytes,
        "deterministic_bytes": deterministic_bytes,
        "size_reduction_vs_mean_field": 1.0 - total / mean_field_bytes,
        "size_reduction_vs_deterministic": 1.0 - total / deterministic_bytes,
        "bits_per_weight": bits,
        "compression_vs_fp32": 64.0 / bits,
        "note": "bytes of the inference tensors; biases fp32 and frozen (not trainable)",
    }
