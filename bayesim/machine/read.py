"""The Monte-Carlo read loop: sample s of the model on the chip, for a batch of inputs.

Every MVM is a fresh noisy read of the tiles (bayesim.crossbar.tile) through DAC, ADC and the
rest of the periphery; activations, pooling and everything that is not a Bayesian layer run
digitally. Biases stay digital and are sampled per Monte-Carlo sample, b_s = μ_b + σ_b·ξ_s
(stream BIAS). Sample s of input i is a pure function of (chip seed, Monte-Carlo seed, s, i), so
batch sizes and sample chunks never change a result.

Which state a sample reads is the scheme's (schemes.py): one programmed state read again and again
(M0, M1, M4: the first layer's DAC output, mean and variance are then computed once per input
batch and reused by every sample), one of R copies (M3), or a fresh programming per sample (M2,
and M0 ``per_sample``'s fresh weight draw), which all batches of that sample read.
"""

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from bayesim.bnn.layers import BayesianLayer
from bayesim.crossbar.tile import TiledMatrix
from bayesim.errors import ConfigError
from bayesim.machine.chip import AnalogLayer, Chip
from bayesim.machine.lowering import Geometry, layer_rows, raise_rows
from bayesim.rng import Stream, draw, stream_key, sub_seed


class ReadLoop:
    """Monte-Carlo inference of ``model`` (an ``nn.Sequential``) on ``chip``."""

    def __init__(self, model: nn.Sequential, chip: Chip) -> None:
        self.model = model
        self.chip = chip
        self.hw = chip.hw
        self.counters = chip.counters
        self._first = next(i for i, m in enumerate(model) if isinstance(m, BayesianLayer))
        self._cache: dict[tuple[int, int], list[TiledMatrix]] = {}
        self._chain: dict[str, Any] = {}
        """AR(1) read noise: the inputs, seed and next sample of the chain, and its states."""

    @property
    def fresh_per_sample(self) -> bool:
        """Every sample reads a state of its own (M2, M0 per_sample): loop samples outermost."""
        return self.chip.scheme.fresh_per_sample(self.hw)

    def matrices(self, sample: int, read_seed: int) -> list[TiledMatrix]:
        """The tiles every layer reads in Monte-Carlo sample ``sample``."""
        chip = self.chip
        if self.fresh_per_sample:
            return [chip.matrix(layer, chip.sample_state(layer, sample, read_seed), read_seed)
                    for layer in chip.layers]
        state = chip.scheme.state_of(sample, read_seed, self.hw)
        key = (state, read_seed)
        if key not in self._cache:
            if len(self._cache) >= max(1, chip.scheme.n_states(self.hw)):
                self._cache.clear()
            self._cache[key] = [chip.matrix(layer, layer.states[state], read_seed)
                                for layer in chip.layers]
        return self._cache[key]

    def _read_layer(self, layer: AnalogLayer, matrix: TiledMatrix, x: np.ndarray,
                    geometry: Geometry | None, sample: int, read_seed: int, row0: int,
                    memo: dict | None = None, correlation: dict | None = None) -> torch.Tensor:
        n_out, n_in = layer.shape
        bias = None
        if layer.bias_mu is not None:  # sampled in digital, added after the ADC
            assert layer.bias_sigma is not None
            xi = draw(stream_key(read_seed, Stream.BIAS, layer.index), n_out, sample=sample)
            bias = (layer.bias_mu + layer.bias_sigma * xi).astype(np.float32)
            self.counters["random_draws"] += n_out
        y = matrix.mvm(x, sample, row0 if geometry is None else row0 * geometry[1], memo,
                       correlation, self.hw.read_correlation, bias)
        rows = x.shape[0]
        n = self.chip.n
        self.counters["mvms"] += rows * matrix.n_tiles
        self.counters["device_reads"] += rows * n_out * n_in * 2 * n
        per_read = n_out * (n_in * 2 * n if self.hw.read_path == "explicit"
                            else len(matrix.in_sizes))
        self.counters["random_draws"] += rows * per_read
        return raise_rows(y, geometry)

    def _forward(self, first: tuple[np.ndarray, Geometry | None], memo: dict | None,
                 sample: int, read_seed: int, row0: int, matrices: list[TiledMatrix],
                 chain: list[dict] | None = None) -> torch.Tensor:
        """Logits of one sample; ``first`` is the first Bayesian layer's input rows (the same for
        every sample, so computed once per batch), ``memo`` what its tiles may reuse between
        samples (Tile.mvm), ``chain`` the AR(1) read-noise states of every layer."""
        h: torch.Tensor | None = None
        k = 0
        for module in list(self.model)[self._first:]:
            if isinstance(module, BayesianLayer):
                layer = self.chip.layers[k]
                x, geometry = first if k == 0 else layer_rows(layer.module, h)
                h = self._read_layer(layer, matrices[k], x, geometry, sample, read_seed, row0,
                                     memo if k == 0 else None,
                                     None if chain is None else chain[k])
                k += 1
            else:
                h = module(h)
        assert h is not None
        return h

    @torch.no_grad()
    def sample_probs(self, x: torch.Tensor, n_samples: int, seed: int, *,
                     sample_offset: int = 0) -> torch.Tensor:
        """``[n_samples, B, C]`` class probabilities of samples ``sample_offset …``."""
        if n_samples < 1:
            raise ConfigError(f"the number of Monte-Carlo samples must be ≥ 1, got {n_samples}")
        read_seed = read_seed_of(seed)
        chains = self._chains(x, seed, sample_offset) if self.hw.read_correlation > 0 else None
        samples = range(sample_offset, sample_offset + n_samples)
        starts = range(0, x.shape[0], self.hw.batch_size)

        def first_input(a: int) -> tuple:
            h = x[a:a + self.hw.batch_size].float()
            for module in list(self.model)[:self._first]:
                h = module(h)
            return layer_rows(self.chip.layers[0].module, h)

        def chain(a: int) -> list[dict] | None:
            return None if chains is None else chains.setdefault(
                a, [{} for _ in self.chip.layers])

        if self.fresh_per_sample:  # one state per sample, read by every batch
            logits = []
            for s in samples:
                matrices = self.matrices(s, read_seed)
                logits.append(torch.cat([self._forward(first_input(a), None, s, read_seed, a,
                                                       matrices, chain(a)) for a in starts]))
            probs = torch.softmax(torch.stack(logits), dim=-1)
        else:
            out = []
            memoise = self.chip.scheme.memoises_first_layer(self.hw)
            for a in starts:
                memo = {} if memoise else None
                first = first_input(a)
                logits = [self._forward(first, memo, s, read_seed, a,
                                        self.matrices(s, read_seed), chain(a)) for s in samples]
                out.append(torch.softmax(torch.stack(logits), dim=-1))
            probs = torch.cat(out, dim=1)
        if chains is not None:
            self._chain["next"] = sample_offset + n_samples
        return probs

    def _chains(self, x: torch.Tensor, seed: int, sample_offset: int) -> dict:
        """The AR(1) states of the reads of ``x`` just before sample ``sample_offset``: those
        left by the previous call when it ended there on the same inputs and seed; otherwise the
        chain is restarted at sample 0 and run up to ``sample_offset`` (so a sample stays a pure
        function of (seed, s), at the cost of the skipped samples)."""
        digest = hashlib.blake2b(x.detach().float().contiguous().numpy().tobytes(),
                                 digest_size=16).hexdigest()
        same = self._chain.get("digest") == digest and self._chain.get("seed") == seed
        if same and self._chain.get("next") == sample_offset:
            return self._chain["states"]
        self._chain = {"digest": digest, "seed": seed, "next": 0, "states": {}}
        if sample_offset > 0:
            self.sample_probs(x, sample_offset, seed, sample_offset=0)
        return self._chain["states"]


def read_seed_of(seed: int) -> int:
    """The seed of the per-read streams of Monte-Carlo seed ``seed``."""
    return sub_seed(seed, Stream.MC_READ)
