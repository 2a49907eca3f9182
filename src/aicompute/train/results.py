"""The records ``fit`` and ``evaluate`` return.

Every record has ``to_dict()``, which is JSON-safe: plain ``int``/``float``/``str``/``None``/lists/dicts, and
non-finite floats (a NaN loss, an overflowing perplexity) become ``None`` because JSON has no NaN.
Accuracies are fractions in [0, 1]; times are in seconds (``seconds``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["EpochMetrics", "FitResult", "EvalResult", "METRIC_NAMES", "json_float"]

METRIC_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
"""The metrics an :class:`EpochMetrics` holds, e.g. for ``EarlyStopping(monitor=...)``."""


def json_float(value: float | None) -> float | None:
    """``value`` as a float, or ``None`` when it is missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


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
        return {
            "epoch": self.epoch,
            "train_loss": json_float(self.train_loss),
            "train_accuracy": json_float(self.train_accuracy),
            "val_loss": json_float(self.val_loss),
            "val_accuracy": json_float(self.val_accuracy),
            "steps": self.steps,
            "seconds": self.seconds,
        }


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
        return {
            "epochs": len(self.history),
            "steps": self.steps,
            "seconds": self.seconds,
            "stopped_early": self.stopped_early,
            "final": {k: json_float(v) for k, v in self.final.items()},
            "history": [m.to_dict() for m in self.history],
        }


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
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = json_float(value) if isinstance(value, float) else value
        return out
