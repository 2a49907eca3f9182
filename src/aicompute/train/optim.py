"""Choosing the optimizer ``fit`` uses.

``optimizer=`` may be a name, an optimizer the caller built, or a function ``params -> optimizer``:

* ``"adam"``: ``torch.optim.Adam(params, lr, weight_decay=weight_decay)`` (L2 added to the gradient);
* ``"adamw"``: ``torch.optim.AdamW(params, lr, weight_decay=weight_decay)`` (decoupled decay);
* ``"sgd"``: ``torch.optim.SGD(params, lr, momentum=momentum, weight_decay=weight_decay)``.

Only parameters with ``requires_grad`` are handed to a named optimizer, so frozen layers stay frozen.
A ready optimizer is used as it is (``lr``, ``weight_decay`` and ``momentum`` are then ignored), but it must
hold at least one of the model's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from aicompute.errors import AicomputeError

__all__ = ["OptimizerSpec", "OPTIMIZERS", "make_optimizer"]

OptimizerSpec = str | torch.optim.Optimizer | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]

OPTIMIZERS = ("adam", "adamw", "sgd")


def _check_hyperparameters(lr: float, weight_decay: float, momentum: float) -> None:
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise AicomputeError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise AicomputeError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise AicomputeError(f"momentum must be in [0, 1), got {momentum!r}")


def make_optimizer(
    spec: OptimizerSpec,
    model: nn.Module,
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """The optimizer ``spec`` describes, over ``model``'s trainable parameters (see module docstring)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if isinstance(spec, torch.optim.Optimizer):
        _check_holds_model(spec, model)
        return spec
    if isinstance(spec, str):
        if not params:
            raise AicomputeError("the model has no trainable parameters (none requires grad); nothing to fit")
        _check_hyperparameters(lr, weight_decay, momentum)
        name = spec.lower()
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        raise AicomputeError(
            f"unknown optimizer {spec!r}; choose one of {', '.join(OPTIMIZERS)}, or pass a torch.optim.Optimizer "
            "or a function params -> optimizer"
        )
    if callable(spec):
        optimizer = spec(params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise AicomputeError(
                f"the optimizer factory returned {type(optimizer).__name__}, not a torch.optim.Optimizer"
            )
        _check_holds_model(optimizer, model)
        return optimizer
    raise AicomputeError(
        f"optimizer must be a name ({', '.join(OPTIMIZERS)}), a torch.optim.Optimizer or a function "
        f"params -> optimizer, got {type(spec).__name__}"
    )


def _check_holds_model(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not any(id(p) in held for p in model.parameters()):
        raise AicomputeError(
            "the optimizer holds none of the model's parameters, so fit would not change the model; "
            "build it from this model's parameters (e.g. torch.optim.SGD(model.parameters(), lr=0.1))"
        )
