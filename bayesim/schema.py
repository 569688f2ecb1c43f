"""The base class of every config model (strict, so that typos and wrong types are errors), and
validation that turns pydantic's errors into one-line ConfigErrors. It sits at the bottom of the
import order, so every concern's config can use it."""

from collections.abc import Sequence
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict

from bayesim.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown keys and coerces nothing silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=False)


UNIT_HINTS = {
    "s": "a plain number of seconds, e.g. 3600 for 1 h, 86400 for 1 day, 3.15e7 for 1 year",
    "µS": "a plain number in µS per weight unit, e.g. 10",
    "cycles": "a plain number of write cycles, e.g. 1e7",
}
"""What a unit-bearing key (``Field(json_schema_extra={"unit": …})``) takes, said in the error
when its value does not parse: units are implied, never written in the value."""


def _field(model: type[BaseModel], loc: Sequence[str | int]) -> Any:
    """The pydantic field that ``loc`` names (None when it names none)."""
    current: Any = model
    field = None
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None:  # past the last model: a union member's name, a list index
            break
        field = fields.get(part)
        if field is None:
            return None
        current = field.annotation
    return field


def _unit_hint(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    field = _field(model, [p for p in loc if not isinstance(p, int)])
    extra = getattr(field, "json_schema_extra", None) or {}
    unit = extra.get("unit") if isinstance(extra, dict) else None
    return f"; give {UNIT_HINTS[unit]}" if unit in UNIT_HINTS else ""


def _allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Field names of the (sub)model that ``loc`` points into."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            break
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            current = annotation
        else:
            break
    return sorted(getattr(current, "model_fields", {}))


def format_validation_error(error: pydantic.ValidationError, model: type[BaseModel],
                            source: str = "") -> str:
    """One line for the first validation problem (and how many more there are)."""
    problems = error.errors()
    first = problems[0]
    loc = [p for p in first["loc"] if not isinstance(p, int)]
    key = ".".join(str(p) for p in first["loc"])
    where = f" in {source}" if source else ""
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(model, loc[:-1]))
        return f"unknown key '{key}'{where}; allowed keys here: {allowed}{more}"
    if first["type"] == "missing":
        return f"missing required key '{key}'{where}{more}"
    value = first.get("input")
    return (f"invalid value for '{key}'{where}: {value!r}: {first['msg']}"
            f"{_unit_hint(model, first['loc'])}{more}")


def validate(model: type[M], data: Any, source: str = "") -> M:
    """``model.model_validate(data)`` with errors turned into a one-line ConfigError."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model, source)) from None
