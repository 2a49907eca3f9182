import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.data.base import AicomputeDataset, canonical_split, stratified_split
from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError

INFO = DatasetInfo(name="toy", task="classification", input_shape=(3,), num_classes=2, kind="signal")


def test_canonical_split_names_and_alias():
    assert canonical_split("train") == "train"
    assert canonical_split("test") == "test"
    assert canonical_split("val") == "test"
    with pytest.raises(AicomputeError, match=r"unknown split 'dev' for 'toy'; expected one of: train, test"):
        canonical_split("dev", "'toy'")


def test_dataset_holds_tensors_info_and_canonical_split():
    x, y = torch.zeros(5, 3), torch.arange(5) % 2
    ds = AicomputeDataset(x, y, info=INFO, split="val")
    assert ds.split == "test" and ds.info is INFO and len(ds) == 5
    assert ds.inputs is x and ds.targets is y
    xi, yi = ds[4]
    assert torch.equal(xi, x[4]) and yi.item() == 0
    assert "split='test'" in repr(ds) and "n=5" in repr(ds)


def test_dataset_rejects_tensors_that_contradict_info():
    with pytest.raises(ValueError, match="input_shape"):
        AicomputeDataset(torch.zeros(5, 4), torch.zeros(5, dtype=torch.int64), info=INFO, split="train")
    with pytest.raises(ValueError, match="dtypes"):
        AicomputeDataset(torch.zeros(5, 3), torch.zeros(5), info=INFO, split="train")
    with pytest.raises(AssertionError):  # TensorDataset's own length check
        AicomputeDataset(torch.zeros(5, 3), torch.zeros(4, dtype=torch.int64), info=INFO, split="train")


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(2, 30), min_size=1, max_size=6), k=st.integers(1, 5), seed=st.integers(0, 99))
def test_stratified_split_is_an_exact_per_class_partition(counts, k, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    if min(counts) <= k:
        with pytest.raises(ValueError, match="cannot hold out"):
            stratified_split(labels, k, seed)
        return
    train, test = stratified_split(labels, k, seed)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))  # a partition
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted, no repeats
    assert np.array_equal(np.bincount(labels[test], minlength=len(counts)), np.full(len(counts), k))
    again_train, again_test = stratified_split(labels, k, seed)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)
