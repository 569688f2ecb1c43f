"""Experiment configuration: TOML files, dotted ``--set`` overrides, validation with clear messages.

Each concern owns its config model next to its code (``data.dirty.DataConfig``,
``bnn.models.ModelConfig``, ``bnn.train.TrainConfig``, ``evaluate.EvalConfig``,
``quant.strategies.QuantConfig``, ``machine.HardwareConfig``, ``sharing.SharingConfig``); this
module only composes them into :class:`ExperimentConfig` and turns every validation failure into one
:class:`~bayesim.errors.ConfigError` line naming the key, the bad value and what is allowed.
"""

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from bayesim.bnn.models import ModelConfig
from bayesim.bnn.train import TrainConfig
from bayesim.cost import CostConfig
from bayesim.data.dirty import DataConfig
from bayesim.errors import ConfigError
from bayesim.evaluate import EvalConfig
from bayesim.machine import HardwareConfig
from bayesim.quant.strategies import QuantConfig
from bayesim.schema import M, StrictModel, validate
from bayesim.sharing.codebook import SharingConfig


class ExperimentConfig(StrictModel):
    """One experiment: data, model, training and evaluation, all keyed by one seed."""

    name: str = "experiment"
    seed: int = Field(default=0, ge=0)
    """Root seed; data splits, initialisation, minibatch order and Monte-Carlo draws derive from
    it through bayesim.seeding.derive_seed."""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    quant: QuantConfig = Field(default_factory=lambda: QuantConfig(strategy="JQ", bits=4,
                                                                   qat_epochs=5))
    """Used by `bayesim quantize` and by the demo's digital row (default: JQ, 4 bits, 5 epochs
    of QAT); `bayesim train` ignores it."""
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    """The virtual chip of `bayesim simulate` (bayesim.machine); other commands ignore it."""
    sharing: SharingConfig = Field(default_factory=SharingConfig)
    """Stochastic weight sharing (`bayesim share`, bayesim.sharing); other commands ignore it."""
    cost: CostConfig = Field(default_factory=CostConfig)
    """The cost cards that price evaluate/simulate reports (bayesim.cost, docs/cost.md)."""


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory; give the TOML file, e.g. "
                          f"experiments/machine_pcm.toml")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        hint = (" (text values need quotes: device = \"pcm_ibm_2020\")"
                if "Invalid value" in str(exc) else "")
        raise ConfigError(f"{path} is not valid TOML: {exc}{hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``dotted.key=value``; the value is read as a TOML value, else kept as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. "
                          f"train.epochs=5")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key=value`` override set (creating sections)."""
    result = _deep_copy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = result
        for part in keys[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: '{part}' is a value, not a section")
            node = child
        node[keys[-1]] = value
    return result


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


TOP_LEVEL_KEYS = ("name", "seed")
"""Keys of ExperimentConfig that are values, not sections: every command takes them."""


def is_used(keys: Sequence[str], uses: Sequence[str]) -> bool:
    """Whether a command that uses ``uses`` reads the dotted key ``keys``: ``uses`` names whole
    sections ("data") or single keys ("train.batch_size")."""
    if len(keys) == 1 and keys[0] in TOP_LEVEL_KEYS:
        return True
    return keys[0] in uses or (len(keys) > 1 and f"{keys[0]}.{keys[1]}" in uses)


def describe_uses(uses: Sequence[str]) -> str:
    """``uses`` in words: whole sections, then a section's single keys in parentheses."""
    whole = [u for u in uses if "." not in u]
    partial: dict[str, list[str]] = {}
    for use in uses:
        if "." in use:
            section, key = use.split(".", 1)
            partial.setdefault(section, []).append(key)
    parts = whole + [f"{section} ({', '.join(keys)})" for section, keys in partial.items()]
    return f"{', '.join(parts)} (and {', '.join(TOP_LEVEL_KEYS)})"


def unused_key_error(key: str, uses: Sequence[str], command: str, given: str) -> ConfigError:
    keys = key.split(".")
    what = (f"[{keys[0]}]" if not any(u.split(".")[0] == keys[0] for u in uses)
            else ".".join(keys[:2]))
    return ConfigError(f"{given}: {command} does not use {what}; it takes keys of "
                       f"{describe_uses(uses)}")


def check_override_sections(overrides: Sequence[str], uses: Sequence[str],
                            command: str) -> None:
    """Refuse a ``--set`` key that ``command`` does not use (it would be ignored silently),
    naming what it takes (``uses``: :func:`is_used`)."""
    for text in overrides:
        keys, _ = parse_override(text)
        if not is_used(keys, uses):
            raise unused_key_error(".".join(keys), uses, command, f"--set {text}")


def check_file_sections(data: dict[str, Any], uses: Sequence[str], command: str,
                        path: str | os.PathLike[str]) -> None:
    """Refuse a key of a ``--config`` file that ``command`` does not use."""
    for section, value in data.items():
        keys = [f"{section}.{k}" for k in value] if isinstance(value, dict) else [section]
        for key in keys:
            if not is_used(key.split("."), uses):
                raise unused_key_error(key, uses, command, f"{path}: {key}")


def load_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = (),
                model: type[M] = ExperimentConfig) -> M:  # type: ignore[assignment]
    """Load a TOML config (or the defaults if ``path`` is None), apply overrides, validate."""
    data = read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "the defaults"
    if overrides:
        source += " with --set " + " ".join(overrides)
    return validate(model, apply_overrides(data, overrides), source)
