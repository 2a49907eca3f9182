"""Whether a checkpoint's model can read a data set, decided before any example is run through it.

:func:`~aicompute.train.api.evaluate_checkpoint` calls :func:`check_fits` first, so that a model/data
mismatch is an ``AicomputeError`` that says what differs, and an error raised while evaluating is a real
one that keeps its type and traceback. Three sources of truth are compared, each where it exists:

1. **The recorded data set.** ``train_model`` records the :class:`DatasetInfo` the model was trained on; a
   data set with a ``DatasetInfo`` must agree on the task, the input shape and dtype, and the number of
   classes (the vocabulary size for language models).
2. **The zoo model's arguments.** For a zoo model, the family's adapter derives from the data set's
   ``DatasetInfo`` the arguments a model fitted to it would have (``in_features``, ``in_channels`` and
   ``image_size``, ``num_classes``, ``vocab_size``...; see :mod:`aicompute.models.registry`); the
   checkpoint's arguments (or the factory's defaults) must be the same, except that a language model's
   ``block_size`` (its longest sequence) only has to be at least the data's sequence length. A family that
   cannot read that kind of data at all is refused by the adapter itself. This covers checkpoints that
   record no data set.
3. **Raw data.** Data without a ``DatasetInfo`` (a pair of tensors, a plain ``Dataset``) is checked against
   the recorded ``DatasetInfo``: one example's shape and dtype must be ``input_shape`` and ``input_dtype``.
   A ``DataLoader`` without ``.dataset.info`` is taken on trust (its collate function may reshape).

A ``pkg.module:factory`` model has no zoo arguments to compare, so only checks 1 and 3 apply to it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.train.checkpoint import Checkpoint, is_imported_model

__all__ = ["check_fits", "data_info"]

_COMPARED = ("task", "input_shape", "input_dtype", "num_classes")
"""The ``DatasetInfo`` fields that must agree (``name`` and ``kind`` may differ)."""


def data_info(data: Any) -> DatasetInfo | None:
    """The ``DatasetInfo`` of a data set object or of a DataLoader's data set, else ``None``."""
    source = data.dataset if isinstance(data, DataLoader) else data
    info = getattr(source, "info", None)
    return info if isinstance(info, DatasetInfo) else None


def check_fits(checkpoint: Checkpoint, data: Any) -> None:
    """Raise an ``AicomputeError`` when ``checkpoint.model`` cannot read ``data`` (see the module docstring)."""
    trained, info = checkpoint.dataset_info, data_info(data)
    if info is not None:
        if trained is not None:
            _check_recorded(checkpoint, trained, info)
        if not is_imported_model(checkpoint.model_name):
            _check_zoo_arguments(checkpoint, info)
    elif trained is not None:
        _check_example(checkpoint, trained, data)


def _whose(checkpoint: Checkpoint) -> str:
    return f"model {checkpoint.model_name!r} of {str(checkpoint.path)!r}"


def _check_recorded(checkpoint: Checkpoint, trained: DatasetInfo, info: DatasetInfo) -> None:
    differ = [f for f in _COMPARED if getattr(trained, f) != getattr(info, f)]
    if differ:
        had = ", ".join(f"{f}={getattr(trained, f)!r}" for f in differ)
        got = ", ".join(f"{f}={getattr(info, f)!r}" for f in differ)
        raise AicomputeError(
            f"{_whose(checkpoint)} was trained on {trained.name!r} ({had}) but data set {info.name!r} has "
            f"{got}; evaluate it on a data set of the same kind"
        )


def _normalized(key: str, value: Any) -> Any:
    if key == "image_size" and isinstance(value, int):
        return (value, value)
    return tuple(value) if isinstance(value, list) else value


def _check_zoo_arguments(checkpoint: Checkpoint, info: DatasetInfo) -> None:
    from aicompute.models.registry import model_spec  # the zoo imports lazily

    spec = model_spec(checkpoint.model_name)
    needed = spec.adapt(info)  # refuses a family that cannot read this kind of data at all
    wrong = []
    for key, want in needed.items():
        have = checkpoint.model_kwargs.get(key, spec.defaults.get(key))
        if have is None:
            continue
        have, want = _normalized(key, have), _normalized(key, want)
        fits = have >= want if key == "block_size" else have == want
        if not fits:
            wrong.append(f"{key}={have!r} where the data needs {'at least ' if key == 'block_size' else ''}{want!r}")
    if wrong:
        raise AicomputeError(
            f"{_whose(checkpoint)} cannot read data set {info.name!r} ({info.kind} of shape "
            f"{tuple(info.input_shape)}, {info.num_classes} classes or tokens): the model was built with "
            f"{'; '.join(wrong)}; evaluate it on the kind of data it was built for"
        )


def _example(data: Any) -> Any:
    """One input example of raw data (the first), or ``None`` when it cannot be had without iterating."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data[0][0] if data[0].dim() > 0 and len(data[0]) > 0 else None
    if isinstance(data, Dataset) and hasattr(type(data), "__len__"):
        if len(data) == 0:  # type: ignore[arg-type]
            return None
        item = data[0]
        return item[0] if isinstance(item, (tuple, list)) and len(item) == 2 else None
    return None


def _check_example(checkpoint: Checkpoint, trained: DatasetInfo, data: Any) -> None:
    example = _example(data)
    if not isinstance(example, torch.Tensor):
        return
    shape, dtype = tuple(example.shape), str(example.dtype).removeprefix("torch.")
    if shape != tuple(trained.input_shape) or dtype != trained.input_dtype:
        raise AicomputeError(
            f"{_whose(checkpoint)} was trained on {trained.name!r} examples of shape "
            f"{tuple(trained.input_shape)} ({trained.input_dtype}), but the given data has examples of shape "
            f"{shape} ({dtype}); evaluate it on data of the same shape and dtype"
        )
