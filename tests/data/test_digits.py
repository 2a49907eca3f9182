import numpy as np
import pytest
import torch

from aicompute.data import digits


@pytest.fixture(scope="module")
def splits():
    return digits.load("train"), digits.load("test")


def test_sizes_shapes_and_stratified_split(splits):
    train, test = splits
    assert (len(train), len(test)) == (1437, 360)
    assert train.inputs.shape == (1437, 1, 8, 8) and test.inputs.shape == (360, 1, 8, 8)
    assert train.inputs.dtype == torch.float32 and test.targets.dtype == torch.int64
    assert torch.equal(torch.bincount(test.targets, minlength=10), torch.full((10,), 36))
    assert train.info == digits.info() and train.info.kind == "image"


def test_training_split_is_standardised(splits):
    train, test = splits
    assert abs(train.inputs.double().mean().item()) < 1e-6
    assert abs(train.inputs.double().std(unbiased=False).item() - 1) < 1e-5
    assert abs(test.inputs.mean().item()) < 0.1  # test uses the training statistics: close, not exact


def test_one_affine_map_of_sklearn_pixels_and_an_exact_partition(splits):
    from sklearn.datasets import load_digits

    train, test = splits
    both = torch.cat([train.inputs, test.inputs]).double().reshape(-1, 64)
    # Pixels are counts 0..16 and both extremes occur, so min/max pin down the affine map z = a * x + b.
    lo, hi = both.min(), both.max()
    counts = (both - lo) / (hi - lo) * 16
    assert torch.allclose(counts, counts.round(), atol=1e-4)
    ours = sorted(row.tobytes() + bytes([y]) for row, y in zip(counts.round().to(torch.uint8).numpy(),
                                                               torch.cat([train.targets, test.targets]).tolist()))
    bunch = load_digits()
    reference = sorted(row.tobytes() + bytes([int(y)]) for row, y in zip(bunch.data.astype(np.uint8), bunch.target))
    assert ours == reference


def test_split_ignores_seed_and_val_is_test(splits):
    _, test = splits
    val = digits.load("val", seed=7)
    assert val.split == "test" and torch.equal(val.inputs, test.inputs)
