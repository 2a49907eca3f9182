"""Turning what the user passes as data into batches of ``(inputs, targets)``.

``fit`` and ``evaluate`` accept three forms of data:

* a ``torch.utils.data.DataLoader`` — used as it is (its batch size, order and workers win);
* a map-style ``Dataset`` whose items are ``(input, target)`` pairs — batched here;
* a pair of tensors ``(inputs, targets)`` with the same first dimension — wrapped in a ``TensorDataset``.

A plain ``TensorDataset`` (and subclasses that keep its ``__getitem__``, such as aicompute's own data sets)
is batched by indexing its tensors with a whole list of indices at once instead of stacking single
examples: the same batches, without per-example Python overhead. Shuffling draws from a generator seeded
by ``seed`` (see :mod:`aicompute.train.seeding`), so the order is reproducible, independent of the global
random state, and the same as ``DataLoader(dataset, batch_size, shuffle=True,
generator=torch.Generator().manual_seed(seed))`` gives. Iterating a loader made here never draws from the
global generators.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, TensorDataset

from aicompute.errors import AicomputeError
from aicompute.train.seeding import make_generator

__all__ = ["Data", "as_loader", "split_batch", "to_device", "num_batches", "resolve_device"]

Data = DataLoader | Dataset | tuple[torch.Tensor, torch.Tensor]


def _is_plain_tensor_dataset(dataset: Dataset) -> bool:
    return isinstance(dataset, TensorDataset) and type(dataset).__getitem__ is TensorDataset.__getitem__


def as_loader(data: Any, *, batch_size: int, shuffle: bool, seed: int | None = 0, name: str = "data") -> DataLoader:
    """A ``DataLoader`` over ``data`` (see the module docstring for the accepted forms).

    ``name`` is what error messages call the argument (``"train"``, ``"val"``...).
    """
    if isinstance(data, DataLoader):
        return data
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AicomputeError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        inputs, targets = data
        if inputs.shape[0] != targets.shape[0]:
            raise AicomputeError(
                f"{name}: inputs and targets must have the same number of examples (first dimension), "
                f"got {inputs.shape[0]} inputs and {targets.shape[0]} targets"
            )
        data = TensorDataset(inputs, targets)
    if not isinstance(data, Dataset):
        raise AicomputeError(
            f"{name} must be a DataLoader, a Dataset of (input, target) pairs or a tuple (inputs, targets) "
            f"of tensors, got {type(data).__name__}"
        )
    try:
        size = len(data)  # type: ignore[arg-type]
    except TypeError:
        raise AicomputeError(
            f"{name} is a Dataset without a length (an IterableDataset?); wrap it in a DataLoader yourself"
        ) from None
    if size == 0:
        raise AicomputeError(f"{name} is empty: it has no examples to train or evaluate on")
    # The loader draws a base seed for its workers from its generator on every pass: giving it ours keeps
    # the global generators untouched (evaluating does not change the dropout masks of later training).
    generator = make_generator(seed if shuffle else 0)
    sampler = RandomSampler(data, generator=generator) if shuffle else SequentialSampler(data)
    if _is_plain_tensor_dataset(data):
        # The sampler yields lists of indices; TensorDataset indexes each tensor with the whole list.
        batches = BatchSampler(sampler, batch_size, drop_last=False)
        return DataLoader(data, sampler=batches, batch_size=None, generator=generator)
    return DataLoader(data, sampler=sampler, batch_size=batch_size, generator=generator)


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
