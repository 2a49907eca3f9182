"""Synthetic: seeded random tensors of any shape and class count, for shape checks, profiling and smoke tests.

Inputs are standard-normal float32 ``(N, *shape)``; labels are int64, uniform over ``0..num_classes-1`` and
independent of the inputs (nothing to learn: accuracy stays at chance). The training split has ``size``
examples, the test split ``max(1, size // 4)``. Each split draws from its own ``torch.Generator`` seeded
from ``(seed, split)``, so the same seed gives identical tensors and the two splits differ. ``seed`` must
be an integer in [0, 2³² − 1], as everywhere in aicompute (:func:`aicompute.checks.seed_value`).

``kind`` follows the shape: ``"image"`` for 3-D ``(C, H, W)``, ``"signal"`` for 1-D ``(L,)``, ``"tensor"``
otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from aicompute.checks import positive_int, seed_value
from aicompute.data.base import SPLITS, AicomputeDataset, canonical_split
from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError

__all__ = ["DESCRIPTION", "info", "load", "split_size"]

DESCRIPTION = "seeded random tensors of any shape (default 3×32×32) and class count (default 10)"


def _check(shape: Sequence[int], num_classes: int, size: int) -> tuple[int, ...]:
    """Validate the options; return ``shape`` as a tuple of ints."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) == 0:
        raise AicomputeError(f"synthetic: shape must be a non-empty sequence of positive integers such as "
                             f"(3, 32, 32), got {shape!r}")
    for dim in shape:
        positive_int(f"synthetic: every dimension of shape {tuple(shape)}", dim)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise AicomputeError(f"synthetic: num_classes must be an integer >= 2, got {num_classes!r}")
    positive_int("synthetic: size (training examples)", size)
    return tuple(shape)


def split_size(split: str, size: int) -> int:
    """Examples in ``split``: ``size`` for training, ``max(1, size // 4)`` for testing."""
    return size if canonical_split(split, "'synthetic'") == "train" else max(1, size // 4)


def info(shape: Sequence[int] = (3, 32, 32), num_classes: int = 10, size: int = 1024) -> DatasetInfo:
    """The data set's shape and meaning (nothing is drawn)."""
    shape = _check(shape, num_classes, size)
    kind = {3: "image", 1: "signal"}.get(len(shape), "tensor")
    return DatasetInfo(name="synthetic", task="classification", input_shape=shape, num_classes=num_classes,
                       input_dtype="float32", kind=kind)


def load(split: str = "train", *, seed: int = 0, shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
         size: int = 1024) -> AicomputeDataset:
    """Random inputs ``(N, *shape)`` and labels ``(N,)`` for ``split``, drawn from ``seed``."""
    split = canonical_split(split, "'synthetic'")
    meta = info(shape, num_classes, size)
    seed = seed_value(seed)
    # One independent stream per (seed, split): SeedSequence mixes both into a 64-bit torch seed.
    stream_seed = int(np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1, dtype=np.uint64)[0])
    gen = torch.Generator().manual_seed(stream_seed)
    n = split_size(split, size)
    inputs = torch.randn((n, *meta.input_shape), generator=gen, dtype=torch.float32)
    targets = torch.randint(0, num_classes, (n,), generator=gen, dtype=torch.int64)
    return AicomputeDataset(inputs, targets, info=meta, split=split)
