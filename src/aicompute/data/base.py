"""What every aicompute data set is: two tensors, a split name and a :class:`DatasetInfo`.

Conventions shared by all data sets:

* **Splits.** Every data set has a ``"train"`` split and a held-out ``"test"`` split; ``"val"`` is accepted
  everywhere as another name for ``"test"``. A data set object always reports the canonical name.
* **Fixed splits.** Real data sets (mnist, digits, mnist1d, chars) split the same way on every call, so
  accuracies are comparable across runs and machines; ``seed`` only changes data sets whose content is
  random (synthetic).
* **No shared mutable state.** Loaders cache processed arrays in-process, but every data set object gets
  tensors of its own: writing into one data set never changes another, nor the cache.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import TensorDataset

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError

__all__ = [
    "SPLITS", "SPLIT_ALIASES", "SplitArrays", "AicomputeDataset", "canonical_split", "stratified_split", "take_splits",
    "load_fixed_split",
]  # fmt: skip

SPLITS: tuple[str, ...] = ("train", "test")
"""The canonical split names every data set has."""
SPLIT_ALIASES: dict[str, str] = {"val": "test"}
"""Other accepted names, mapped to the canonical split."""
SplitArrays = dict[str, tuple[np.ndarray, np.ndarray]]
"""``{"train": (inputs, targets), "test": (inputs, targets)}``: a fixed-split data set's processed arrays."""


def canonical_split(split: str, dataset: str = "data set") -> str:
    """Map ``split`` to ``"train"`` or ``"test"`` (``"val"`` → ``"test"``); anything else is an error."""
    if split in SPLITS:
        return split
    if split in SPLIT_ALIASES:
        return SPLIT_ALIASES[split]
    known = ", ".join(SPLITS)
    aliases = ", ".join(f"{a!r} = {c!r}" for a, c in SPLIT_ALIASES.items())
    raise AicomputeError(f"unknown split {split!r} for {dataset}; expected one of: {known} (alias: {aliases})")


class AicomputeDataset(TensorDataset):
    """A map-style data set of ``(input, target)`` pairs, held as two tensors.

    ``inputs`` has shape ``(N, *info.input_shape)`` and dtype ``info.input_dtype``; ``targets`` is int64,
    ``(N,)`` for classification and ``(N, T)`` (next token at each position) for language modelling.
    Indexing returns ``(inputs[i], targets[i])``, so a ``DataLoader`` over it yields ``(x, y)`` batches.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, *, info: DatasetInfo, split: str):
        if tuple(inputs.shape[1:]) != tuple(info.input_shape):
            raise ValueError(f"inputs {tuple(inputs.shape)} do not match info.input_shape {info.input_shape}")
        if inputs.dtype != getattr(torch, info.input_dtype) or targets.dtype != torch.int64:
            raise ValueError(f"dtypes {inputs.dtype}/{targets.dtype} do not match {info.input_dtype}/int64")
        super().__init__(inputs, targets)  # checks that both have the same length
        self.info = info
        self.split = canonical_split(split, repr(info.name))

    @property
    def inputs(self) -> torch.Tensor:
        return self.tensors[0]

    @property
    def targets(self) -> torch.Tensor:
        return self.tensors[1]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.info.name!r}, split={self.split!r}, n={len(self)}, "
            f"input_shape={tuple(self.info.input_shape)}, num_classes={self.info.num_classes})"
        )


def stratified_split(labels: np.ndarray, test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` with exactly ``test_per_class`` test examples of every class.

    The test examples of each class are drawn without replacement by ``numpy.random.default_rng(seed)``;
    both index arrays are returned sorted, so the data keep their original order within a split.
    """
    rng = np.random.default_rng(seed)
    test_parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) <= test_per_class:
            raise ValueError(f"class {cls} has {len(members)} examples; cannot hold out {test_per_class}")
        test_parts.append(rng.choice(members, size=test_per_class, replace=False))
    test = np.sort(np.concatenate(test_parts))
    train = np.setdiff1d(np.arange(len(labels)), test)  # sorted, disjoint from test
    return train, test


def take_splits(inputs: np.ndarray, targets: np.ndarray, train: np.ndarray, test: np.ndarray) -> SplitArrays:
    """``inputs`` and ``targets`` cut by the index arrays ``train`` and ``test`` (as :func:`stratified_split`
    gives them)."""
    return {"train": (inputs[train], targets[train]), "test": (inputs[test], targets[test])}


def load_fixed_split(split: str, arrays: Callable[[], SplitArrays], info: DatasetInfo) -> AicomputeDataset:
    """The ``split`` ("train", "test" or "val" = "test") of a fixed-split data set, named ``info.name``.

    The split name is checked first; only then is ``arrays()`` called (it may read or build a cache). The
    returned data set holds copies (``torch.tensor`` copies), so callers own their tensors and cannot change
    the cache.
    """
    split = canonical_split(split, repr(info.name))
    inputs, targets = arrays()[split]
    return AicomputeDataset(torch.tensor(inputs), torch.tensor(targets), info=info, split=split)
