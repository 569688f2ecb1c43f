"""The shared-Gaussian model as a :class:`~bayesim.evaluate.Predictor` (``kind = "shared"``),
optionally with its codebook quantized by the quantizers of bayesim.quant.

Sample s draws one network from a generator seeded by ``derive_seed(seed, "mc", s)`` (as the
software predictor does) and applies it to every input. Quantization (``QuantConfig``): VPQ/JQ map
the K + O source distributions — the shared entries' (c_k[0], L_k[0,0]) and the outliers' (m, s) —
through the uniform quantizer (μ) and the logarithmic quantizer (σ) as one tensor; SPQ/JQ quantize
every layer's sampled weights on the static range of bayesim.quant.strategies.
"""

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch

from bayesim.evaluate import monte_carlo
from bayesim.quant.strategies import QuantConfig, Quantizer
from bayesim.sharing.model import SharedNet
from bayesim.sharing.storage import storage_report


def quantize_shared(net: SharedNet, config: QuantConfig) -> SharedNet:
    """A copy of ``net`` whose codebook is quantized by ``config`` (PTQ; "fp" returns a plain
    copy)."""
    quantized = copy.deepcopy(net)
    quantized.quantizer = None if config.strategy == "fp" else Quantizer(config)
    quantized.generator = net.generator
    return quantized


class SharedPredictor:
    """Monte-Carlo sampling of a :class:`SharedNet` (module docstring)."""

    kind = "shared"

    def __init__(self, net: SharedNet, batch_size: int = 500,
                 config: dict[str, Any] | None = None) -> None:
        self.net = net.eval()
        self.batch_size = batch_size
        self.config = config or {}

    @property
    def quant(self) -> QuantConfig | None:
        return None if self.net.quantizer is None else self.net.quantizer.config

    @torch.no_grad()
    def sample_probs(self, x: torch.Tensor, n_samples: int, seed: int, *,
                     sample_offset: int = 0) -> torch.Tensor:
        return monte_carlo(x, n_samples, seed, sample_offset, self.batch_size, self._draw)

    @contextlib.contextmanager
    def _draw(self, sample_seed: int) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
        """One network drawn from a generator seeded by ``sample_seed``; the net's own generator
        is restored afterwards."""
        previous = self.net.generator
        self.net.generator = torch.Generator()
        self.net.generator.manual_seed(sample_seed)
        try:
            weights = self.net.layer_weights()
            yield lambda batch: self.net.run(batch, weights)
        finally:
            self.net.generator = previous

    def describe(self) -> dict[str, Any]:
        counts = self.net.codebook().counts()
        label = f"shared K={counts['gaussians']}"
        if not self.net.gradient:
            label += " detached"
        quant = {}
        if self.quant is not None:
            label += f" {self.quant.label}"
            quant = {"quant": self.quant.model_dump(mode="json")}
        return {"kind": self.kind, "label": label, "gradient": self.net.gradient,
                "codebook": counts, **quant, **self.config}

    def memory(self) -> dict[str, Any]:
        quant = self.quant
        bits = None
        if quant is not None and quant.strategy in ("VPQ", "JQ"):
            mu_bits, sigma_bits, _ = quant.resolved_bits
            bits = mu_bits + sigma_bits
        return storage_report(self.net, bits)
