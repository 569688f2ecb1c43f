"""μ/σ tensors: a safetensors file of ``<module path>.<weight|bias>.mu`` and
``<module path>.<weight|bias>.sigma`` (or ``.rho``, with σ = softplus ρ, bayesim's convention)
per parameter, plus BatchNorm state as ``<module path>.<running_mean|…>``. The format for any
posterior bayesim has no reader for (a diagonal Laplace, SWAG, a JAX model): write it with
``safetensors.torch.save_file``."""

from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F

from bayesim.errors import CheckpointError
from bayesim.importers.source import (
    BATCHNORM_KEYS,
    SourceLayer,
    SourcePosterior,
    check_posterior,
    file_sha256,
)


def read_tensors(path: str | Path) -> SourcePosterior:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        state = safetensors.torch.load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    params: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    batchnorm: dict[str, dict[str, torch.Tensor]] = {}
    parameterisation = set()
    for key, value in state.items():
        parts = key.rsplit(".", 2)
        if len(parts) == 3 and parts[1] in ("weight", "bias") and parts[2] in ("mu", "sigma",
                                                                                 "rho"):
            params.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2]] = value
            continue
        module, _, name = key.rpartition(".")
        if name in BATCHNORM_KEYS:
            batchnorm.setdefault(module, {})[name] = value
            continue
        raise CheckpointError(f"{path}: key {key!r} is neither '<module>.<weight|bias>."
                              f"<mu|sigma|rho>' nor BatchNorm state")
    layers = []
    for module, roles in params.items():
        posterior: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for role, entry in roles.items():
            key = f"{module}.{role}"
            if "mu" not in entry or not ({"sigma", "rho"} & set(entry)):
                raise CheckpointError(f"{path}: {key} needs both .mu and .sigma (or .rho)")
            if {"sigma", "rho"} <= set(entry):
                raise CheckpointError(f"{path}: {key} has both .sigma and .rho; keep one")
            sigma = entry["sigma"] if "sigma" in entry else F.softplus(entry["rho"])
            parameterisation.add("sigma" if "sigma" in entry else "softplus(rho)")
            check_posterior(f"{path}: {key}", entry["mu"], sigma)
            posterior[role] = (entry["mu"], sigma)
        if "weight" not in posterior:
            raise CheckpointError(f"{path}: {module} has a bias posterior but no weight")
        layers.append(SourceLayer(module, posterior["weight"], posterior.get("bias"),
                                  f"{path}: {module}.weight"))
    for module, tensors in batchnorm.items():
        missing = [k for k in BATCHNORM_KEYS if k not in tensors]
        if missing:
            raise CheckpointError(f"{path}: BatchNorm {module} has no {missing[0]}")
    if not layers:
        raise CheckpointError(f"{path}: no '<module>.weight.mu' tensors")
    provenance = {"file": str(path), "sha256": file_sha256(path),
                  "parameterisation": ", ".join(sorted(parameterisation))}
    return SourcePosterior("tensors", layers, batchnorm, provenance)
