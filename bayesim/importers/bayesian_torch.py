"""bayesian-torch state dicts (``torch.save(model.state_dict(), path)``).

bayesian-torch's variational layers keep ``mu_weight``/``rho_weight`` (linear) or ``mu_kernel``/
``rho_kernel`` (convolutions) and ``mu_bias``/``rho_bias``, with σ = log1p(exp ρ) — the
library's own transform (its layers' ``forward``); ``eps_*`` and ``prior_*`` buffers are not part
of the posterior. BatchNorm modules (``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``) come along deterministically. The file is read with
``torch.load(weights_only=True)``: tensors only, no code runs.
"""

import pickle
from pathlib import Path

import torch

from bayesim.errors import CheckpointError
from bayesim.importers.source import (
    BATCHNORM_KEYS,
    SourceLayer,
    SourcePosterior,
    check_posterior,
    file_sha256,
)
from bayesim.machine.adapters import bayesian_torch_sigma

IGNORED_PREFIXES = ("eps_", "prior_")


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A ``torch.save``-d dict of tensors, read with ``weights_only=True``."""
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        line = next((ln for ln in str(exc).splitlines() if "GLOBAL" in ln),
                    str(exc).splitlines()[-1])
        raise CheckpointError(f"{path} is not a plain {what} of tensors ({line.strip()}); it "
                              f"was not loaded and nothing in it was executed") from None
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable {what} ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"],
                                                                        dict):
        state = state["state_dict"]  # a training checkpoint around the state dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f"{path} is not a {what}: expected a dict of tensors")
    return dict(state)


def read_bayesian_torch(path: str | Path) -> SourcePosterior:
    """The posterior of a bayesian-torch model's state dict at ``path``."""
    path = Path(path)
    state = read_state_dict(path, "bayesian-torch state dict")
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        module, _, name = key.rpartition(".")
        if name.startswith(IGNORED_PREFIXES):
            continue
        modules.setdefault(module, {})[name] = value
    layers: list[SourceLayer] = []
    batchnorm: dict[str, dict[str, torch.Tensor]] = {}
    for module, tensors in modules.items():
        stem = "weight" if "mu_weight" in tensors else "kernel" if "mu_kernel" in tensors \
            else None
        where = f"{path}: {module or '(top level)'}"
        if stem is not None:
            for needed in (f"rho_{stem}",) + (("rho_bias",) if "mu_bias" in tensors else ()):
                if needed not in tensors:
                    raise CheckpointError(f"{where} has mu_{stem} but no {needed}")
            weight = (tensors[f"mu_{stem}"], bayesian_torch_sigma(tensors[f"rho_{stem}"]))
            check_posterior(f"{where}.rho_{stem}", *weight)
            bias = None
            if "mu_bias" in tensors:
                bias = (tensors["mu_bias"], bayesian_torch_sigma(tensors["rho_bias"]))
                check_posterior(f"{where}.rho_bias", *bias)
            layers.append(SourceLayer(module, weight, bias, f"{path}: {module}.rho_{stem}"))
        elif "running_mean" in tensors:
            missing = [k for k in BATCHNORM_KEYS if k not in tensors]
            if missing:
                raise CheckpointError(f"{where} (BatchNorm) has no {missing[0]}")
            batchnorm[module] = tensors
        else:
            raise CheckpointError(f"{where} holds {', '.join(sorted(tensors))}: neither a "
                                  f"bayesian-torch variational layer nor a BatchNorm; a "
                                  f"deterministic layer has no posterior to import")
    if not layers:
        raise CheckpointError(f"{path}: no bayesian-torch variational layers (mu_weight/"
                              f"rho_weight or mu_kernel/rho_kernel)")
    provenance = {"file": str(path), "sha256": file_sha256(path),
                  "parameterisation": "sigma = log1p(exp(rho)) (bayesian-torch)"}
    return SourcePosterior("bayesian-torch", layers, batchnorm, provenance)
