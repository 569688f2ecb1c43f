"""Cost cards: TOML files in ``cost_models/`` with the energy, time and rate constants of one
technology (an analog array, a periphery, a digital baseline).

Every number is a table ``{ value, unit, node_nm, source }``: ``source`` a key of the card's
``[sources]``, ``node_nm`` the technology node it was measured or assumed at. A card whose number
lacks one of these, has an unknown unit or a negative value, or whose ``kind`` is not the one
asked for, is refused with a ConfigError naming the card and key. Values are converted to SI
(J, s, V, 1/s). :meth:`CostCard.get` scales an energy or time from its node to a target node by
the first-order rule E ∝ t ∝ node (C ∝ feature size at fixed voltage), and refuses to scale by
more than :data:`MAX_NODE_RATIO` (an extrapolation).
"""

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from bayesim.errors import ConfigError

CARD_DIR = Path(__file__).resolve().parents[2] / "cost_models"
"""The shipped cost cards (the repository's cost_models/; the package is installed editable)."""

UNITS: dict[str, tuple[float, str]] = {
    "J": (1.0, "energy"), "nJ": (1e-9, "energy"), "pJ": (1e-12, "energy"),
    "fJ": (1e-15, "energy"), "aJ": (1e-18, "energy"),
    "s": (1.0, "time"), "us": (1e-6, "time"), "ns": (1e-9, "time"), "ps": (1e-12, "time"),
    "V": (1.0, "voltage"), "1": (1.0, "count"),
    "GOp/s": (1e9, "rate"), "GSa/s": (1e9, "rate"), "1/s": (1.0, "rate"),
}
"""Accepted units → (factor to SI, quantity)."""

MAX_NODE_RATIO = 4.0
"""Node scaling beyond this factor (either way) is an extrapolation and refused."""

KINDS = ("array", "periphery", "digital")


@dataclasses.dataclass(frozen=True)
class Constant:
    """One number of a card, in SI units."""

    value: float
    quantity: str
    node_nm: float
    source: str
    unit: str


@dataclasses.dataclass
class CostCard:
    name: str
    kind: str
    summary: str
    constants: dict[str, Constant]
    """Dotted key (``"read.voltage"``) → constant."""
    laws: dict[str, str]
    """Dotted key of a string setting (``"adc.law"``) → value."""
    sources: dict[str, str]
    path: Path

    def get(self, key: str, node_nm: float | None = None) -> float:
        """The SI value of ``key``; energies and times scaled to ``node_nm`` (E ∝ node)."""
        if key not in self.constants:
            raise ConfigError(f"cost card {self.name} has no {key}")
        c = self.constants[key]
        if node_nm is None or c.quantity not in ("energy", "time") or node_nm == c.node_nm:
            return c.value
        ratio = node_nm / c.node_nm
        if not 1 / MAX_NODE_RATIO <= ratio <= MAX_NODE_RATIO:
            raise ConfigError(f"cost card {self.name}: {key} is given at {c.node_nm:g} nm; "
                              f"scaling it to {node_nm:g} nm extrapolates beyond "
                              f"{MAX_NODE_RATIO:g}× — choose cost.node_nm closer or a card "
                              f"of that node")
        return c.value * ratio

    def require(self, needed: dict[str, str]) -> None:
        """ConfigError unless the card has every key of ``needed`` with its quantity."""
        for key, quantity in needed.items():
            if key not in self.constants:
                raise ConfigError(f"cost card {self.path.name} has no {key} ({quantity})")
            if self.constants[key].quantity != quantity:
                raise ConfigError(f"cost card {self.path.name}: {key} must be a {quantity}, "
                                  f"its unit {self.constants[key].unit!r} is a "
                                  f"{self.constants[key].quantity}")

    def describe(self) -> dict[str, Any]:
        """The card as a report shows it: name, summary, each constant with unit and source."""
        return {"name": self.name, "summary": self.summary,
                "constants": {k: {"value_si": c.value, "unit": c.unit, "node_nm": c.node_nm,
                                  "source": c.source,
                                  "assumed": c.source == "assumed"}
                              for k, c in self.constants.items()},
                "laws": dict(self.laws)}


def card_path(name: str) -> Path:
    if name.endswith(".toml") or os.sep in name:
        return Path(name)
    return CARD_DIR / f"{name}.toml"


def shipped_cards() -> list[str]:
    return sorted(p.stem for p in CARD_DIR.glob("*.toml"))


def load_cost_card(name: str, kind: str) -> CostCard:
    """Load and validate the cost card ``name`` (shipped name or path) of kind ``kind``."""
    path = card_path(name)
    if not path.is_file():
        raise ConfigError(f"cost card {name!r} not found; the shipped cards are "
                          f"{', '.join(shipped_cards())} (or give the path of a .toml card)")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cost card {path}: not valid TOML ({exc})") from None
    where = f"cost card {path.name}"
    if data.get("kind") != kind:
        raise ConfigError(f"{where} has kind {data.get('kind')!r}; cost.{kind} needs a card of "
                          f"kind {kind!r}")
    sources = data.get("sources", {})
    if not isinstance(sources, dict) or not sources:
        raise ConfigError(f"{where} has no [sources] table")
    constants: dict[str, Constant] = {}
    laws: dict[str, str] = {}
    for section, table in data.items():
        if section in ("name", "kind", "summary", "sources", "technology"):
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {section} must be a table")
        for key, entry in table.items():
            dotted = f"{section}.{key}"
            if isinstance(entry, str):
                if key != "law":
                    raise ConfigError(f"{where}: {dotted} is a string; only a 'law' may be "
                                      f"one, a number is {{ value, unit, node_nm, source }}")
                laws[dotted] = entry
                continue
            constants[dotted] = _constant(entry, dotted, where, sources)
    return CostCard(str(data.get("name", path.stem)), kind, str(data.get("summary", "")),
                    constants, laws, sources, path)


def _constant(entry: Any, key: str, where: str, sources: dict) -> Constant:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: {key} must be a table {{ value, unit, node_nm, source }}")
    for field in ("value", "unit", "node_nm", "source"):
        if field not in entry:
            raise ConfigError(f"{where}: {key} has no {field}")
    unit = entry["unit"]
    if unit not in UNITS:
        raise ConfigError(f"{where}: {key} has unit {unit!r}; use one of {', '.join(UNITS)}")
    value, node = entry["value"], entry["node_nm"]
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0 \
            or value == float("inf"):
        raise ConfigError(f"{where}: {key} must be a finite number ≥ 0, got {value!r}")
    if not isinstance(node, int | float) or node <= 0:
        raise ConfigError(f"{where}: {key} needs node_nm > 0, got {node!r}")
    if entry["source"] not in sources:
        raise ConfigError(f"{where}: {key} cites {entry['source']!r}, which is not in [sources]")
    factor, quantity = UNITS[unit]
    return Constant(float(value) * factor, quantity, float(node), str(entry["source"]), unit)
