"""Energy, latency and size per posterior sample (docs/cost.md): cost cards (cards.py) and the
model that prices a predictor's counters with them (model.py)."""

from bayesim.cost.cards import CostCard, load_cost_card, shipped_cards
from bayesim.cost.model import (
    CostConfig,
    check_cards,
    converter_energy,
    digital_cost,
    machine_cost,
    shared_digital_cost,
)

__all__ = ["CostCard", "CostConfig", "check_cards", "converter_energy", "digital_cost",
           "load_cost_card", "machine_cost", "shared_digital_cost",
           "shipped_cards"]
