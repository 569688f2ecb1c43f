"""Pyro param stores (``pyro.get_param_store().save(path)``) of AutoNormal-family guides.

A param store file is a torch pickle of ``{"params": {name: unconstrained tensor},
"constraints": {name: constraint}}``. An AutoNormal guide (under any guide name, e.g. a subclass)
keeps ``<Guide>.locs.<site>`` and ``<Guide>.scales.<site>`` per sample site ``<module path>.
<param>``; its scale is the stored value pushed through the transform of its *stored* constraint
(``transform_to(constraint)``: softplus for Pyro's ``softplus_positive`` — AutoNormal's default —,
exp + lower bound for ``positive``/``greater_than``, a scaled sigmoid for ``interval``, identity
for ``real``), never a guessed one. A plain ``<module path>.<param>`` key (a deterministic
``PyroModule`` parameter, e.g. a bias that is not a sample site) is a point mass.

The file is read with ``torch.load(weights_only=True)`` and an allowlist of exactly the classes
such files name: tensors, parameters, ``OrderedDict`` and the constraint classes below, each
rebuilt as a stand-in of bayesim's own (so pyro need not be installed and no code of the file
runs). A file naming any other class is refused before that class is looked up.
"""

import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from bayesim.errors import CheckpointError
from bayesim.importers.source import (
    POINT_MASS_RHO,
    SourceLayer,
    SourcePosterior,
    file_sha256,
)


class StoredConstraint:
    """A stand-in for a constraint object of the store: its pickled attributes, and the
    transform from the unconstrained value it implies."""

    label = ""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        bounds = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return self.label + (f"{bounds}" if bounds else "")


class Real(StoredConstraint):
    label = "real (identity)"

    def __call__(self, u):
        return u


class GreaterThan(StoredConstraint):
    label = "greater_than (exp + lower bound)"

    def __call__(self, u):
        return torch.exp(u) + float(getattr(self, "lower_bound", 0.0))


class SoftplusPositive(StoredConstraint):
    label = "softplus_positive (softplus)"

    def __call__(self, u):
        return F.softplus(u)


class Interval(StoredConstraint):
    label = "interval (lower + width · sigmoid)"

    def __call__(self, u):
        lower, upper = float(self.lower_bound), float(self.upper_bound)
        return lower + (upper - lower) * torch.sigmoid(u)


class Independent(StoredConstraint):
    label = "independent"

    def __call__(self, u):
        return self.base_constraint(u)

    def describe(self) -> str:
        return f"independent({self.base_constraint.describe()})"


_C = "torch.distributions.constraints."
ALLOWED_CONSTRAINTS: list[tuple[type, str]] = [
    (Real, _C + "_Real"),
    (GreaterThan, _C + "_GreaterThan"),
    (GreaterThan, _C + "_GreaterThanEq"),
    (Interval, _C + "_Interval"),
    (Interval, _C + "_HalfOpenInterval"),
    (Independent, _C + "_IndependentConstraint"),
    (SoftplusPositive, "pyro.distributions.constraints._SoftplusPositive"),
]
"""Constraint classes a param store may name, and their stand-ins. Tensors, parameters and
``collections.OrderedDict`` are on torch's own weights-only list."""


def read_param_store(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, StoredConstraint]]:
    """The params and constraints of a param store file (module docstring)."""
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        with torch.serialization.safe_globals(ALLOWED_CONSTRAINTS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise CheckpointError(f"{path} names the class {found.group(1)}, which is outside "
                                  f"the allowlist of Pyro param-store classes; it was not "
                                  f"loaded and nothing in it was executed") from None
        raise CheckpointError(f"{path} is not a readable Pyro param store "
                              f"({str(exc).splitlines()[-1]})") from None
    except Exception as exc:  # a truncated or foreign file: zip, pickle or storage errors
        raise CheckpointError(f"{path} is not a readable Pyro param store ({exc})") from None
    if not isinstance(state, dict) or set(state) != {"params", "constraints"}:
        raise CheckpointError(f"{path} is not a Pyro param store (expected the keys 'params' "
                              f"and 'constraints' of pyro.get_param_store().save)")
    params, constraints = state["params"], state["constraints"]
    for name, value in params.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: param {name} is not a tensor")
        if not isinstance(constraints.get(name), StoredConstraint):
            raise CheckpointError(f"{path}: param {name} has no stored constraint")
    return dict(params), dict(constraints)


def _constrained(constraint: StoredConstraint, value: torch.Tensor, key: str,
                 path: Path) -> torch.Tensor:
    """``value`` through the transform of its stored ``constraint``; a constraint whose stored
    attributes do not make a transform (an interval without bounds, …) is a CheckpointError."""
    try:
        with torch.no_grad():
            out = constraint(value.detach().float())
    except Exception as exc:  # malformed attributes of an allowlisted class
        raise CheckpointError(f"{path}: the stored constraint of {key} "
                              f"({type(constraint).__name__}) is malformed ({exc})") from None
    if not isinstance(out, torch.Tensor) or out.shape != value.shape:
        raise CheckpointError(f"{path}: the stored constraint of {key} does not give a tensor "
                              f"of its shape")
    return out


def _split_site(site: str) -> tuple[str, str]:
    path, _, param = site.rpartition(".")
    if param not in ("weight", "bias") or not path:
        raise CheckpointError(f"sample site {site!r} is not '<module path>.weight' or "
                              f"'<module path>.bias'; name the sites after the modules "
                              f"(PyroModule with PyroSample does)")
    return path, param


def read_pyro(path: str | Path, guide: str | None = None) -> SourcePosterior:
    """The posterior of an AutoNormal-family guide in the param store ``path``; ``guide``
    picks one when the store holds several."""
    path = Path(path)
    params, constraints = read_param_store(path)
    pattern = re.compile(r"^(?P<guide>.+?)\.(?P<role>locs|scales)\.(?P<site>.+)$")
    guides: dict[str, dict[str, dict[str, str]]] = {}
    plain: list[str] = []
    for name in params:
        m = pattern.match(name)
        if m:
            guides.setdefault(m["guide"], {}).setdefault(m["site"], {})[m["role"]] = name
        else:
            plain.append(name)
    if not guides:
        raise CheckpointError(f"{path}: no '<Guide>.locs.<site>' / '<Guide>.scales.<site>' "
                              f"params; bayesim imports guides of the AutoNormal family")
    if guide is None and len(guides) > 1:
        raise CheckpointError(f"{path} holds several guides ({', '.join(sorted(guides))}); "
                              f"choose one with --guide")
    name = guide if guide is not None else next(iter(guides))
    if name not in guides:
        raise CheckpointError(f"{path}: no guide {name!r} (it holds "
                              f"{', '.join(sorted(guides))})")
    modules: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
    keys: dict[str, list[str]] = {}
    parameterisation: dict[str, str] = {}
    for site, roles in guides[name].items():
        missing = {"locs", "scales"} - set(roles)
        if missing:
            raise CheckpointError(f"{path}: site {site} of guide {name} has no "
                                  f"{name}.{missing.pop()}.{site}")
        module, param = _split_site(site)
        loc_c, scale_c = constraints[roles["locs"]], constraints[roles["scales"]]
        mu = _constrained(loc_c, params[roles["locs"]], roles["locs"], path)
        sigma = _constrained(scale_c, params[roles["scales"]], roles["scales"], path)
        modules.setdefault(module, {})[param] = (mu, sigma)
        keys.setdefault(module, []).append(roles["scales"])
        parameterisation[site] = f"loc {loc_c.describe()}, scale {scale_c.describe()}"
    point_masses = []
    for key in plain:
        module, param = _split_site(key)
        if module not in modules or param in modules[module]:
            raise CheckpointError(f"{path}: param {key} belongs to no sample site of guide "
                                  f"{name}; bayesim imports the guide's sites and point-mass "
                                  f"parameters of the same modules")
        value = _constrained(constraints[key], params[key], key, path)
        point = float(F.softplus(torch.tensor(POINT_MASS_RHO)))
        modules[module][param] = (value, torch.full_like(value, point))
        point_masses.append(key)
    layers = []
    for module, entry in modules.items():
        if "weight" not in entry:
            raise CheckpointError(f"{path}: module {module} has a bias but no weight site")
        layers.append(SourceLayer(module, entry["weight"], entry.get("bias"),
                                  f"{path}: {', '.join(keys[module])}"))
    provenance = {"file": str(path), "sha256": file_sha256(path), "guide": name,
                  "parameterisation": parameterisation, "point_masses": point_masses,
                  "prior": "not in a param store; the checkpoint's model.prior_std applies"}
    return SourcePosterior("pyro", layers, {}, provenance)
