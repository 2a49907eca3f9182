import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.data.base import AicomputeDataset, canonical_split, load_fixed_split, stratified_split, take_splits
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


def test_take_splits_cuts_both_arrays_by_the_same_indices():
    inputs, targets = np.arange(12).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1])
    out = take_splits(inputs, targets, np.array([0, 2, 5]), np.array([1, 3]))
    assert set(out) == {"train", "test"}
    assert out["train"][0].tolist() == [[0, 1], [4, 5], [10, 11]] and out["train"][1].tolist() == [0, 0, 1]
    assert out["test"][0].tolist() == [[2, 3], [6, 7]] and out["test"][1].tolist() == [1, 1]


def test_load_fixed_split_checks_the_name_first_and_hands_out_copies():
    cache = {
        "train": (np.zeros((4, 3), dtype=np.float32), np.array([0, 1, 0, 1])),
        "test": (np.ones((2, 3), dtype=np.float32), np.array([1, 0])),
    }
    calls = []

    def arrays():
        calls.append(1)
        return cache

    with pytest.raises(AicomputeError, match=r"unknown split 'dev' for 'toy'"):
        load_fixed_split("dev", arrays, INFO)
    assert calls == []  # a bad name never reaches the (possibly slow) arrays
    ds = load_fixed_split("val", arrays, INFO)
    assert ds.split == "test" and ds.info is INFO and len(ds) == 2
    assert torch.equal(ds.inputs, torch.ones(2, 3)) and ds.targets.tolist() == [1, 0]
    ds.inputs.zero_()  # the caller's copy ...
    ds.targets.fill_(5)
    assert cache["test"][0].min() == 1 and cache["test"][1].tolist() == [1, 0]  # ... is not the cache
    assert len(load_fixed_split("train", arrays, INFO)) == 4
