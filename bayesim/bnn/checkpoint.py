"""Checkpoints: safetensors tensors + JSON metadata, validated on load, never pickled.

One ``.safetensors`` file holds the model's state dict (μ, ρ and the prior of every layer) and, in
the safetensors header, two metadata strings: ``bayesim`` (JSON: format, architecture, prior, data,
training settings, seed, package versions) and ``sha256`` (a digest over that JSON and every
tensor's name, dtype, shape and bytes). Loading rebuilds the architecture from the metadata, checks
every tensor name and shape against it, and verifies the digest, so a wrong shape, an edited
metadata field or an altered tensor is a :class:`CheckpointError`, never a silent partial load.
"""

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import safetensors
import safetensors.torch
import torch
from torch import nn

import bayesim
from bayesim.atomic import write_bytes
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.errors import CheckpointError

FORMAT = "bayesim.bnn/1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode), its config and the stored metadata."""

    model: nn.Module
    model_config: ModelConfig
    metadata: dict[str, Any]
    path: Path


def tensor_digest(meta_json: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    return {"bayesim": bayesim.__version__, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


@dataclass
class SignedFile:
    """A safetensors file of bayesim: its tensors, its metadata (parsed and as stored) and the
    stored digest."""

    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    meta_json: str
    sha256: str


def write_signed(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], fmt: str,
                 **meta: Any) -> Path:
    """Write ``tensors`` atomically with JSON metadata (format ``fmt``, ``meta``, package versions,
    creation time) and the SHA-256 digest over both."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta_json = json.dumps({"format": fmt, **meta, "versions": package_versions(),
                            "created": datetime.now(UTC).isoformat(timespec="seconds")},
                           sort_keys=True)
    data = safetensors.torch.save(tensors, metadata={"bayesim": meta_json,
                                                     "sha256": tensor_digest(meta_json, tensors)})
    write_bytes(path, data)
    return Path(path)


def read_signed(path: Path, fmt: str, what: str = "checkpoint", hint: str = "") -> SignedFile:
    """Read a file written by :func:`write_signed` and check that it has format ``fmt`` (else a
    CheckpointError, ``hint`` appended); the digest is checked by :func:`check_digest`."""
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.safetensors"))
        inside = f" (it holds {', '.join(found)})" if found else " (it holds no .safetensors file)"
        raise CheckpointError(f"{what} {path} is a directory{inside}; give the file, e.g. "
                              f"{path / (found[0] if found else 'model.safetensors')}")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} not found")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    if "bayesim" not in header or "sha256" not in header:
        raise CheckpointError(f"{path} has no bayesim metadata; it was not written by bayesim")
    try:
        meta = json.loads(header["bayesim"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise CheckpointError(f"{path}: unsupported checkpoint format "
                              f"{meta.get('format') if isinstance(meta, dict) else None!r}; "
                              f"expected {fmt!r}{hint}")
    return SignedFile(meta, tensors, header["bayesim"], header["sha256"])


def check_digest(path: Path, signed: SignedFile) -> None:
    """CheckpointError unless the tensors and metadata match the stored digest."""
    if tensor_digest(signed.meta_json, signed.tensors) != signed.sha256:
        raise CheckpointError(f"{path}: content does not match its SHA-256 digest; the metadata or "
                              f"tensors were modified after saving. Re-create the checkpoint")


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, model_config: ModelConfig,
                    **extra: Any) -> Path:
    """Write ``model`` with its config and ``extra`` JSON-ready metadata (data, training, seed…)."""
    return write_signed(path, model.state_dict(), FORMAT,
                        model=model_config.model_dump(mode="json"), **extra)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load and validate a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    signed = read_signed(path, FORMAT)
    meta, tensors = signed.meta, signed.tensors
    try:
        model_config = ModelConfig.model_validate(meta.get("model"))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(f"{path}: invalid model metadata at model.{where}: "
                              f"{first['msg']}") from None
    model = build_model(model_config, seed=int(meta.get("seed", 0)))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: tensors do not match the {model_config.arch} architecture "
                              f"in its metadata (missing: {missing[:3]}, unexpected: "
                              f"{unexpected[:3]})")
    for name, ref in expected.items():
        if tuple(tensors[name].shape) != tuple(ref.shape) or tensors[name].dtype != ref.dtype:
            raise CheckpointError(
                f"{path}: tensor {name} has shape {tuple(tensors[name].shape)} "
                f"({tensors[name].dtype}), the architecture in its metadata needs "
                f"{tuple(ref.shape)} ({ref.dtype})")
    check_digest(path, signed)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return Checkpoint(model, model_config, meta, path)
