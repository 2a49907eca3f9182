"""The records ``fit`` and ``evaluate`` return, and :func:`json_safe`, which every record's ``to_dict`` uses.

Every record has ``to_dict()``, which is JSON-safe (:func:`json_safe`): plain ``int``/``float``/``str``/
``bool``/``None``/lists/dicts, with non-finite floats (a NaN loss, an overflowing perplexity) as ``None``
because JSON has no NaN, and a ``"kind"`` key naming the record (``"epoch"``, ``"fit"``, ``"eval"``; the
checkpoint and ``train_model`` records use ``"checkpoint"`` and ``"train"``). Accuracies are fractions in
[0, 1]; times are in seconds (``seconds``).
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

__all__ = ["EpochMetrics", "FitResult", "EvalResult", "METRIC_NAMES", "json_safe"]

METRIC_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
"""The metrics an :class:`EpochMetrics` holds, e.g. for ``EarlyStopping(monitor=...)``."""


def json_safe(value: Any) -> Any:
    """``value`` as data ``json.dumps(..., allow_nan=False)`` writes and reads back unchanged.

    Dicts get string keys and lists/tuples become lists (recursively); a non-finite float becomes ``None``;
    NumPy scalars and other numbers become ``int``/``float``/``bool``; a tensor becomes its summary
    ``{"tensor": shape, "dtype": ...}``; a path becomes a string. Anything else is a ``TypeError`` (a bug:
    records hold plain data).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):  # a NumPy scalar: its Python equivalent
        return json_safe(value.item())
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, torch.Tensor):
        return {"tensor": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"json_safe: cannot represent a {type(value).__name__} as JSON")


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch of ``fit``.

    ``train_loss`` is the mean of the loss that was optimised (after callbacks' ``on_loss``) over the
    epoch's predictions, measured in train mode while the weights changed; ``val_*`` are measured after the
    epoch in eval mode with the plain loss function. ``epoch`` is the 0-based index.
    """

    epoch: int
    train_loss: float
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    steps: int
    """Optimizer steps taken in this epoch (fewer than the batches when ``max_steps`` or a callback stopped it)."""
    seconds: float
    """Wall time of the epoch, validation included."""

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "kind": "epoch",
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "train_accuracy": self.train_accuracy,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "steps": self.steps,
            "seconds": self.seconds,
        })


@dataclass(frozen=True)
class FitResult:
    """What ``fit`` did: per-epoch history, total optimizer steps and time."""

    history: tuple[EpochMetrics, ...]
    steps: int
    seconds: float
    stopped_early: bool
    """True when a callback set ``state.stop`` or ``max_steps`` ended training before the last epoch."""

    @property
    def final(self) -> dict[str, float | None]:
        """The last epoch's metrics by name (:data:`METRIC_NAMES`); all ``None`` when no epoch ran."""
        last = self.history[-1] if self.history else None
        return {name: getattr(last, name) if last else None for name in METRIC_NAMES}

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "kind": "fit",
            "epochs": len(self.history),
            "steps": self.steps,
            "seconds": self.seconds,
            "stopped_early": self.stopped_early,
            "final": self.final,
            "history": [m.to_dict() for m in self.history],
        })


@dataclass(frozen=True)
class EvalResult:
    """Loss and accuracy of a model on one data set (see :mod:`aicompute.train.metrics` for conventions).

    For a language model, ``loss`` is the mean cross-entropy per token (nats), ``tokens`` the number of
    scored tokens and ``perplexity = exp(loss)``; for other tasks both are ``None``.
    """

    loss: float
    accuracy: float | None
    examples: int
    tokens: int | None = None
    perplexity: float | None = None
    seconds: float = 0.0
    model: str | None = None
    """The model's name, when known (``evaluate_checkpoint`` fills it in)."""
    data: str | None = None
    """The data set's name, when known."""

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"kind": "eval", **{f.name: getattr(self, f.name) for f in fields(self)}})
