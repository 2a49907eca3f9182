"""One row per aten op call: what the profiler records and everything downstream (roll-ups, roofline) reads.

Conventions (stated in every result):

* **MACs** are multiply-accumulates of the dense ("tensor") ops: matmul, conv and attention. For those
  ops ``flops = 2 × macs`` (a fused bias add is not counted, as in ``torch.utils.flop_counter`` and
  fvcore), plus the vector work a kernel fuses with them: attention's softmax, a conv backward's bias
  gradient, a fused RNN layer's gate arithmetic. **Vector** ops (elementwise, reductions, normalization, softmax, pooling, ...) have ``macs = 0``
  and ``flops`` from their per-element formula in :mod:`aicompute.profile.ops`.
* ``flops is None`` means the op is **uncounted**: no formula is registered for it. Its bytes are still
  recorded, so a result can say how much of the traffic it could not price.
* **Bytes** are at the dtype in use. ``act_read`` is the activations (and other non-parameter tensors) the
  op reads, ``weight_read`` the parameters it reads, ``written`` its outputs. A broadcast (stride-0)
  dimension is read once; an embedding reads only the rows it gathers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["OpRecord", "TENSOR_CATEGORIES", "VECTOR_CATEGORIES", "CATEGORIES", "is_tensor_category"]

TENSOR_CATEGORIES = ("matmul", "conv", "attention")
"""Dense multiply-accumulate work: what tensor cores / matrix units run, and usually compute-bound."""
VECTOR_CATEGORIES = (
    "elementwise",
    "reduction",
    "normalization",
    "softmax",
    "pooling",
    "interpolation",
    "embedding",
    "loss",
    "data_movement",
    "creation",
)
"""Work of the vector units and the memory system: usually memory-bound."""
CATEGORIES = TENSOR_CATEGORIES + VECTOR_CATEGORIES + ("uncounted",)


def is_tensor_category(category: str) -> bool:
    return category in TENSOR_CATEGORIES


@dataclass(slots=True)
class OpRecord:
    """One aten op call seen while tracing."""

    op: str
    """The aten op packet, e.g. ``aten.mm`` (all overloads of an op share one name)."""
    module: str
    """Path of the innermost module running it, as in ``named_modules()`` (``""`` is the model itself)."""
    phase: str
    """``"forward"`` or ``"backward"``."""
    category: str
    """One of :data:`CATEGORIES`."""
    dtype: str
    """Dtype the op computes in (its first floating-point tensor), e.g. ``"float32"``, ``"bfloat16"``."""
    macs: int
    flops: int | None
    act_read: int
    weight_read: int
    written: int

    @property
    def read(self) -> int:
        return self.act_read + self.weight_read

    @property
    def moved(self) -> int:
        """Bytes read plus bytes written."""
        return self.act_read + self.weight_read + self.written

    @property
    def counted(self) -> bool:
        return self.flops is not None

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOPs per byte moved (0 for an op that moves nothing or is uncounted)."""
        moved = self.moved
        return (self.flops or 0) / moved if moved else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "module": self.module,
            "phase": self.phase,
            "category": self.category,
            "dtype": self.dtype,
            "macs": self.macs,
            "flops": self.flops,
            "act_read_bytes": self.act_read,
            "weight_read_bytes": self.weight_read,
            "written_bytes": self.written,
        }
