"""Roll per-call op records up: per op name, per module (a tree following ``named_modules``), and totals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aicompute.profile.records import OpRecord, is_tensor_category

__all__ = ["Cost", "OpRow", "ModuleRow", "sum_records", "by_op", "by_module", "ancestors", "module_depth"]


@dataclass(slots=True)
class Cost:
    """Summed cost of a set of op calls."""

    calls: int = 0
    macs: int = 0
    flops: int = 0
    """FLOPs of the counted calls."""
    tensor_flops: int = 0
    """FLOPs of matmul / conv / attention calls (2 × their MACs, plus attention's softmax)."""
    act_read: int = 0
    weight_read: int = 0
    written: int = 0
    uncounted_calls: int = 0
    uncounted_bytes: int = 0

    def add(self, r: OpRecord) -> None:
        self.calls += 1
        self.macs += r.macs
        self.act_read += r.act_read
        self.weight_read += r.weight_read
        self.written += r.written
        if r.flops is None:
            self.uncounted_calls += 1
            self.uncounted_bytes += r.moved
            return
        self.flops += r.flops
        if is_tensor_category(r.category):
            self.tensor_flops += r.flops

    @property
    def read(self) -> int:
        return self.act_read + self.weight_read

    @property
    def moved(self) -> int:
        return self.read + self.written

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved."""
        return self.flops / self.moved if self.moved else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "macs": self.macs,
            "flops": self.flops,
            "tensor_flops": self.tensor_flops,
            "read_bytes": self.read,
            "weight_read_bytes": self.weight_read,
            "written_bytes": self.written,
            "intensity_flops_per_byte": self.intensity,
            "uncounted_calls": self.uncounted_calls,
            "uncounted_bytes": self.uncounted_bytes,
        }


def sum_records(records: Iterable[OpRecord]) -> Cost:
    cost = Cost()
    for r in records:
        cost.add(r)
    return cost


@dataclass(slots=True)
class OpRow:
    op: str
    category: str
    cost: Cost = field(default_factory=Cost)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "category": self.category, **self.cost.to_dict()}


def by_op(records: Iterable[OpRecord]) -> list[OpRow]:
    """One row per op name, most FLOPs first (then most bytes)."""
    rows: dict[str, OpRow] = {}
    for r in records:
        row = rows.get(r.op)
        if row is None:
            row = rows[r.op] = OpRow(r.op, r.category)
        row.cost.add(r)
    return sorted(rows.values(), key=lambda row: (-row.cost.flops, -row.cost.moved, row.op))


@dataclass(slots=True)
class ModuleRow:
    path: str
    """``""`` is the model itself."""
    type: str
    depth: int
    params: int
    """Parameters of this module and its descendants (a shared parameter counted once)."""
    cost: Cost = field(default_factory=Cost)
    output_bytes: int = 0
    """Bytes of the tensors its forward returns (summed over its calls): the activation it hands on."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.path,
            "type": self.type,
            "depth": self.depth,
            "params": self.params,
            "output_bytes": self.output_bytes,
            **self.cost.to_dict(),
        }


def ancestors(path: str) -> list[str]:
    """``"a.b.c"`` → ``["a.b.c", "a.b", "a", ""]``; ``""`` → ``[""]``."""
    out = [path]
    while path:
        path = path.rpartition(".")[0]
        out.append(path)
    return out


def by_module(
    records: Iterable[OpRecord], modules: Mapping[str, tuple[str, int]], *, depth: int | None = None,
    outputs: Mapping[str, int] | None = None,
) -> list[ModuleRow]:
    """Rows in ``named_modules()`` order, each with the cost of every op run inside it (descendants
    included). ``modules`` maps path → (type name, params); ``outputs`` path → bytes its forward returned.
    ``depth`` keeps rows down to that depth (0 = the model only)."""
    outputs = outputs or {}
    rows = {path: ModuleRow(path, type_, module_depth(path), params, output_bytes=outputs.get(path, 0))
            for path, (type_, params) in modules.items()}
    for r in records:
        for path in ancestors(r.module):
            row = rows.get(path)
            if row is None:  # a module not reachable by named_modules (created inside forward)
                continue
            row.cost.add(r)
    return [row for row in rows.values() if depth is None or row.depth <= depth]


def module_depth(path: str) -> int:
    """``""`` (the model) → 0, ``"a"`` → 1, ``"a.b"`` → 2."""
    return 0 if not path else path.count(".") + 1
