"""The default loss, and loss/accuracy totals over many batches.

Conventions:

* **Classification** — outputs are logits ``(B, C)``, targets class ids ``(B,)``.
* **Language modelling** — outputs are logits ``(B, T, V)``, targets next-token ids ``(B, T)``; both are
  flattened to ``(B·T, V)`` and ``(B·T,)``, so every token is one prediction.
* Targets equal to ``IGNORE_INDEX`` (−100, torch's ``cross_entropy`` default, used for padding) are not
  predictions: they count in neither the loss nor the accuracy.
* A data set's loss is the mean over *predictions* (examples for classification, tokens for language
  modelling): each batch's mean loss is weighted by its number of predictions, so the total does not
  depend on the batch size. A batch with no predictions (every target ignored) has weight 0 and is left
  out of the loss: its mean over nothing is NaN, which must not turn the total into NaN. For a language model it is therefore the per-token cross-entropy in nats,
  and ``exp(loss)`` is the perplexity.
* Accuracy is defined when the outputs are ``(..., C)`` scores and the targets integer ids of shape
  ``(...)``: the share of predictions whose arg-max is the target. Otherwise (regression, a custom output)
  it is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from aicompute.errors import AicomputeError

__all__ = ["IGNORE_INDEX", "LossFn", "default_loss", "loss_value", "is_sequence_output", "MetricTotals"]

IGNORE_INDEX = -100

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]
"""``loss_fn(outputs, targets) -> scalar loss tensor``, as ``fit`` and ``evaluate`` take it."""


def is_sequence_output(outputs: Any, targets: Any) -> bool:
    """True for language-model shapes: ``(B, T, V)`` outputs with ``(B, T)`` targets."""
    return (
        isinstance(outputs, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and outputs.dim() == 3
        and targets.dim() == 2
    )


def default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; ``(B, T, V)`` logits with ``(B, T)`` targets are flattened first."""
    if not isinstance(outputs, torch.Tensor):
        raise AicomputeError(
            f"the default loss (cross-entropy) needs the model to return one tensor of logits, but it returned "
            f"a {type(outputs).__name__}; pass loss_fn=(outputs, targets) -> loss"
        )
    logits, labels = outputs, targets
    if is_sequence_output(outputs, targets):
        logits = outputs.reshape(-1, outputs.shape[-1])  # (B·T, V)
        labels = targets.reshape(-1)  # (B·T,)
    try:
        return F.cross_entropy(logits, labels)
    except (RuntimeError, ValueError, IndexError) as e:
        raise AicomputeError(
            f"cross-entropy cannot compare model outputs of shape {tuple(outputs.shape)} with targets of shape "
            f"{tuple(targets.shape)} ({targets.dtype}): {e}. The model should return (batch, classes) logits "
            "for class-id targets, or (batch, time, vocab) for (batch, time) tokens; check that the model "
            "was built for this data set (its number of classes), or pass loss_fn="
        ) from None


def loss_value(loss: Any) -> float:
    """The float value of a scalar loss; a loss function that returns anything else is an ``AicomputeError``."""
    if isinstance(loss, torch.Tensor) and loss.numel() == 1:
        return float(loss.detach())
    got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
    raise AicomputeError(
        f"the loss function must return a scalar tensor, got {got}; reduce it (e.g. .mean()) before returning"
    )


def _scored_predictions(outputs: Any, targets: Any) -> torch.Tensor | None:
    """Boolean mask of the targets that are predictions (not ignored), or ``None`` if accuracy is undefined."""
    if not (isinstance(outputs, torch.Tensor) and isinstance(targets, torch.Tensor)):
        return None
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        return None
    if outputs.dim() != targets.dim() + 1 or outputs.shape[:-1] != targets.shape:
        return None
    return targets != IGNORE_INDEX


class MetricTotals:
    """Running loss and accuracy over batches (see the module docstring for the weighting)."""

    def __init__(self) -> None:
        self.examples = 0
        self.predictions = 0
        self.correct = 0
        self.sequence = False
        self._loss_sum = 0.0
        self._loss_weight = 0
        self._accuracy_defined = True

    def update(self, loss: float, outputs: Any, targets: Any) -> None:
        """Add one batch: its mean ``loss`` (a float) and the outputs and targets it came from."""
        batch = int(targets.shape[0]) if isinstance(targets, torch.Tensor) and targets.dim() > 0 else 1
        self.examples += batch
        self.sequence = self.sequence or is_sequence_output(outputs, targets)
        scored = _scored_predictions(outputs, targets)
        if scored is None:
            self._accuracy_defined = False
            weight = batch
        else:
            weight = int(scored.sum())
            hits = (outputs.argmax(dim=-1) == targets) & scored
            self.correct += int(hits.sum())
            self.predictions += weight
        if weight == 0:  # nothing scored: the batch's mean loss is NaN (0/0) and carries no information
            return
        self._loss_sum += float(loss) * weight
        self._loss_weight += weight

    @property
    def loss(self) -> float:
        """Mean loss per prediction; NaN until a batch with at least one prediction was added."""
        return self._loss_sum / self._loss_weight if self._loss_weight else math.nan

    @property
    def accuracy(self) -> float | None:
        """Share of correct predictions in [0, 1], or ``None`` where accuracy is undefined."""
        if not self._accuracy_defined or self.predictions == 0:
            return None
        return self.correct / self.predictions
