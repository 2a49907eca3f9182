"""The zoo as a table: every registered model with its parameter count and default input.

Models are built on the meta device, so listing the zoo allocates no weight memory — ``gpt3-175b``
included.
"""

from __future__ import annotations

from dataclasses import dataclass

from aicompute.models.registry import count_params, get_model, list_models

__all__ = ["ZooRow", "ZooTable", "zoo_table"]


@dataclass(frozen=True)
class ZooRow:
    name: str
    family: str
    params: int
    input_shape: tuple[int, ...]
    input_dtype: str
    description: str

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "params": self.params,
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "description": self.description,
        }


@dataclass(frozen=True)
class ZooTable:
    rows: tuple[ZooRow, ...]

    def to_dict(self) -> dict:
        return {"kind": "zoo", "convention": "params = parameter elements, tied weights counted once",
                "models": [r.to_dict() for r in self.rows]}


def zoo_table() -> ZooTable:
    """Every zoo model at its default configuration."""
    rows = []
    for spec in list_models():
        model = get_model(spec.name, device="meta")
        rows.append(
            ZooRow(spec.name, spec.family, count_params(model), spec.input_shape, spec.input_dtype,
                   spec.description)
        )
    return ZooTable(tuple(rows))
