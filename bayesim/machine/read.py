"""The Monte-Carlo read loop: sample s of the model on the chip, for a batch of inputs.

The loop runs the user's own ``forward`` on the converted model (modules.py): every call of an
analog module is a fresh noisy read of its layer's tiles (bayesim.crossbar.tile) through DAC, ADC
and the rest of the periphery; activations, pooling, residual adds, BatchNorm and everything that
is not a mapped layer run digitally. Biases stay digital and are sampled per Monte-Carlo sample,
b_s = μ_b + σ_b·ξ_s (stream BIAS). Sample s of input i is a pure function of (chip seed,
Monte-Carlo seed, s, i), so batch sizes and sample chunks never change a result.

Which state a sample reads is the scheme's (schemes.py): one programmed state read again and again
(M0, M1, M4), one of R copies (M3), or a fresh programming per sample (M2, and M0
``per_sample``'s fresh weight draw), which all batches of that sample read. Where states are
read again (M0, M1, M3, M4) the first layer a forward reads has its DAC output, mean and variance
computed once per input batch and state (per copy under M3) and reused by every sample whose
input to it is bit-identical.
"""

import dataclasses
import hashlib
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from bayesim.crossbar.tile import TiledMatrix
from bayesim.crossbar.torch_tile import TorchTiledMatrix
from bayesim.errors import ConfigError, MappingError
from bayesim.machine.adapters import LayerAdapter
from bayesim.machine.chip import AnalogLayer, Chip, State
from bayesim.machine.config import read_backend
from bayesim.machine.lowering import Geometry, keep_rows, layer_rows, raise_rows
from bayesim.machine.modules import convert
from bayesim.rng import Stream, draw, stream_key, sub_seed


@dataclasses.dataclass
class _Pass:
    """One forward of the converted model: Monte-Carlo sample ``sample`` of the inputs from
    ``row0`` on, reading ``matrices``."""

    sample: int
    read_seed: int
    row0: int
    matrices: list[TiledMatrix | TorchTiledMatrix]
    memo: dict | None
    """Per input batch: the first read layer's input, rows and tile memo (None: no reuse)."""
    chain: list[dict] | None
    calls: dict[int, int] = dataclasses.field(default_factory=dict)
    """Reads so far of each layer in this pass (a forward may call a layer more than once);
    empty until the forward reads its first layer."""
    repeat_states: dict[int, State] = dataclasses.field(default_factory=dict)
    """The state a layer called again in this pass reads, looked up once per layer."""


class ReadLoop:
    """Monte-Carlo inference of ``model`` (any ``nn.Module``) on ``chip``, whose layers are
    ``adapters``' (in the same order)."""

    def __init__(self, model: nn.Module, adapters: list[LayerAdapter], chip: Chip) -> None:
        self.chip = chip
        self.hw = chip.hw
        self.counters = chip.counters
        self.device = read_backend(self.hw)
        """The torch backend's device, or None for the numba backend."""
        self.converted = convert(model, adapters, self.read)
        if self.device is not None:
            self.converted.to(self.device)
        self._pass: _Pass | None = None
        self._checked_reads = False
        self._cache: dict[tuple[int, int], list[TiledMatrix | TorchTiledMatrix]] = {}
        self._chain: dict[str, Any] = {}
        """AR(1) read noise: the inputs, seed and next sample of the chain, and its states."""

    @property
    def fresh_per_sample(self) -> bool:
        """Every sample reads a state of its own (M2, M0 per_sample): loop samples outermost."""
        return self.chip.scheme.fresh_per_sample(self.hw)

    def on_backend(self, matrix: TiledMatrix) -> TiledMatrix | TorchTiledMatrix:
        """``matrix`` as the read backend reads it (its tiles on the torch device)."""
        return matrix if self.device is None else TorchTiledMatrix(matrix, self.device)

    def matrices(self, sample: int, read_seed: int) -> list[TiledMatrix | TorchTiledMatrix]:
        """The tiles every layer reads in Monte-Carlo sample ``sample``."""
        chip = self.chip
        if self.fresh_per_sample:
            return [self.on_backend(chip.matrix(layer, chip.sample_state(layer, sample,
                                                                         read_seed), read_seed))
                    for layer in chip.layers]
        state = chip.scheme.state_of(sample, read_seed, self.hw)
        key = (state, read_seed)
        if key not in self._cache:
            if len(self._cache) >= max(1, chip.scheme.n_states(self.hw)):
                self._cache.clear()
            self._cache[key] = [self.on_backend(chip.matrix(layer, layer.states[state],
                                                            read_seed))
                                for layer in chip.layers]
        return self._cache[key]

    def read(self, index: int, h: torch.Tensor) -> torch.Tensor:
        """One read of chip layer ``index`` for activations ``h`` in the current pass (what an
        analog module's ``forward`` does)."""
        run = self._pass
        if run is None:
            raise MappingError("an analog layer reads the chip only inside the machine's "
                               "Monte-Carlo loop; call BayesianMachine.sample_probs")
        layer = self.chip.layers[index]
        h = h.detach().float()
        first = not run.calls
        call = run.calls.get(index, 0)
        run.calls[index] = call + 1
        tensor = self.device is not None
        if call > 0:  # the same layer again in this sample: the same state, fresh reads
            x, geometry = layer_rows(layer.adapter, h, tensor)
            return self._read_layer(layer, self._repeat_matrix(layer, run, call), x, geometry,
                                    run.sample, run.read_seed, run.row0)
        tile_memo = None
        if first and run.memo is not None:
            entry = run.memo.get(index)
            if entry is not None and entry[0].shape == h.shape and torch.equal(entry[0], h):
                _, x, geometry, tile_memo = entry
            else:
                x, geometry = layer_rows(layer.adapter, h, tensor)
                tile_memo = {}
                run.memo.clear()
                run.memo[index] = (h.clone(), x, geometry, tile_memo)
        else:
            x, geometry = layer_rows(layer.adapter, h, tensor)
        return self._read_layer(layer, run.matrices[index], x, geometry, run.sample,
                                run.read_seed, run.row0, tile_memo,
                                None if run.chain is None else run.chain[index])

    def _repeat_matrix(self, layer: AnalogLayer, run: _Pass,
                       call: int) -> TiledMatrix | TorchTiledMatrix:
        """The tiles of ``layer`` for its read number ``call`` ≥ 1 in sample ``run.sample``: the
        state the sample reads, with read streams of their own (Stream.REPEAT_READ), white
        (an AR(1) chain follows the first read only)."""
        chip = self.chip
        state = run.repeat_states.get(layer.index)
        if state is None:
            state = run.repeat_states[layer.index] = (
                chip.sample_state(layer, run.sample, run.read_seed, count=False)
                if self.fresh_per_sample else
                layer.states[chip.scheme.state_of(run.sample, run.read_seed, self.hw)])
        return self.on_backend(chip.matrix(layer, state,
                                           sub_seed(run.read_seed, Stream.REPEAT_READ, call)))

    def _read_layer(self, layer: AnalogLayer, matrix: TiledMatrix | TorchTiledMatrix,
                    x: np.ndarray | torch.Tensor,
                    geometry: Geometry, sample: int, read_seed: int, row0: int,
                    memo: dict | None = None, correlation: dict | None = None) -> torch.Tensor:
        n_out, n_in = layer.shape
        bias = None
        if layer.bias_mu is not None:  # sampled in digital, added after the ADC
            assert layer.bias_sigma is not None
            xi = draw(stream_key(read_seed, Stream.BIAS, layer.index), n_out, sample=sample)
            bias = (layer.bias_mu + layer.bias_sigma * xi).astype(np.float32)
            self.counters["random_draws"] += n_out
        if isinstance(matrix, TorchTiledMatrix):
            y = matrix.mvm(x, sample, row0 * geometry.positions, memo,
                           None if bias is None else torch.from_numpy(bias).to(self.device))
        else:
            y = matrix.mvm(x, sample, row0 * geometry.positions, memo, correlation,
                           self.hw.read_correlation, bias)
        rows = x.shape[0]
        n = self.chip.n
        self.chip.rows_read[layer.index] += rows
        self.counters["adc_conversions"] += rows * n_out * len(matrix.in_sizes)
        self.counters["dac_conversions"] += rows * n_in * len(matrix.out_sizes)
        self.counters["mvms"] += rows * matrix.n_tiles
        self.counters["device_reads"] += rows * n_out * n_in * 2 * n
        per_read = n_out * (n_in * 2 * n if self.hw.read_path == "explicit"
                            else len(matrix.in_sizes))
        self.counters["random_draws"] += rows * per_read
        return raise_rows(y, geometry)

    def _forward(self, x: torch.Tensor, run: _Pass) -> torch.Tensor:
        """Logits of one sample for the batch ``x``: the user's forward on the converted
        model."""
        self._pass = run
        try:
            out = self.converted(x)
        finally:
            self._pass = None
        logits = out[0] if isinstance(out, tuple | list) and out else out
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 \
                or logits.shape[0] != x.shape[0]:
            raise MappingError(f"the model's forward must return logits [batch, classes] (or a "
                               f"tuple whose first element they are), got "
                               f"{type(out).__name__}"
                               f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else ''}")
        if not run.calls:
            raise MappingError("the model's forward read no mapped layer; nothing ran on the "
                               "chip")
        if not self._checked_reads:
            self._checked_reads = True
            unread = [layer.path for layer in self.chip.layers if layer.index not in run.calls]
            if unread:
                warnings.warn(f"the model's forward did not call the mapped layer(s) "
                              f"{', '.join(unread)}; they are programmed and reported but no "
                              f"sample reads them", stacklevel=4)
        return logits

    @torch.no_grad()
    def sample_probs(self, x: torch.Tensor, n_samples: int, seed: int, *,
                     sample_offset: int = 0) -> torch.Tensor:
        """``[n_samples, B, C]`` class probabilities of samples ``sample_offset …``."""
        if n_samples < 1:
            raise ConfigError(f"the number of Monte-Carlo samples must be ≥ 1, got {n_samples}")
        read_seed = read_seed_of(seed)
        chains = self._chains(x, seed, sample_offset) if self.hw.read_correlation > 0 else None
        samples = range(sample_offset, sample_offset + n_samples)
        if self.device is not None:
            x = x.to(self.device)
        size = self.hw.batch_size
        starts = range(0, x.shape[0], size)

        def chain(a: int) -> list[dict] | None:
            return None if chains is None else chains.setdefault(
                a, [{} for _ in self.chip.layers])

        if self.fresh_per_sample:  # one state per sample, read by every batch
            logits = []
            for s in samples:
                matrices = self.matrices(s, read_seed)
                logits.append(torch.cat([
                    self._forward(x[a:a + size].float(),
                                  _Pass(s, read_seed, a, matrices, None, chain(a)))
                    for a in starts]))
            probs = torch.softmax(torch.stack(logits), dim=-1)
        else:
            out = []
            memoise = self.chip.scheme.memoises_first_layer(self.hw)
            for a in starts:
                memo: dict | None = {} if memoise else None
                batch = x[a:a + size].float()
                logits = [self._forward(batch, _Pass(s, read_seed, a,
                                                     self.matrices(s, read_seed), memo,
                                                     chain(a)))
                          for s in samples]
                out.append(torch.softmax(torch.stack(logits), dim=-1))
            probs = torch.cat(out, dim=1)
        if chains is not None:
            self._chain["next"] = sample_offset + n_samples
        return probs.cpu()

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


@torch.no_grad()
def calibration_rows(model: nn.Module, adapters: list[LayerAdapter],
                     x: torch.Tensor) -> list[np.ndarray]:
    """Per mapped layer, up to ``lowering.CALIBRATION_ROWS`` of the rows its tiles would read for
    the calibration inputs ``x`` through the mean network (every layer at its posterior means,
    digitally; evenly spaced): what the chip's α choice measures the weight of the periphery's
    output noise on (Chip.periphery_referred). A layer the forward never reads gets no rows."""
    rows: list[list[np.ndarray]] = [[] for _ in adapters]

    def record(index: int, h: torch.Tensor) -> torch.Tensor:
        r, _ = layer_rows(adapters[index], h.detach().float())
        rows[index].append(keep_rows(r))
        return adapters[index].mean_forward(h)

    convert(model, adapters, record)(x.float())
    return [keep_rows(np.concatenate(r)) if r else np.zeros((0, 0), dtype=np.float32)
            for r in rows]
