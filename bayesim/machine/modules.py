"""Conversion: the user's model with each mapped layer replaced by an analog module.

aihwkit's ``convert_to_analog`` convention: the converted model is a copy of the user's module
that keeps its own ``forward`` — residual adds, BatchNorm, pooling, attention, any torch op run
digitally and unchanged — and only the layers the chip maps (adapters.py) become
:class:`AnalogModule`, whose ``forward`` is a noisy read of that layer's programmed tiles (DAC,
tiles, ADC, digital bias sample). Which sample and read seed a read belongs to comes from the
machine's Monte-Carlo loop (read.py), never from the module's caller.
"""

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bayesim.machine.adapters import LayerAdapter

Reader = Callable[[int, torch.Tensor], torch.Tensor]
"""``reader(layer index, input activations) -> output activations``: one read of a layer."""


class AnalogModule(nn.Module):
    """One mapped layer on the chip: ``forward`` reads Bayesian layer ``index`` through
    ``reader`` and answers in the replaced module's calling convention (a bayesian-torch layer
    returns ``(out, kl)``)."""

    def __init__(self, adapter: LayerAdapter, index: int, reader: Reader) -> None:
        super().__init__()
        self.index = index
        self.__dict__["adapter"] = adapter  # not a submodule: the user's layer stays theirs
        self.__dict__["reader"] = reader

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return self.adapter.output(self.reader(self.index, x), args, kwargs)

    def extra_repr(self) -> str:
        return f"{self.adapter.kind} {self.adapter.path} on chip layer {self.index}"


def convert(model: nn.Module, adapters: list[LayerAdapter], reader: Reader) -> nn.Module:
    """A copy of ``model`` (eval mode) whose mapped layers are :class:`AnalogModule` s; the
    user's model is left as it was. Every reference to a mapped layer, wherever the model keeps
    it, becomes the same analog module."""
    memo: dict[int, Any] = {id(a.module): AnalogModule(a, i, reader)
                            for i, a in enumerate(adapters)}
    return copy.deepcopy(model, memo).eval()
