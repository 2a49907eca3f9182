import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from aicompute.errors import AicomputeError
from aicompute.train.batching import as_loader, num_batches, resolve_device, split_batch, to_device


def _data(n: int = 10) -> TensorDataset:
    return TensorDataset(torch.arange(n * 2, dtype=torch.float32).reshape(n, 2), torch.arange(n))


def test_sequential_batches_are_consecutive_slices_with_a_short_last_batch():
    ds = _data(10)
    batches = list(as_loader(ds, batch_size=4, shuffle=False))
    assert [len(t) for _, t in batches] == [4, 4, 2]
    for i, (x, y) in enumerate(batches):
        assert torch.equal(x, ds.tensors[0][4 * i : 4 * i + 4])
        assert torch.equal(y, ds.tensors[1][4 * i : 4 * i + 4])


@pytest.mark.parametrize("seed", [0, 3])
def test_shuffled_batches_equal_torchs_own_dataloader_with_the_same_generator(seed):
    ds = _data(23)
    ours = list(as_loader(ds, batch_size=5, shuffle=True, seed=seed))
    reference = DataLoader(ds, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(seed))
    theirs = list(reference)
    assert len(ours) == len(theirs) == 5
    for (x, y), (rx, ry) in zip(ours, theirs, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)


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
    assert num_batches(loader) == 4


def test_num_batches_is_none_without_a_length():
    assert num_batches(iter([1, 2])) is None


@pytest.mark.parametrize(
    "data, match",
    [
        ((torch.zeros(3, 2), torch.zeros(4)), "same number of examples"),
        (TensorDataset(torch.zeros(0, 2), torch.zeros(0)), "empty"),
        ([1, 2, 3], "must be a DataLoader"),
        ("mnist", "must be a DataLoader"),
    ],
)
def test_unusable_data_is_an_error(data, match):
    with pytest.raises(AicomputeError, match=match):
        as_loader(data, batch_size=2, shuffle=False, name="train")


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_batch_size_must_be_a_positive_integer(bad):
    with pytest.raises(AicomputeError, match="batch_size"):
        as_loader(_data(), batch_size=bad, shuffle=False)


def test_split_batch_accepts_pairs_only():
    x, y = torch.zeros(2), torch.ones(2)
    assert split_batch((x, y)) == (x, y)
    assert split_batch([x, y])[1] is y
    with pytest.raises(AicomputeError, match="3 items"):
        split_batch((x, y, y))
    with pytest.raises(AicomputeError, match="pair"):
        split_batch(x)


def test_to_device_moves_nested_tensors_and_keeps_the_rest():
    value = {"a": torch.zeros(1), "b": (torch.ones(1), 3), "c": [torch.ones(2)]}
    moved = to_device(value, torch.device("meta"))
    assert moved["a"].device.type == "meta"
    assert moved["b"][0].device.type == "meta" and moved["b"][1] == 3
    assert isinstance(moved["b"], tuple) and isinstance(moved["c"], list)


def test_resolve_device_defaults_to_the_models_device():
    assert resolve_device(nn.Linear(2, 2), None) == torch.device("cpu")
    assert resolve_device(nn.ReLU(), None) == torch.device("cpu")  # no parameters
    assert resolve_device(nn.Linear(2, 2), "cpu") == torch.device("cpu")


def test_resolve_device_rejects_unusable_devices():
    with pytest.raises(AicomputeError, match="unknown device"):
        resolve_device(nn.Linear(2, 2), "tpu-ish")
    with pytest.raises(AicomputeError, match="meta device"):
        resolve_device(nn.Linear(2, 2, device="meta"), None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is missing")
def test_resolve_device_names_missing_cuda():
    with pytest.raises(AicomputeError, match="CUDA is not available"):
        resolve_device(nn.Linear(2, 2), "cuda")


@pytest.mark.parametrize("shuffle", [True, False])
def test_iterating_never_draws_from_the_global_generator(shuffle):
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    for _ in as_loader(_data(), batch_size=3, shuffle=shuffle, seed=4):
        pass
    assert torch.equal(torch.rand(3), expected)
