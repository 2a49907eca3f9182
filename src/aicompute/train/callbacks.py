"""Callbacks: how later work (pruning, QAT, distillation, early stopping) hooks into ``fit``.

One training step of ``fit`` runs, for each batch::

    on_batch_start(state)        # state.inputs / state.targets are on the device; may replace them
    state.outputs = model(state.inputs)
    state.loss = loss_fn(state.outputs, state.targets)
    on_loss(state)               # may replace or augment state.loss (e.g. add a distillation term)
    state.loss.backward()
    on_after_backward(state)     # gradients exist: clip or mask them
    optimizer.step()
    on_step_end(state)           # weights updated: re-apply pruning masks, log
    state.step += 1

around which ``on_fit_start(state)``, ``on_epoch_start(state)``, ``on_epoch_end(state, metrics)`` and
``on_fit_end(state)`` run. Callbacks run in the order given. Setting ``state.stop = True`` in any hook ends
training: after the current step when set during a batch (the epoch is then closed: validated and
reported as usual), after the current epoch when set in ``on_epoch_start``/``on_epoch_end``, and before any
step when set in ``on_fit_start``. ``on_fit_end`` runs whenever ``on_fit_start`` did and training ended
without an exception.

Examples of what the hooks are for::

    LambdaCallback(on_step_end=lambda s: apply_masks_(s.model, masks))            # pruning
    LambdaCallback(on_epoch_start=lambda s: toggle_observers(s.model, s.epoch < 3))  # QAT
    LambdaCallback(on_loss=lambda s: setattr(s, "loss", s.loss + kd(teacher(s.inputs), s.outputs)))
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from aicompute.checks import non_negative_int
from aicompute.errors import AicomputeError
from aicompute.train.results import METRIC_NAMES, EpochMetrics

__all__ = ["TrainState", "Callback", "LambdaCallback", "EarlyStopping", "CallbackList", "HOOKS"]

HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_batch_start",
    "on_loss",
    "on_after_backward",
    "on_step_end",
    "on_epoch_end",
    "on_fit_end",
)


@dataclass
class TrainState:
    """The mutable state of one ``fit`` call, shared by every callback.

    ``epoch`` is the 0-based epoch index and ``batch`` the 0-based batch index within it. ``step`` counts
    the optimizer steps completed so far, so during one batch's hooks it is that step's 0-based index, and
    it is incremented after ``on_step_end``. ``inputs``, ``targets``, ``outputs`` and ``loss`` belong to
    the current batch (``None`` outside a batch).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int
    max_steps: int | None
    device: torch.device
    epoch: int = 0
    batch: int = 0
    step: int = 0
    inputs: Any = None
    targets: Any = None
    outputs: Any = None
    loss: torch.Tensor | None = None
    stop: bool = False
    history: list[EpochMetrics] = field(default_factory=list)
    """The metrics of every finished epoch."""


class Callback:
    """Base class: override the hooks you need; each does nothing by default."""

    def on_fit_start(self, state: TrainState) -> None:
        pass

    def on_epoch_start(self, state: TrainState) -> None:
        pass

    def on_batch_start(self, state: TrainState) -> None:
        pass

    def on_loss(self, state: TrainState) -> None:
        pass

    def on_after_backward(self, state: TrainState) -> None:
        pass

    def on_step_end(self, state: TrainState) -> None:
        pass

    def on_epoch_end(self, state: TrainState, metrics: EpochMetrics) -> None:
        pass

    def on_fit_end(self, state: TrainState) -> None:
        pass


class LambdaCallback(Callback):
    """A callback from plain functions, one per hook: ``LambdaCallback(on_step_end=fn)``.

    Each function takes the same arguments as the hook it replaces (``state``, plus ``metrics`` for
    ``on_epoch_end``).
    """

    def __init__(self, **hooks: Callable[..., Any]) -> None:
        unknown = sorted(set(hooks) - set(HOOKS))
        if unknown:
            raise AicomputeError(
                f"LambdaCallback got unknown hook(s) {', '.join(unknown)}; hooks are: {', '.join(HOOKS)}"
            )
        for name, fn in hooks.items():
            if not callable(fn):
                raise AicomputeError(f"LambdaCallback {name}= must be callable, got {type(fn).__name__}")
            setattr(self, name, fn)  # the instance attribute shadows the no-op method


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs in a row.

    ``mode="auto"`` maximises accuracies and minimises losses. An epoch improves when it beats the best
    value so far by more than ``min_delta``. With ``restore_best=True`` the weights of the best epoch are
    put back into the model when training ends. After ``fit``: ``best``, ``best_epoch`` (0-based) and
    ``stopped_epoch`` (``None`` if it never fired).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 3,
        mode: Literal["auto", "min", "max"] = "auto",
        min_delta: float = 0.0,
        restore_best: bool = False,
    ) -> None:
        if monitor not in METRIC_NAMES:
            raise AicomputeError(f"EarlyStopping cannot monitor {monitor!r}; choose one of {', '.join(METRIC_NAMES)}")
        if mode not in ("auto", "min", "max"):
            raise AicomputeError(f"EarlyStopping mode must be 'auto', 'min' or 'max', got {mode!r}")
        non_negative_int("EarlyStopping patience", patience)
        if not min_delta >= 0:
            raise AicomputeError(f"EarlyStopping min_delta must be >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.patience = patience
        self.mode = ("max" if monitor.endswith("accuracy") else "min") if mode == "auto" else mode
        self.min_delta = float(min_delta)
        self.restore_best = restore_best
        self._reset()

    def _reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self._wait = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return value == value  # not NaN
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_fit_start(self, state: TrainState) -> None:
        self._reset()

    def on_epoch_end(self, state: TrainState, metrics: EpochMetrics) -> None:
        value = getattr(metrics, self.monitor)
        if value is None:
            hint = "pass val= to fit" if self.monitor.startswith("val") else "accuracy needs class-id targets"
            if self.monitor == "val_accuracy":
                hint = "it needs val= data with class-id targets"
            raise AicomputeError(
                f"EarlyStopping monitors {self.monitor!r} but fit did not measure it; {hint}, or monitor another "
                f"of {', '.join(METRIC_NAMES)}"
            )
        if self._improves(value):
            self.best, self.best_epoch, self._wait = float(value), metrics.epoch, 0
            if self.restore_best:
                self._best_state = copy.deepcopy(state.model.state_dict())
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = metrics.epoch
            state.stop = True

    def on_fit_end(self, state: TrainState) -> None:
        if self.restore_best and self._best_state is not None:
            state.model.load_state_dict(self._best_state)


class CallbackList:
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise AicomputeError(
                    f"callbacks must be Callback instances, got {type(cb).__name__}; "
                    "wrap a function as LambdaCallback(on_step_end=fn)"
                )

    def call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)
