"""What a data set is, as the rest of aicompute needs to know it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Task = Literal["classification", "language-modeling"]

__all__ = ["DatasetInfo", "Task"]


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """Shape and meaning of one data set's examples.

    ``input_shape`` is one example's shape without the batch dimension: ``(C, H, W)`` for images,
    ``(L,)`` for 1-D signals, ``(T,)`` for token sequences. ``num_classes`` is the number of classes for
    classification and the vocabulary size for language modelling.
    """

    name: str
    """Registry name, e.g. ``"mnist"``."""
    task: Task
    """``"classification"`` (one label per example) or ``"language-modeling"`` (next token at each step)."""
    input_shape: tuple[int, ...]
    """One example's shape, without the batch dimension."""
    num_classes: int
    """Classes (classification) or vocabulary size (language modelling)."""
    input_dtype: Literal["float32", "int64"] = "float32"
    """``"int64"`` for token ids, ``"float32"`` otherwise."""
    kind: Literal["image", "signal", "tokens", "tensor"] = "image"
    """How models should read an example: 2-D image, 1-D signal, token sequence, or arbitrary tensor."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d
