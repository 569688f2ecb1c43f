"""The base class of every config model: strict, so that typos and wrong types are errors."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown keys and coerces nothing silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=False)
