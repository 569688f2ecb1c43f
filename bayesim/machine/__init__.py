"""The Bayesian machine, a package by phase:

- ``config``: HardwareConfig and what it builds before mapping (device card, periphery, α);
- ``schemes``: the mappings M0–M4 — sampling clock, noise laws, devices and states;
- ``adapters``: the layers the machine maps (bayesim's, bayesian-torch's, plain ones with σ);
- ``chip``: mapping and programming of a chip instance;
- ``modules``: conversion — the model with each mapped layer replaced by an analog module;
- ``lowering``: the rows a layer's tiles read (im2col for convolutions);
- ``read``: the Monte-Carlo read loop over the user's own forward;
- ``realised``: what the chip realises, measured from its own states and draws;
- ``report``: the report's ``hardware`` section;
- ``decomposition``: the share of each noise source, on the same chip;
- ``machine``: BayesianMachine, the Predictor.

A new mapping: a subclass of ``schemes.Scheme`` (its sampling clock, the noise law it targets,
devices per weight, programmed states, how its realised posterior is known) registered in
``schemes.SCHEMES`` and named in ``HardwareConfig.mapping``; docs/machine.md, "Mappings".
"""

from bayesim.machine.config import HardwareConfig, device_for, layer_alphas, periphery_config
from bayesim.machine.decomposition import SOURCES, variance_decomposition
from bayesim.machine.machine import BayesianMachine, ChipWarning
from bayesim.machine.report import predictive_statistics, sampling_report

__all__ = ["SOURCES", "BayesianMachine", "ChipWarning", "HardwareConfig", "device_for",
           "layer_alphas", "periphery_config", "predictive_statistics", "sampling_report",
           "variance_decomposition"]
