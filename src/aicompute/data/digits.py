"""Digits: scikit-learn's bundled 8×8 handwritten digits (1,797 images, UCI optical digits; no download).

Pixels are 0–16 counts. aicompute holds out a fixed, stratified 36 images of every digit for testing
(10 × 36 = 360 test images, 1,437 training images), drawn by a fixed internal seed (``SPLIT_SEED``).

Inputs are float32 ``(N, 1, 8, 8)``: first scaled to 0–1 by ``x / 16``, then standardised with one mean and
one standard deviation measured on the training split (per-pixel statistics would divide by zero on the
always-blank border pixels). Both splits use the training statistics. Targets are int64 labels 0–9.
"""

from __future__ import annotations

import functools

import numpy as np

from aicompute.data.base import AicomputeDataset, SplitArrays, load_fixed_split, stratified_split, take_splits
from aicompute.data.info import DatasetInfo

__all__ = ["SPLIT_SEED", "TEST_PER_CLASS", "DESCRIPTION", "info", "load"]

SPLIT_SEED = 20_240_602
"""Seed of the fixed train/test split."""
TEST_PER_CLASS = 36
"""Held-out images per digit: 360 test images (about 20 %), 1,437 training images."""
DESCRIPTION = "sklearn's 8×8 handwritten digits, 1×8×8, 10 classes, 1,437/360"


def info() -> DatasetInfo:
    """The data set's shape and meaning (no data is read)."""
    return DatasetInfo(name="digits", task="classification", input_shape=(1, 8, 8), num_classes=10,
                       input_dtype="float32", kind="image")


@functools.lru_cache(maxsize=1)
def _arrays() -> SplitArrays:
    """Standardised images and labels for both splits (computed once per process; never handed out)."""
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    bunch = load_digits()
    scaled = (bunch.data / 16.0).reshape(-1, 1, 8, 8)  # (1797, 64) in 0..16 -> (1797, 1, 8, 8) in 0..1
    labels = bunch.target.astype(np.int64)
    train, test = stratified_split(labels, TEST_PER_CLASS, SPLIT_SEED)
    mean, std = scaled[train].mean(), scaled[train].std()  # scalars from the training split only
    images = ((scaled - mean) / std).astype(np.float32)
    return take_splits(images, labels, train, test)


def load(split: str = "train", *, seed: int = 0) -> AicomputeDataset:
    """The ``split`` ("train", "test" or "val" = "test") as a data set; ``seed`` is ignored (fixed split)."""
    return load_fixed_split(split, _arrays, info())
