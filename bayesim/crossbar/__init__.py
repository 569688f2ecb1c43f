"""The crossbar engine (docs/crossbar.md): what one tile does with the conductances it holds.

- ``periphery``: DAC and ADC with aihwkit's step, noise and bound management, output noise, IR
  drop, and presets by name;
- ``tile``: a tile of at most ``max_in`` × ``max_out`` devices, its reads (output-referred fast
  path or one draw per device) and the digital partial sums of a matrix split over tiles;
- ``mapping``: weights N(μ, σ²) to conductance pairs, the common mode as the σ knob and the
  choice of the scale α;
- ``kernels`` (numba) and ``torch_kernels`` / ``torch_tile`` (any torch device): the read MVMs.

A new periphery preset: an entry of ``periphery._PRESETS`` (aihwkit-style parameters with their
source); ``hardware.periphery = "NAME"`` then selects it.
"""
