"""The one place aicompute turns data into a ``DataLoader`` of ``(inputs, targets)`` batches.

:func:`as_loader` accepts three forms of data, and :func:`~aicompute.data.get_loader`,
:func:`~aicompute.train.fit` and :func:`~aicompute.train.evaluate` all go through it:

* a ``torch.utils.data.DataLoader`` — used as it is (its batch size, order and workers win);
* a map-style ``Dataset`` whose items are ``(input, target)`` pairs — batched here;
* a pair of tensors ``(inputs, targets)`` with the same first dimension — wrapped in a ``TensorDataset``.

Determinism guarantees:

* **Seeded order.** Shuffling draws from a ``torch.Generator`` made by :func:`make_generator` from ``seed``,
  so the same seed gives the same batches on every run, whatever the global random state. The order is the
  one ``DataLoader(dataset, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))``
  gives; ``seed=None`` shuffles from OS entropy.
* **No global draws.** A ``DataLoader`` draws a base seed for its workers from its generator on every pass;
  it is given ours (also when not shuffling), so iterating never touches torch's global generator: evaluating
  between two training epochs does not change later dropout masks.

A plain ``TensorDataset`` (and subclasses that keep its ``__getitem__``, such as aicompute's own data sets)
is batched by indexing its tensors with a whole list of indices at once instead of stacking single
examples: the same batches, without per-example Python overhead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, TensorDataset

from aicompute.checks import non_negative_int, positive_int, seed_value
from aicompute.errors import AicomputeError

__all__ = ["Data", "as_loader", "make_generator"]

Data = DataLoader | Dataset | tuple[torch.Tensor, torch.Tensor]
"""What ``fit``, ``evaluate`` and ``as_loader`` accept as data."""


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU ``torch.Generator`` for data order: seeded with ``seed``, or from OS entropy when ``None``."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed_value(seed))
    return generator


def _is_plain_tensor_dataset(dataset: Dataset) -> bool:
    return isinstance(dataset, TensorDataset) and type(dataset).__getitem__ is TensorDataset.__getitem__


def _as_dataset(data: Any, name: str) -> Dataset:
    """``data`` as a non-empty map-style ``Dataset`` (a tensor pair becomes a ``TensorDataset``)."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        inputs, targets = data
        if inputs.dim() == 0 or targets.dim() == 0 or inputs.shape[0] != targets.shape[0]:
            raise AicomputeError(
                f"{name}: inputs and targets must have the same number of examples (first dimension), "
                f"got inputs of shape {tuple(inputs.shape)} and targets of shape {tuple(targets.shape)}"
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
    return data


def as_loader(
    data: Any,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int | None = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    name: str = "data",
) -> DataLoader:
    """A ``DataLoader`` over ``data`` (see the module docstring for the accepted forms and guarantees).

    ``drop_last`` drops a last batch shorter than ``batch_size``; ``num_workers`` loads in that many worker
    processes. ``name`` is what error messages call the argument (``"train"``, ``"val"``...).
    """
    if isinstance(data, DataLoader):
        return data
    positive_int("batch_size", batch_size)
    non_negative_int("num_workers", num_workers)
    if seed is not None:
        seed_value(seed)
    dataset = _as_dataset(data, name)
    generator = make_generator(seed if shuffle else 0)  # unshuffled: any fixed seed keeps the global one out
    sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    if _is_plain_tensor_dataset(dataset):
        # The batch sampler yields lists of indices; TensorDataset indexes each tensor with the whole list.
        batches = BatchSampler(sampler, batch_size, drop_last=drop_last)
        return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=num_workers, generator=generator)
    return DataLoader(dataset, sampler=sampler, batch_size=batch_size, drop_last=drop_last,
                      num_workers=num_workers, generator=generator)
