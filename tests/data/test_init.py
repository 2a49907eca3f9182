"""The public API in aicompute/data/__init__.py: names, errors, info, loaders."""

import pytest
import torch

from aicompute.data import (AicomputeDataset, CharDataset, as_loader, dataset_info, describe_datasets,
                            get_dataset, get_loader, list_datasets)
from aicompute.errors import AicomputeError

SMALL = {"synthetic": {"shape": (4,), "size": 40}, "chars": {"max_chars": 5000, "block_size": 16}}


def test_list_and_describe():
    assert list_datasets() == ["chars", "digits", "mnist", "mnist1d", "synthetic"]
    descriptions = describe_datasets()
    assert list(descriptions) == list_datasets() and all(descriptions.values())


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(AicomputeError, match=r"unknown data set 'minst' \(did you mean 'mnist'\?\); known data "
                                             r"sets: chars, digits, mnist, mnist1d, synthetic"):
        get_dataset("minst")
    with pytest.raises(AicomputeError, match="unknown data set 'cifar10'; known data sets: chars"):
        dataset_info("cifar10")


def test_unknown_split_says_which_exist():
    with pytest.raises(AicomputeError, match=r"unknown split 'validation' for 'digits'; expected one of: "
                                             r"train, test \(alias: 'val' = 'test'\)"):
        get_dataset("digits", "validation")


def test_unknown_options_name_the_accepted_ones():
    with pytest.raises(AicomputeError, match="data set 'mnist' has no option 'block_size'; it takes no options"):
        get_dataset("mnist", block_size=8)
    with pytest.raises(AicomputeError, match="data set 'chars' has no option 'shape'; it takes: block_size, "
                                             "max_chars, stride"):
        dataset_info("chars", shape=(3,))


@pytest.mark.parametrize("name", ["chars", "digits", "mnist", "mnist1d", "synthetic"])
def test_info_agrees_with_the_data(name):
    options = SMALL.get(name, {})
    info = dataset_info(name, **options)
    for split in ("train", "val"):
        ds = get_dataset(name, split, **options)
        assert isinstance(ds, AicomputeDataset) and ds.info == info
        assert ds.split == ("train" if split == "train" else "test")
        assert tuple(ds.inputs.shape[1:]) == info.input_shape
        assert str(ds.inputs.dtype) == f"torch.{info.input_dtype}" and ds.targets.dtype == torch.int64
        assert int(ds.targets.max()) < info.num_classes
    assert isinstance(get_dataset("chars", **SMALL["chars"]), CharDataset)


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_loader_order_is_seeded():
    a = _batches(get_loader("digits", batch_size=100, seed=1))
    b = _batches(get_loader("digits", batch_size=100, seed=1))
    c = _batches(get_loader("digits", batch_size=100, seed=2))
    assert len(a) == 15 and a[0][0].shape == (100, 1, 8, 8) and a[-1][0].shape == (37, 1, 8, 8)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1])
    data = get_dataset("digits")  # one epoch is a permutation of the training split
    seen = torch.cat([x for x, _ in a]).reshape(-1, 64).numpy()
    assert sorted(r.tobytes() for r in seen) == sorted(r.tobytes() for r in data.inputs.reshape(-1, 64).numpy())
    assert torch.equal(torch.cat([y for _, y in a]).sort().values, data.targets.sort().values)
    assert not torch.equal(torch.cat([y for _, y in a]), data.targets)  # but not in order


def test_loader_keeps_test_order_and_accepts_a_data_set():
    test = get_dataset("digits", "test")
    x, y = next(iter(get_loader("digits", "val", batch_size=50)))
    assert torch.equal(x, test.inputs[:50]) and torch.equal(y, test.targets[:50])
    x2, _ = next(iter(get_loader(test, batch_size=50)))
    assert torch.equal(x2, x)
    shuffled, _ = next(iter(get_loader(test, batch_size=50, shuffle=True)))
    assert not torch.equal(shuffled, x)
    lm = get_loader("chars", batch_size=8, drop_last=True, **SMALL["chars"])
    xb, yb = next(iter(lm))
    assert xb.shape == yb.shape == (8, 16) and torch.equal(xb[:, 1:], yb[:, :-1])


def test_loader_errors():
    test = get_dataset("synthetic", "test", shape=(2,), size=8)
    with pytest.raises(AicomputeError, match="split='train' does not match the given data set's split 'test'"):
        get_loader(test, "train")
    with pytest.raises(AicomputeError, match=r"data set options \(size\) only apply when the data set is given"):
        get_loader(test, size=4)
    with pytest.raises(AicomputeError, match="batch_size must be a positive integer, got 0"):
        get_loader("synthetic", batch_size=0)
    with pytest.raises(AicomputeError, match="num_workers must be a non-negative integer, got -1"):
        get_loader("synthetic", num_workers=-1)
    with pytest.raises(AicomputeError, match="got a DataLoader already"):
        get_loader(get_loader(test))


def test_loader_batches_are_those_of_as_loader():
    """get_loader is get_dataset + as_loader: the same seed gives the same batches either way."""
    train = get_dataset("synthetic", seed=4, shape=(3,), size=30)  # the seed also draws synthetic's content
    ours = [y for _, y in get_loader("synthetic", batch_size=8, seed=4, shape=(3,), size=30)]
    direct = [y for _, y in as_loader(train, batch_size=8, shuffle=True, seed=4)]
    assert all(torch.equal(a, b) for a, b in zip(ours, direct, strict=True))


def test_loader_iteration_leaves_the_global_generator_alone():
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    for _ in get_loader("synthetic", batch_size=16, shape=(3,), size=40):
        pass
    assert torch.equal(torch.rand(2), expected)


@pytest.mark.parametrize(("seed", "message"), [(-1, r"seed must be in \[0, 4294967295\]"),
                                               ("0", "seed must be an integer")])
def test_every_data_set_checks_its_seed(seed, message):
    with pytest.raises(AicomputeError, match=message):
        get_dataset("digits", seed=seed)  # digits ignores the seed, but a bad one is still a mistake
