"""The response models' base: what a service returns is checked against the route's model.

Services return dataclasses (decision 0085); a route names the Pydantic model of its answer
(`response_model=...`, built on `Answer`) and FastAPI validates what the service gave against it
before serialising it. `Answer` makes that check real: unknown fields are errors (a dataclass is
read field by field, not by attribute, so a field the model lacks is refused), and types are strict
(no "1" for 1, no 0 for false). A failed check is a 500 and a log line, never a wrong answer.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_by_name=True, validate_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _fields_of_dataclass(cls, data: Any) -> Any:
        if is_dataclass(data) and not isinstance(data, type):
            return {f.name: getattr(data, f.name) for f in fields(data)}
        return data
