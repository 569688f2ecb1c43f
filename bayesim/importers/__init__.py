"""Importers: posteriors trained elsewhere → signed bayesim checkpoints (docs/bring_your_own.md).

``read_posterior(kind, file)`` reads a Pyro param store (pyro.py), a bayesian-torch state dict
(bayesian_torch.py) or μ/σ tensors (tensors.py) into a SourcePosterior; ``to_checkpoint`` maps it
onto an architecture (source.py). None of them needs pyro or bayesian-torch installed.
"""

from pathlib import Path

from bayesim.errors import ConfigError
from bayesim.importers.bayesian_torch import read_bayesian_torch
from bayesim.importers.pyro import read_pyro
from bayesim.importers.source import SourcePosterior, to_checkpoint
from bayesim.importers.tensors import read_tensors

FORMATS = ("pyro", "bayesian-torch", "tensors")


def read_posterior(kind: str, path: str | Path, guide: str | None = None) -> SourcePosterior:
    """Read ``path`` as a posterior of format ``kind`` (one of :data:`FORMATS`)."""
    if kind not in FORMATS:
        raise ConfigError(f"unknown import format {kind!r}; choose one of {', '.join(FORMATS)}")
    if guide is not None and kind != "pyro":
        raise ConfigError("--guide applies to --from pyro only")
    if kind == "pyro":
        return read_pyro(path, guide)
    if kind == "bayesian-torch":
        return read_bayesian_torch(path)
    return read_tensors(path)


__all__ = ["FORMATS", "SourcePosterior", "read_posterior", "to_checkpoint"]
