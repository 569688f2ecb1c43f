"""Layer adapters: how the machine reads the posterior of a layer it did not define.

An adapter wraps one module of the user's model and tells the chip what to program — the weight
and bias posteriors N(μ, σ²) as used — and the read loop how to lower its input to the rows its
tiles read (linear, or a 2D convolution with its kernel, stride, padding and dilation) and how the
module is called (what its ``forward`` returns). Three families:

- :class:`BayesimAdapter`: bayesim's ``BayesLinear``/``BayesConv2d`` (σ = softplus ρ, after any
  quantizer the layer carries);
- :class:`BayesianTorchAdapter`: bayesian-torch's ``LinearReparameterization``,
  ``Conv2dReparameterization``, ``LinearFlipout`` and ``Conv2dFlipout`` (parameters ``mu_weight``/
  ``rho_weight`` or ``mu_kernel``/``rho_kernel``, ``mu_bias``/``rho_bias``; σ = log1p(exp ρ), the
  library's own transform; ``forward(x, return_kl=True)`` returns ``(out, kl)``). Recognised by
  class name and attributes, so bayesian-torch is not needed at run time;
- :class:`PlainAdapter`: a plain ``nn.Linear``/``nn.Conv2d`` given a σ tensor per parameter (a
  diagonal Laplace or SWAG posterior, say).

:func:`find_layers` walks a model, adapts what it can and refuses, naming the module's path and
type, what it cannot map. Flipout and reparameterisation are two gradient estimators of the same
mean-field posterior; the chip samples that posterior, so both map alike.
"""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesim.bnn.layers import BayesConv2d, BayesianLayer, sampling
from bayesim.errors import MappingError


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """A 2D convolution's lowering: kernel (kh, kw), stride, zero padding and dilation, each
    (height, width)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)

    @property
    def square(self) -> bool:
        """One k, one stride, one padding, no dilation: bayesim's im2col kernel applies."""
        return (self.kernel[0] == self.kernel[1] and self.stride[0] == self.stride[1]
                and self.padding[0] == self.padding[1] and self.dilation == (1, 1))


def _pair(value: Any, what: str, path: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(v, int)
                                                                   for v in value):
        return (int(value[0]), int(value[1]))
    raise MappingError(f"{path}: the machine lowers 2D convolutions with integer {what}, "
                       f"got {value!r}; give explicit padding (not 'same'/'valid')")


def conv_geometry(module: nn.Module, path: str) -> ConvGeometry:
    """The lowering of a 2D convolution module (bayesim's, bayesian-torch's or ``nn.Conv2d``):
    groups must be 1 and padding zeros."""
    if getattr(module, "groups", 1) != 1:
        raise MappingError(f"{path} ({type(module).__name__}) has groups = {module.groups}; "
                           f"the machine maps dense convolutions (groups = 1) only")
    if getattr(module, "padding_mode", "zeros") != "zeros":
        raise MappingError(f"{path} ({type(module).__name__}) pads with "
                           f"{module.padding_mode!r}; the machine lowers zero padding only")
    return ConvGeometry(_pair(module.kernel_size, "kernel size", path),
                        _pair(module.stride, "stride", path),
                        _pair(module.padding, "padding", path),
                        _pair(getattr(module, "dilation", 1), "dilation", path))


class LayerAdapter:
    """One mappable module of the user's model (module docstring)."""

    family = ""

    def __init__(self, path: str, module: nn.Module) -> None:
        self.path = path or "(the model)"
        self.module = module
        self.conv: ConvGeometry | None = None
        self.transform: Any = None
        """A bayesim quantizer whose sample quantizer a re-programmed weight snaps to (M2)."""

    @property
    def kind(self) -> str:
        return type(self.module).__name__

    def weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, σ) of the weights as used, shape ``[out, in]`` or ``[out, C, kh, kw]``."""
        raise NotImplementedError

    def bias(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(μ, σ) of the biases, or None for a layer without bias."""
        raise NotImplementedError

    def mean_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer with its posterior means, digitally (the mean network of calibration)."""
        mu, _ = self.weight()
        b = self.bias()
        bias = None if b is None else b[0]
        if self.conv is None:
            return F.linear(x, mu, bias)
        return F.conv2d(x, mu, bias, self.conv.stride, self.conv.padding, self.conv.dilation)

    def output(self, y: torch.Tensor, args: tuple, kwargs: dict) -> Any:
        """What the module's ``forward`` returns for output ``y`` (its calling convention)."""
        return y


class BayesimAdapter(LayerAdapter):
    family = "bayesim"

    def __init__(self, path: str, module: BayesianLayer) -> None:
        super().__init__(path, module)
        self.layer = module
        self.transform = module.transform
        if isinstance(module, BayesConv2d):
            self.conv = ConvGeometry((module.kernel_size,) * 2, (module.stride,) * 2,
                                     (module.padding,) * 2)

    def weight(self):
        return self.layer.distribution("weight")

    def bias(self):
        return None if self.layer.bias_mu is None else self.layer.distribution("bias")

    def mean_forward(self, x):
        with sampling(self.layer, "mean"):  # the layer's own mean forward (quantized μ included)
            return self.layer(x)


BAYESIAN_TORCH_LAYERS = {"LinearReparameterization": "linear", "LinearFlipout": "linear",
                         "Conv2dReparameterization": "conv2d", "Conv2dFlipout": "conv2d"}
"""The bayesian-torch layer classes the machine maps (bayesian-torch 0.5.0)."""


def bayesian_torch_sigma(rho: torch.Tensor) -> torch.Tensor:
    """σ = log1p(exp ρ): bayesian-torch's own transform (its layers' ``forward``)."""
    return torch.log1p(torch.exp(rho))


class BayesianTorchAdapter(LayerAdapter):
    family = "bayesian-torch"

    def __init__(self, path: str, module: nn.Module) -> None:
        super().__init__(path, module)
        prefix = "weight" if BAYESIAN_TORCH_LAYERS[self.kind] == "linear" else "kernel"
        self._mu, self._rho = f"mu_{prefix}", f"rho_{prefix}"
        if BAYESIAN_TORCH_LAYERS[self.kind] == "conv2d":
            self.conv = conv_geometry(module, self.path)
        with torch.no_grad():
            self.kl = module.kl_loss().detach() if hasattr(module, "kl_loss") else None

    def weight(self):
        return getattr(self.module, self._mu), bayesian_torch_sigma(getattr(self.module,
                                                                            self._rho))

    def bias(self):
        mu = getattr(self.module, "mu_bias", None)
        if mu is None:
            return None
        return mu, bayesian_torch_sigma(self.module.rho_bias)

    def output(self, y, args, kwargs):
        """bayesian-torch's convention: ``(out, kl)`` unless ``return_kl=False`` or the layer was
        made by ``dnn_to_bnn`` (then ``out``); the KL is the layer's own, a constant of the
        posterior."""
        return_kl = kwargs.get("return_kl", args[0] if args else True)
        if getattr(self.module, "dnn_to_bnn_flag", False) or not return_kl:
            return y
        return y, (self.kl if self.kl is not None else torch.zeros(()))


class PlainAdapter(LayerAdapter):
    family = "plain"

    def __init__(self, path: str, module: nn.Linear | nn.Conv2d, weight_sigma: torch.Tensor,
                 bias_sigma: torch.Tensor | None) -> None:
        super().__init__(path, module)
        if isinstance(module, nn.Conv2d):
            self.conv = conv_geometry(module, self.path)
        self.weight_sigma = _checked_sigma(weight_sigma, module.weight, f"{path}.weight")
        self.bias_sigma = None
        if module.bias is not None:
            self.bias_sigma = (torch.zeros_like(module.bias) if bias_sigma is None else
                               _checked_sigma(bias_sigma, module.bias, f"{path}.bias"))
        elif bias_sigma is not None:
            raise MappingError(f"σ given for {path}.bias, but {path} has no bias")

    def weight(self):
        return self.module.weight, self.weight_sigma

    def bias(self):
        if self.module.bias is None:
            return None
        return self.module.bias, self.bias_sigma


def _checked_sigma(sigma: Any, like: torch.Tensor, key: str) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=like.dtype).detach()
    if tuple(sigma.shape) != tuple(like.shape):
        raise MappingError(f"σ of {key} has shape {tuple(sigma.shape)}, the parameter "
                           f"{tuple(like.shape)}")
    if not bool(torch.isfinite(sigma).all()) or bool((sigma < 0).any()):
        raise MappingError(f"σ of {key} must be finite and ≥ 0")
    return sigma


_BAYESIAN_HINTS = ("mu_", "rho_", "_mu", "_rho", "sigma", "logvar", "log_var", "posterior")


def _looks_bayesian(module: nn.Module) -> bool:
    """A module of its own variational parameters (a layer of another BNN library, a bayesim
    layer type the machine does not map): it must not silently run as a deterministic one."""
    own = [n.lower() for n, _ in module.named_parameters(recurse=False)]
    if not own:
        return False  # a container: its children are looked at one by one
    name = type(module).__name__
    if any(tag in name for tag in ("Reparameterization", "Flipout", "Bayes", "Variational")):
        return True
    return any(hint in n for n in own for hint in _BAYESIAN_HINTS)


def find_layers(model: nn.Module, sigmas: Mapping[str, Any] | None = None,
                digital: tuple[str, ...] | list[str] = ()) -> list[LayerAdapter]:
    """The adapters of every layer of ``model`` the machine maps, in module order.

    ``sigmas``: σ tensors of plain ``nn.Linear``/``nn.Conv2d`` parameters by state-dict name
    (``"fc.weight"``, optional ``"fc.bias"``; a bias without σ is a point mass). ``digital``:
    module paths of plain linear/convolution layers that stay digital and deterministic. A plain
    linear/convolution layer with neither is an error (it would otherwise run silently without a
    posterior), and so is any module that looks Bayesian but has no adapter."""
    sigmas = dict(sigmas or {})
    digital = tuple(digital)
    adapters: list[LayerAdapter] = []
    seen: set[int] = set()
    used: set[str] = set()
    for path, module in model.named_modules():
        if id(module) in seen:
            continue
        label = path or "(the model)"
        if isinstance(module, BayesianLayer):
            if type(module).__name__ not in ("BayesLinear", "BayesConv2d"):
                raise MappingError(f"{label} ({type(module).__name__}): the machine maps "
                                   f"BayesLinear and BayesConv2d layers, not this subclass")
            adapters.append(BayesimAdapter(path, module))
        elif type(module).__name__ in BAYESIAN_TORCH_LAYERS:
            adapters.append(BayesianTorchAdapter(path, module))
        elif isinstance(module, nn.Linear | nn.Conv2d):
            key = f"{path}.weight" if path else "weight"
            if key in sigmas:
                bias_key = f"{path}.bias" if path else "bias"
                adapters.append(PlainAdapter(path, module, sigmas[key], sigmas.get(bias_key)))
                used.update({key, bias_key})
            elif path in digital:
                used.add(path)
                continue
            else:
                raise MappingError(f"{label} ({type(module).__name__}) has no posterior: give "
                                   f"σ of {key} in sigmas=, or name {path!r} in digital= to run "
                                   f"it digitally")
        elif isinstance(module, nn.modules.conv._ConvNd):
            if path in digital:
                used.add(path)
                continue
            raise MappingError(f"{label} ({type(module).__name__}): the machine maps 2D "
                               f"convolutions only; name {path!r} in digital= to run it "
                               f"digitally")
        elif _looks_bayesian(module):
            raise MappingError(f"{label} ({type(module).__name__}): the machine cannot map this "
                               f"layer type (it maps bayesim's, bayesian-torch's Linear/Conv2d "
                               f"Reparameterization and Flipout layers, and nn.Linear/nn.Conv2d "
                               f"with σ); replace it or run it digitally")
        else:
            continue
        seen.add(id(module))
    unknown = sorted(set(sigmas) - used)
    if unknown:
        raise MappingError(f"σ given for {unknown[0]}, which is not a parameter of a plain "
                           f"nn.Linear/nn.Conv2d of the model")
    missing = sorted(set(digital) - used)
    if missing:
        raise MappingError(f"digital= names {missing[0]!r}, not a plain nn.Linear/nn.Conv2d "
                           f"of the model")
    if not adapters:
        raise MappingError("the model has no Bayesian layers to compile")
    return adapters


def digital_parameters(model: nn.Module, adapters: list[LayerAdapter]) -> dict[str, int]:
    """Parameters (and buffers) that run digitally: count per module path of every module
    outside the mapped layers that holds its own tensors (BatchNorm, digital layers, …)."""
    mapped = {id(a.module) for a in adapters}
    out: dict[str, int] = {}
    for path, module in model.named_modules():
        if id(module) in mapped:
            continue
        own = [t for _, t in module.named_parameters(recurse=False)]
        own += [t for _, t in module.named_buffers(recurse=False) if t is not None
                and t.is_floating_point()]
        if own:
            out[f"{path or '(the model)'} ({type(module).__name__})"] = int(
                sum(math.prod(t.shape) for t in own))
    return out
