"""``fit``: the training loop every aicompute workflow (plain training, QAT, pruning, distillation) shares.

``fit`` trains ``model`` **in place** (as ``sklearn``'s ``fit`` does) and returns a :class:`FitResult`.
Each step runs the hooks of :mod:`aicompute.train.callbacks` in the order documented there. At the start
of every epoch the model is put in train mode *before* ``on_epoch_start``, so a callback may switch parts of
it to eval mode (e.g. to freeze batch-norm statistics late in QAT); when ``fit`` returns, every submodule's
train/eval flag is what it was before the call.

Reproducibility: with an integer ``seed``, ``fit`` runs with every global generator seeded by ``seed`` and
restores each one's state when it returns (:func:`~aicompute.train.seeding.seeded`), and shuffles the
training data with its own generator seeded by ``seed``; so the same seed, model initialisation and data
give bit-identical weights on CPU, and the caller's random streams carry on as if ``fit`` had not run (a
model built after one ``fit`` is not initialised like one built after another). ``seed=None`` neither seeds
nor restores: dropout draws from the caller's streams, and the data are shuffled at random.

``fit`` prints nothing unless asked: ``progress=True`` shows a progress bar and one line per epoch on
stderr (:mod:`aicompute.train.progress`).

A loss that is NaN or infinite stops training *before* the backward pass, with an ``AicomputeError``
naming the step, so the weights are never overwritten with NaN.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from aicompute.checks import positive_int
from aicompute.data.loader import as_loader
from aicompute.errors import AicomputeError
from aicompute.modes import preserve_modes
from aicompute.train.batching import num_batches, resolve_device, split_batch, to_device
from aicompute.train.callbacks import Callback, CallbackList, TrainState
from aicompute.train.evaluate import measure
from aicompute.train.metrics import LossFn, MetricTotals, default_loss, loss_value
from aicompute.train.optim import OptimizerSpec, make_optimizer
from aicompute.train.progress import FitProgress
from aicompute.train.results import EpochMetrics, FitResult
from aicompute.train.seeding import seeded

__all__ = ["fit"]


def fit(
    model: nn.Module,
    train: Any,
    val: Any = None,
    *,
    epochs: int = 1,
    optimizer: OptimizerSpec = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    batch_size: int = 64,
    loss_fn: LossFn | None = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str | None = None,
    seed: int | None = 0,
    progress: bool = False,
    max_steps: int | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` for ``epochs`` epochs (at most ``max_steps`` optimizer steps in all).

    ``train`` and ``val`` are DataLoaders, Datasets of ``(input, target)`` pairs or ``(inputs, targets)``
    tensor pairs; a Dataset is shuffled and cut into ``batch_size`` batches, a DataLoader is used as it is.
    ``val``, when given, is evaluated after every epoch with ``loss_fn``. ``optimizer`` is ``"adam"``,
    ``"adamw"``, ``"sgd"``, a ready ``torch.optim.Optimizer`` or a function ``params -> optimizer`` (see
    :mod:`aicompute.train.optim`). ``loss_fn(outputs, targets)`` defaults to cross-entropy, flattened for
    ``(B, T, V)`` language-model outputs. ``device=None`` trains where the model is; naming a device moves
    the model there. ``seed`` is an integer in [0, 2³² − 1] or ``None`` (see the module docstring).
    ``progress=True`` shows a progress display on stderr; by default ``fit`` is silent.
    """
    positive_int("epochs", epochs)
    if max_steps is not None:
        positive_int("max_steps", max_steps)
    start = time.perf_counter()
    with seeded(seed):
        target = resolve_device(model, device)
        if device is not None:
            model.to(target)
        train_loader = as_loader(train, batch_size=batch_size, shuffle=True, seed=seed, name="train")
        val_loader = None if val is None else as_loader(val, batch_size=batch_size, shuffle=False, name="val")
        state = TrainState(
            model=model,
            optimizer=make_optimizer(optimizer, model, lr=lr, weight_decay=weight_decay, momentum=momentum),
            epochs=epochs,
            max_steps=max_steps,
            device=target,
        )
        hooks = CallbackList(callbacks)
        with preserve_modes(model), FitProgress(enabled=progress, epochs=epochs) as bar:
            cut_short = _run_epochs(state, train_loader, val_loader, loss_fn or default_loss, hooks, bar)
    return FitResult(
        history=tuple(state.history),
        steps=state.step,
        seconds=time.perf_counter() - start,
        stopped_early=cut_short or state.stop,
    )


def _run_epochs(
    state: TrainState,
    train_loader: Iterable,
    val_loader: Iterable | None,
    loss_fn: LossFn,
    hooks: CallbackList,
    bar: FitProgress,
) -> bool:
    """The epochs of one ``fit``, hooks and validation included; returns whether training was cut short."""
    cut_short = False
    hooks.call("on_fit_start", state)
    for epoch in range(state.epochs):
        if state.stop or (state.max_steps is not None and state.step >= state.max_steps):
            cut_short = True
            break
        state.epoch = epoch
        epoch_start = time.perf_counter()
        bar.start_epoch(epoch, _epoch_total(train_loader, state))
        totals, steps, cut = _train_epoch(state, train_loader, loss_fn, hooks, bar)
        cut_short = cut_short or cut
        val_totals = None if val_loader is None else measure(state.model, val_loader, loss_fn, state.device)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=totals.loss,
            train_accuracy=totals.accuracy,
            val_loss=None if val_totals is None else val_totals.loss,
            val_accuracy=None if val_totals is None else val_totals.accuracy,
            steps=steps,
            seconds=time.perf_counter() - epoch_start,
        )
        state.history.append(metrics)
        bar.end_epoch(metrics)
        hooks.call("on_epoch_end", state, metrics)
    hooks.call("on_fit_end", state)
    return cut_short


def _epoch_total(loader: Iterable, state: TrainState) -> int | None:
    """Steps the coming epoch will take, for the progress bar (``None`` if the loader has no length)."""
    total = num_batches(loader)
    if state.max_steps is not None:
        left = state.max_steps - state.step
        total = left if total is None else min(total, left)
    return total


def _train_epoch(
    state: TrainState, loader: Iterable, loss_fn: LossFn, hooks: CallbackList, bar: FitProgress
) -> tuple[MetricTotals, int, bool]:
    """One pass over ``loader``: returns the epoch's totals, its step count, and whether it was cut short."""
    model, optimizer = state.model, state.optimizer
    totals, steps, cut = MetricTotals(), 0, False
    model.train()
    hooks.call("on_epoch_start", state)
    for index, batch in enumerate(loader):
        if state.max_steps is not None and state.step >= state.max_steps:
            cut = True
            break
        state.batch = index
        inputs, targets = split_batch(batch)
        state.inputs, state.targets = to_device(inputs, state.device), to_device(targets, state.device)
        hooks.call("on_batch_start", state)
        optimizer.zero_grad(set_to_none=True)
        state.outputs = model(state.inputs)
        state.loss = loss_fn(state.outputs, state.targets)
        hooks.call("on_loss", state)
        value = _checked_loss(state)
        state.loss.backward()
        hooks.call("on_after_backward", state)
        optimizer.step()
        hooks.call("on_step_end", state)
        state.step += 1
        steps += 1
        with torch.no_grad():
            totals.update(value, state.outputs, state.targets)
        bar.advance(value)
        if state.stop:
            cut = True
            break
    state.inputs = state.targets = state.outputs = state.loss = None  # free the last batch's graph
    if steps == 0 and not cut:
        raise AicomputeError("the training data yielded no batches; pass a non-empty data set")
    return totals, steps, cut


def _checked_loss(state: TrainState) -> float:
    """The loss as a float, after checking it can be back-propagated and is finite."""
    value = loss_value(state.loss)
    if not state.loss.requires_grad:
        raise AicomputeError(
            "the loss does not depend on any trainable parameter (it has no gradient); check that loss_fn "
            "uses the model outputs and that some parameters have requires_grad=True"
        )
    if not math.isfinite(value):
        lr = state.optimizer.param_groups[0].get("lr")
        raise AicomputeError(
            f"the loss is {value} at step {state.step + 1} (epoch {state.epoch + 1}, batch {state.batch + 1}): "
            f"training diverged; lower the learning rate (now lr={lr}) or check the data for NaN/inf values"
        )
    return value
