"""as_loader / make_generator: the one DataLoader builder behind get_loader, fit and evaluate."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from aicompute.checks import MAX_SEED
from aicompute.data.loader import as_loader, make_generator
from aicompute.errors import AicomputeError


def _data(n: int = 10) -> TensorDataset:
    return TensorDataset(torch.arange(n * 2, dtype=torch.float32).reshape(n, 2), torch.arange(n))


def test_sequential_batches_are_consecutive_slices_with_a_short_last_batch():
    ds = _data(10)
    batches = list(as_loader(ds, batch_size=4, shuffle=False))
    assert [len(t) for _, t in batches] == [4, 4, 2]
    for i, (x, y) in enumerate(batches):
        assert torch.equal(x, ds.tensors[0][4 * i : 4 * i + 4])
        assert torch.equal(y, ds.tensors[1][4 * i : 4 * i + 4])


@pytest.mark.parametrize("dataset", ["tensor", "generic"])
def test_drop_last_drops_the_short_batch(dataset):
    ds = _data(10) if dataset == "tensor" else _Squares()  # 10 and 5 examples
    batches = list(as_loader(ds, batch_size=4, shuffle=False, drop_last=True))
    assert [len(t) for _, t in batches] == ([4, 4] if dataset == "tensor" else [4])


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffled_batches_equal_torchs_own_dataloader_with_the_same_generator(seed, drop_last):
    ds = _data(23)
    ours = list(as_loader(ds, batch_size=5, shuffle=True, seed=seed, drop_last=drop_last))
    reference = DataLoader(ds, batch_size=5, shuffle=True, drop_last=drop_last,
                           generator=torch.Generator().manual_seed(seed))
    theirs = list(reference)
    assert len(ours) == len(theirs) == (4 if drop_last else 5)
    for (x, y), (rx, ry) in zip(ours, theirs, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_every_pass_reshuffles_but_the_sequence_of_passes_repeats():
    ds = _data(30)
    order = lambda loader: torch.cat([y for _, y in loader])  # noqa: E731
    a, b = as_loader(ds, batch_size=7, shuffle=True, seed=9), as_loader(ds, batch_size=7, shuffle=True, seed=9)
    first, second = order(a), order(a)
    assert not torch.equal(first, second)  # epoch 2 is another permutation
    assert torch.equal(first, order(b)) and torch.equal(second, order(b))


def test_shuffling_depends_on_the_seed_and_covers_every_example_once():
    ds = _data(40)
    order = lambda s: torch.cat([y for _, y in as_loader(ds, batch_size=8, shuffle=True, seed=s)])  # noqa: E731
    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))
    assert sorted(order(1).tolist()) == list(range(40))


class _Squares(Dataset):
    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int):
        return torch.tensor([float(i)]), i * i


class _Doubling(TensorDataset):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return 2 * x, y


def test_a_generic_dataset_is_collated_example_by_example():
    (x, y), = list(as_loader(_Squares(), batch_size=8, shuffle=False))
    assert torch.equal(x, torch.arange(5.0).unsqueeze(1))
    assert y.tolist() == [0, 1, 4, 9, 16]


def test_a_tensor_dataset_subclass_with_its_own_getitem_keeps_it():
    ds = _Doubling(torch.ones(3, 1), torch.zeros(3))
    (x, _), = list(as_loader(ds, batch_size=3, shuffle=False))
    assert torch.equal(x, torch.full((3, 1), 2.0))


def test_a_pair_of_tensors_becomes_a_dataset():
    x, y = torch.randn(6, 3), torch.arange(6)
    batches = list(as_loader((x, y), batch_size=4, shuffle=False))
    assert torch.equal(torch.cat([b[0] for b in batches]), x)


def test_a_dataloader_is_used_as_it_is():
    loader = DataLoader(_data(), batch_size=3)
    assert as_loader(loader, batch_size=64, shuffle=True) is loader


def test_workers_give_the_same_batches():
    ds = _data(12)
    one = [y for _, y in as_loader(ds, batch_size=5, shuffle=True, seed=2)]
    two = [y for _, y in as_loader(ds, batch_size=5, shuffle=True, seed=2, num_workers=1)]
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


@pytest.mark.parametrize(
    "data, match",
    [
        ((torch.zeros(3, 2), torch.zeros(4)), "same number of examples"),
        ((torch.zeros(()), torch.zeros(())), "same number of examples"),
        (TensorDataset(torch.zeros(0, 2), torch.zeros(0)), "empty"),
        ([1, 2, 3], "must be a DataLoader"),
        ("mnist", "must be a DataLoader"),
    ],
)
def test_unusable_data_is_an_error(data, match):
    with pytest.raises(AicomputeError, match=f"^train.*{match}"):  # the message names the argument
        as_loader(data, batch_size=2, shuffle=False, name="train")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"num_workers": -1}, "num_workers must be a non-negative integer, got -1"),
        ({"seed": -1}, r"seed must be in \[0, 4294967295\]"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs, match):
    with pytest.raises(AicomputeError, match=match):
        as_loader(_data(), **{"batch_size": 2, "shuffle": False, **kwargs})


@pytest.mark.parametrize("shuffle", [True, False])
def test_iterating_never_draws_from_the_global_generator(shuffle):
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    for _ in as_loader(_data(), batch_size=3, shuffle=shuffle, seed=4):
        pass
    for _ in as_loader(_Squares(), batch_size=2, shuffle=shuffle, seed=4):
        pass
    assert torch.equal(torch.rand(3), expected)


def test_generator_is_reproducible_and_independent_of_global_state():
    a = torch.randperm(20, generator=make_generator(5))
    torch.manual_seed(999)
    torch.rand(100)  # consume global random numbers: the data order must not change
    b = torch.randperm(20, generator=make_generator(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.randperm(20, generator=make_generator(6)))
    assert torch.equal(make_generator(MAX_SEED).get_state(), torch.Generator().manual_seed(MAX_SEED).get_state())


def test_unseeded_generator_differs_between_calls():
    draws = {tuple(torch.randperm(30, generator=make_generator(None)).tolist()) for _ in range(3)}
    assert len(draws) > 1


@pytest.mark.parametrize("bad", [-1, MAX_SEED + 1, 1.5, "3", True])
def test_generator_refuses_bad_seeds(bad):
    with pytest.raises(AicomputeError, match="seed must be"):
        make_generator(bad)
