"""``evaluate``: loss and accuracy of a model on held-out data.

The model runs in eval mode (dropout off, batch-norm running statistics) under ``torch.no_grad``; the
train/eval flag of *every* submodule is put back exactly as it was afterwards
(:func:`aicompute.modes.eval_mode`), so a model with some layers deliberately frozen in eval mode keeps them
that way. Loss and accuracy follow the conventions of :mod:`aicompute.train.metrics` (mean over
predictions; per token for language models). Data is batched by :func:`aicompute.data.loader.as_loader` in
its own order, drawing nothing from the global random generators.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from aicompute.data.loader import as_loader
from aicompute.errors import AicomputeError
from aicompute.modes import eval_mode
from aicompute.train.batching import resolve_device, split_batch, to_device
from aicompute.train.metrics import LossFn, MetricTotals, default_loss, loss_value
from aicompute.train.results import EvalResult

__all__ = ["evaluate", "measure"]


def measure(model: nn.Module, loader: Iterable, loss_fn: LossFn, device: torch.device) -> MetricTotals:
    """Loss/accuracy totals of ``model`` over ``loader``, in eval mode without gradients (mode restored)."""
    totals = MetricTotals()
    with eval_mode(model), torch.no_grad():
        for batch in loader:
            inputs, targets = split_batch(batch)
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            outputs = model(inputs)
            totals.update(loss_value(loss_fn(outputs, targets)), outputs, targets)
    if totals.examples == 0:
        raise AicomputeError("the evaluation data yielded no batches; pass a non-empty data set")
    return totals


def _perplexity(loss: float) -> float:
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    loss_fn: LossFn | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> EvalResult:
    """Mean loss and accuracy of ``model`` on ``data`` (a DataLoader, a Dataset or ``(inputs, targets)``).

    ``loss_fn(outputs, targets)`` defaults to cross-entropy (flattened for ``(B, T, V)`` language-model
    outputs). ``device=None`` evaluates where the model is; naming a device moves the model there.
    For a language model with the default loss, the result also has ``tokens`` and ``perplexity``.
    """
    start = time.perf_counter()
    target = resolve_device(model, device)
    if device is not None:
        model.to(target)
    loader = as_loader(data, batch_size=batch_size, shuffle=False, name="data")
    totals = measure(model, loader, loss_fn or default_loss, target)
    sequence = totals.sequence and totals.accuracy is not None
    return EvalResult(
        loss=totals.loss,
        accuracy=totals.accuracy,
        examples=totals.examples,
        tokens=totals.predictions if sequence else None,
        perplexity=_perplexity(totals.loss) if sequence and loss_fn is None else None,
        seconds=time.perf_counter() - start,
    )
