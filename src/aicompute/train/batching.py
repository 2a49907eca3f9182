"""What ``fit`` and ``evaluate`` do with each batch: split it, move it, and pick the device.

Turning the user's data into batches is :func:`aicompute.data.loader.as_loader`'s job (one implementation
for ``get_loader``, ``fit`` and ``evaluate``); this module handles what comes out of it. A batch is a pair
``(inputs, targets)``; the inputs may be a tensor or tensors nested in tuples, lists and dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from aicompute.errors import AicomputeError

__all__ = ["split_batch", "to_device", "num_batches", "resolve_device"]


def num_batches(loader: Iterable) -> int | None:
    """Batches per pass over ``loader``, or ``None`` when it has no length."""
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def split_batch(batch: Any) -> tuple[Any, torch.Tensor]:
    """``(inputs, targets)`` from one batch; anything else is an ``AicomputeError``."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    kind = type(batch).__name__
    if isinstance(batch, (tuple, list)):
        kind = f"a {kind} of {len(batch)} items"
    raise AicomputeError(
        f"each batch must be a pair (inputs, targets), got {kind}; make the Dataset return (input, target)"
    )


def to_device(value: Any, device: torch.device) -> Any:
    """Move a tensor — or the tensors inside tuples, lists and dicts — to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` means where the model's first parameter (or buffer) lives."""
    if device is None:
        tensors = (*model.parameters(), *model.buffers())
        device = tensors[0].device if tensors else torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise AicomputeError(f"unknown device {device!r} ({e}); use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AicomputeError(f"device {str(device)!r} asked for, but CUDA is not available here; use device='cpu'")
    if device.type == "meta":
        raise AicomputeError(
            "cannot train or evaluate on the meta device (it holds no values); build the model on 'cpu' or 'cuda'"
        )
    return device
