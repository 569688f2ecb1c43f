"""Device physics (docs/devices.md): cards of cited measurements → models the chip draws from.

- ``presets``: the cards of device_models/ (TOML, every number with its unit and source), read
  and validated into a DeviceModel (``load_preset``, ``list_presets``, ``read_card``);
- ``laws``: the σ(G) and drift-exponent law families a card names (constant, proportional,
  sqrt, inverse, polynomial, power, log-linear, a measured table), tabulated laws, censored
  and folded moments;
- ``model``: DeviceModel — programming, drift, accumulated 1/f noise, reads and faults inside the
  calibrated conductance and time range, with counter-based draws;
- ``kernels``: the numba write, drift and read kernels;
- ``measurements``, ``fit``, ``fitted_card``: a card from a user's measurements (`bayesim devices
  fit`, docs/devices_fit.md) — the long-format data, the law fits with bootstrap intervals, the
  card they make.

A new device: a card in device_models/ (copy one, cite every number); ``bayesim devices show``
validates it. A new law family: a frozen dataclass with ``__call__(g, g_max)`` in ``laws``, its
parameters and units in ``presets.FAMILIES`` and its case in ``presets`` where cards are read.
"""

from bayesim.devices.model import DeviceModel
from bayesim.devices.presets import card_path, list_presets, load_preset, read_card

__all__ = ["DeviceModel", "card_path", "list_presets", "load_preset", "read_card"]
