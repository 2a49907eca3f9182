import pytest
import torch

from aicompute.data import synthetic
from aicompute.errors import AicomputeError


def test_default_sizes_shapes_and_dtypes():
    train, test = synthetic.load("train"), synthetic.load("test")
    assert train.inputs.shape == (1024, 3, 32, 32) and test.inputs.shape == (256, 3, 32, 32)
    assert train.inputs.dtype == torch.float32 and train.targets.dtype == torch.int64
    assert train.targets.min() >= 0 and train.targets.max() <= 9
    assert train.info == synthetic.info() and train.info.task == "classification"


def test_same_seed_same_tensors_splits_and_seeds_differ():
    a = synthetic.load("train", seed=3, shape=(5,), size=64)
    b = synthetic.load("train", seed=3, shape=(5,), size=64)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    other_seed = synthetic.load("train", seed=4, shape=(5,), size=64)
    assert not torch.equal(a.inputs, other_seed.inputs)
    test = synthetic.load("test", seed=3, shape=(5,), size=64)
    assert len(test) == 16 and not torch.equal(test.inputs, a.inputs[:16])
    val = synthetic.load("val", seed=3, shape=(5,), size=64)
    assert val.split == "test" and torch.equal(val.inputs, test.inputs)


def test_inputs_are_standard_normal_and_labels_cover_the_classes():
    ds = synthetic.load("train", seed=0, shape=(64,), num_classes=3, size=2000)
    assert abs(ds.inputs.mean().item()) < 0.01 and abs(ds.inputs.std().item() - 1) < 0.01  # 128,000 draws
    counts = torch.bincount(ds.targets, minlength=3)
    assert counts.shape == (3,) and counts.min() > 550  # ≈ 667 each


@pytest.mark.parametrize(("shape", "kind"), [((3, 8, 8), "image"), ((40,), "signal"), ((4, 5), "tensor"),
                                             ((1, 2, 3, 4), "tensor"), ([2, 6, 6], "image")])
def test_kind_follows_the_shape(shape, kind):
    info = synthetic.info(shape=shape)
    assert info.kind == kind and info.input_shape == tuple(shape)
    assert synthetic.load(shape=shape, size=4).inputs.shape == (4, *shape)


def test_small_sizes_keep_one_test_example():
    assert [synthetic.split_size("test", n) for n in (1, 3, 4, 9)] == [1, 1, 1, 2]
    assert len(synthetic.load("test", size=2, shape=(2,))) == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"shape": ()}, r"shape must be a non-empty sequence of positive integers such as \(3, 32, 32\), got \(\)"),
    ({"shape": (3, 0)}, r"every dimension of shape \(3, 0\) must be a positive integer, got 0"),
    ({"shape": (3, 2.0)}, "every dimension of shape"),
    ({"shape": "3,32,32"}, "shape must be"),
    ({"num_classes": 1}, "num_classes must be an integer >= 2, got 1"),
    ({"size": 0}, r"size \(training examples\) must be a positive integer, got 0"),
    ({"size": 2.5}, r"size \(training examples\) must be a positive integer, got 2.5"),
])
def test_bad_options_are_user_errors(options, message):
    with pytest.raises(AicomputeError, match=message):
        synthetic.load(**options)
    with pytest.raises(AicomputeError, match=message):
        synthetic.info(**options)


@pytest.mark.parametrize(("seed", "message"), [(-1, r"seed must be in \[0, 4294967295\], got -1"),
                                               (2**32, "seed must be in"), (1.0, "seed must be an integer"),
                                               (True, "seed must be an integer")])
def test_seed_is_checked_like_everywhere_else(seed, message):
    with pytest.raises(AicomputeError, match=message):
        synthetic.load(seed=seed, shape=(2,), size=4)


def test_the_largest_seed_is_accepted():
    assert len(synthetic.load(seed=2**32 - 1, shape=(2,), size=4)) == 4
