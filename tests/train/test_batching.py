import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aicompute.errors import AicomputeError
from aicompute.train.batching import num_batches, resolve_device, split_batch, to_device


def test_num_batches_is_the_loaders_length_or_none():
    assert num_batches(DataLoader(TensorDataset(torch.zeros(10)), batch_size=3)) == 4  # ceil(10 / 3)
    assert num_batches(iter([1, 2])) is None


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
