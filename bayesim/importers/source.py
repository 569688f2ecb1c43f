"""A posterior read from another tool, and how it becomes a signed bayesim checkpoint.

Every importer (pyro.py, bayesian_torch.py, tensors.py) reads its file into a
:class:`SourcePosterior`: per Bayesian module, in the file's order, the weight and bias posteriors
N(μ, σ²) with σ already through the source's own transform, plus the deterministic state of
BatchNorm modules. :func:`to_checkpoint` maps the source modules onto an architecture's layers —
by name where the source uses the architecture's own module paths, else by order, or by an
explicit ``mapping`` where the order does not decide — verifies every shape, turns
σ into bayesim's ρ (σ = softplus ρ) and writes a signed checkpoint whose metadata records where it
came from (file, SHA-256, format, guide, parameterisation, mapping).
"""

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bayesim.bnn.checkpoint import save_checkpoint
from bayesim.bnn.layers import BayesianLayer, inverse_softplus
from bayesim.bnn.models import ModelConfig, build_model
from bayesim.data.sources import file_digest
from bayesim.errors import CheckpointError

BATCHNORM_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
POINT_MASS_RHO = -30.0
"""ρ of a parameter the source holds as a point (a deterministic bias): σ = softplus(−30) ≈
9e-14, the convention of bayesim's shared-Gaussian export."""


@dataclasses.dataclass
class SourceLayer:
    """One Bayesian module of the source: its path there, (μ, σ) of weight and bias, and the
    source keys they came from (for messages)."""

    path: str
    weight: tuple[torch.Tensor, torch.Tensor]
    bias: tuple[torch.Tensor, torch.Tensor] | None
    keys: str


@dataclasses.dataclass
class SourcePosterior:
    """What an importer read (module docstring)."""

    format: str
    layers: list[SourceLayer]
    batchnorm: dict[str, dict[str, torch.Tensor]]
    provenance: dict[str, Any]


def file_sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def check_posterior(key: str, mu: torch.Tensor, sigma: torch.Tensor) -> None:
    """CheckpointError unless μ is finite and σ finite and > 0 (after the source's transform)."""
    if not bool(torch.isfinite(mu).all()):
        raise CheckpointError(f"{key}: μ has NaN or Inf values")
    if not bool(torch.isfinite(sigma).all()) or not bool((sigma > 0).all()):
        bad = sigma[~(torch.isfinite(sigma) & (sigma > 0))][0].item()
        raise CheckpointError(f"{key}: σ must be finite and > 0 after the transform, found "
                              f"{bad:g}")


def rho_of(sigma: torch.Tensor, key: str) -> torch.Tensor:
    """bayesim's ρ for σ (σ = softplus ρ, bayesim.bnn.layers.inverse_softplus), refusing a σ too
    small for a float32 ρ."""
    s = sigma.double()
    rho = inverse_softplus(s)
    back = torch.nn.functional.softplus(rho)
    if not bool(torch.isfinite(rho).all()) or not bool((back > 0).all()):
        raise CheckpointError(f"{key}: σ {float(s.min()):g} is too small for a float32 ρ "
                              f"(σ = softplus ρ underflows to 0)")
    return rho


def _targets(model: nn.Module) -> tuple[list[tuple[str, BayesianLayer]],
                                        list[tuple[str, nn.Module]]]:
    bayes = [(p, m) for p, m in model.named_modules() if isinstance(m, BayesianLayer)]
    norms = [(p, m) for p, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return bayes, norms


def _pair_up(sources: list[str], targets: list[str], mapping: dict[str, str], what: str,
             origin: str, arch: str) -> dict[str, str]:
    """Source path → target path: ``mapping`` (whose keys the caller took from ``sources``)
    first, the rest in order."""
    bad = sorted(set(mapping.values()) - set(targets))
    if bad:
        raise CheckpointError(f"--map target {bad[0]!r} is not a {what} of the {arch} "
                              f"architecture (it has {', '.join(targets) or 'none'})")
    if len(sources) != len(targets):
        raise CheckpointError(f"{origin} has {len(sources)} {what}s ({', '.join(sources)}), "
                              f"the {arch} architecture {len(targets)} "
                              f"({', '.join(targets)}); choose --arch/--set model.* to match")
    repeated = sorted({t for t in mapping.values() if list(mapping.values()).count(t) > 1})
    if repeated:
        raise CheckpointError(f"--map puts several source modules on {repeated[0]!r}; every "
                              f"target takes one")
    if not mapping and set(sources) == set(targets):
        return {s: s for s in sources}  # the same module paths: matched by name
    rest = iter([t for t in targets if t not in mapping.values()])
    return {s: mapping[s] if s in mapping else next(rest) for s in sources}


def to_checkpoint(source: SourcePosterior, model_config: ModelConfig,
                  out: str | os.PathLike[str], mapping: dict[str, str] | None = None,
                  experiment: dict[str, Any] | None = None) -> Path:
    """Map ``source`` onto the architecture of ``model_config`` and write the checkpoint
    ``out`` (atomically; nothing is written on any error). ``experiment``: the experiment config
    recorded with it (what ``evaluate``/``simulate`` start from)."""
    model = build_model(model_config, seed=0)
    bayes, norms = _targets(model)
    origin = source.provenance.get("file", source.format)
    # a target given by Bayesian-layer index (--map fc1=#0) is that layer's module path
    named = {f"#{i}": p for i, (p, _) in enumerate(bayes)}
    for target in (mapping or {}).values():
        if target.startswith("#") and target not in named:
            raise CheckpointError(f"--map target {target!r}: the {model_config.arch} "
                                  f"architecture has Bayesian layers #0–#{len(bayes) - 1}")
    explicit = {s: named.get(t, t) for s, t in (mapping or {}).items()}
    by_path = dict(bayes)
    layer_sources = [s.path for s in source.layers]
    unknown = sorted(set(explicit) - set(layer_sources) - set(source.batchnorm))
    if unknown:
        raise CheckpointError(f"--map names {unknown[0]!r}, not a module of {origin} (its "
                              f"Bayesian modules: {', '.join(layer_sources)})")
    layer_map = _pair_up(layer_sources, list(by_path),
                         {s: t for s, t in explicit.items() if s in layer_sources},
                         "Bayesian layer", origin, model_config.arch)
    state = model.state_dict()
    for layer in source.layers:
        target = layer_map[layer.path]
        module = by_path[target]
        prefix = f"{target}." if target else ""
        for role, posterior in (("weight", layer.weight), ("bias", layer.bias)):
            ref = getattr(module, f"{role}_mu")
            if (posterior is None) != (ref is None):
                have = "has" if posterior is not None else "has no"
                raise CheckpointError(f"{layer.keys}: the source {have} a {role} for "
                                      f"{layer.path}, the architecture's layer {target} "
                                      f"{'has none' if ref is None else 'needs one'}")
            if posterior is None:
                continue
            mu, sigma = posterior
            if tuple(mu.shape) != tuple(ref.shape) or tuple(sigma.shape) != tuple(ref.shape):
                raise CheckpointError(f"{layer.keys}: {layer.path} {role} has shape "
                                      f"{tuple(mu.shape)}, the architecture's layer {target} "
                                      f"needs {tuple(ref.shape)}; use --map or --set model.*")
            check_posterior(f"{layer.keys} ({role})", mu, sigma)
            state[f"{prefix}{role}_mu"] = mu.detach().float().clone()
            state[f"{prefix}{role}_rho"] = rho_of(sigma.detach(), f"{layer.keys} ({role})")
    norm_paths = [p for p, _ in norms]
    norm_map = _pair_up(list(source.batchnorm), norm_paths,
                        {s: t for s, t in explicit.items() if s in source.batchnorm},
                        "BatchNorm module", origin, model_config.arch)
    for path, tensors in source.batchnorm.items():
        target = norm_map[path]
        for key in BATCHNORM_KEYS:
            name = f"{target}.{key}"
            if key not in tensors:
                raise CheckpointError(f"{origin}: BatchNorm {path} has no {key}")
            if tuple(tensors[key].shape) != tuple(state[name].shape):
                raise CheckpointError(f"{origin}: {path}.{key} has shape "
                                      f"{tuple(tensors[key].shape)}, the architecture's {name} "
                                      f"needs {tuple(state[name].shape)}")
            state[name] = tensors[key].detach().to(state[name].dtype).clone()
    model.load_state_dict(state, strict=True)
    provenance = {**source.provenance, "format": source.format,
                  "mapping": {**layer_map, **norm_map}}
    extra = {} if experiment is None else {"experiment": experiment}
    return save_checkpoint(out, model, model_config, seed=0, imported=provenance, **extra)
