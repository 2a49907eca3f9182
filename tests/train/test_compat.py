"""check_fits: model/data compatibility decided from DatasetInfo records and zoo arguments, before running."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.train.checkpoint import Checkpoint
from aicompute.train.compat import check_fits, data_info

VECTORS = DatasetInfo(name="vec", task="classification", input_shape=(8,), num_classes=3, kind="signal")
IMAGES = DatasetInfo(name="img", task="classification", input_shape=(1, 8, 8), num_classes=10)
TOKENS = DatasetInfo(name="txt", task="language-modeling", input_shape=(8,), num_classes=50, input_dtype="int64",
                     kind="tokens")


def _checkpoint(name: str, kwargs: dict, trained: DatasetInfo | None = None) -> Checkpoint:
    """A loaded checkpoint's record; the model itself is never run by check_fits."""
    dataset = None if trained is None else {"name": trained.name, "info": trained.to_dict()}
    return Checkpoint(model=nn.Identity(), model_name=name, model_kwargs=kwargs, metrics=None, dataset=dataset,
                      extra=None, path=Path("m.pt"))


def _data(info: DatasetInfo) -> SimpleNamespace:
    return SimpleNamespace(info=info)


def test_data_info_reads_the_data_set_or_the_loaders_data_set():
    ds = TensorDataset(torch.zeros(2, 8), torch.zeros(2, dtype=torch.long))
    ds.info = VECTORS
    assert data_info(ds) is VECTORS and data_info(DataLoader(ds)) is VECTORS
    assert data_info((torch.zeros(2, 8), torch.zeros(2))) is None and data_info(_data("not an info")) is None


def test_the_recorded_data_set_must_agree_on_shape_dtype_task_and_classes():
    other = DatasetInfo(name="other", task="classification", input_shape=(4,), num_classes=3, kind="signal")
    ckpt = _checkpoint("x.y:z", {}, trained=VECTORS)  # an imported model: only the record is compared
    with pytest.raises(AicomputeError, match=r"trained on 'vec' \(input_shape=\(8,\)\) but data set 'other' has "
                                             r"input_shape=\(4,\); evaluate it on a data set of the same kind"):
        check_fits(ckpt, _data(other))
    renamed = DatasetInfo(name="copy", task="classification", input_shape=(8,), num_classes=3, kind="tensor")
    check_fits(ckpt, _data(renamed))  # the name and kind may differ


@pytest.mark.parametrize(("name", "kwargs", "info", "wrong"), [
    ("perceptron", {"in_features": 8, "num_classes": 4}, VECTORS, "num_classes=4 where the data needs 3"),
    ("perceptron", {"in_features": 9, "num_classes": 3}, VECTORS, "in_features=9 where the data needs 8"),
    ("perceptron", {"num_classes": 3}, VECTORS, "in_features=784 where the data needs 8"),  # factory default
    ("lenet5", {"num_classes": 10, "in_channels": 1, "image_size": 32}, IMAGES,
     r"image_size=\(32, 32\) where the data needs \(8, 8\)"),
    ("char-gru", {"vocab_size": 51, "block_size": 8}, TOKENS, "vocab_size=51 where the data needs 50"),
    ("char-gru", {"vocab_size": 50, "block_size": 4}, TOKENS, "block_size=4 where the data needs at least 8"),
])
def test_zoo_arguments_must_fit_the_data_set(name, kwargs, info, wrong):
    with pytest.raises(AicomputeError, match=rf"model '{name}' of 'm.pt' cannot read data set '{info.name}' "
                                             rf".*built with {wrong}"):
        check_fits(_checkpoint(name, kwargs), _data(info))


@pytest.mark.parametrize(("name", "kwargs", "info"), [
    ("perceptron", {"in_features": 8, "num_classes": 3}, VECTORS),
    ("perceptron", {"in_features": 64, "num_classes": 10}, IMAGES),  # flattened: 1·8·8 features
    ("lenet5", {"num_classes": 10, "in_channels": 1, "image_size": 8}, IMAGES),  # an int is (n, n)
    ("lenet5", {"num_classes": 10, "in_channels": 1, "image_size": [8, 8]}, IMAGES),
    ("char-gru", {"vocab_size": 50, "block_size": 64}, TOKENS),  # a longer context reads shorter sequences
])
def test_zoo_arguments_that_fit_pass(name, kwargs, info):
    check_fits(_checkpoint(name, kwargs), _data(info))


def test_a_family_that_cannot_read_the_data_is_refused_by_its_adapter():
    with pytest.raises(AicomputeError, match="reads images .*same kind"):
        check_fits(_checkpoint("lenet5", {}), _data(TOKENS))


def test_an_imported_model_is_not_resolved_for_zoo_arguments():
    check_fits(_checkpoint("no_such_pkg_xyz:build", {"num_classes": 99}), _data(VECTORS))  # nothing imported


@pytest.mark.parametrize(("data", "got"), [
    ((torch.zeros(3, 5), torch.zeros(3, dtype=torch.long)), r"\(5,\) \(float32\)"),
    (TensorDataset(torch.zeros(3, 8, dtype=torch.int64), torch.zeros(3, dtype=torch.long)), r"\(8,\) \(int64\)"),
])
def test_raw_data_is_compared_with_the_recorded_example_shape_and_dtype(data, got):
    with pytest.raises(AicomputeError, match=rf"examples of shape \(8,\) \(float32\), but the given data has "
                                             rf"examples of shape {got}"):
        check_fits(_checkpoint("perceptron", {"in_features": 8, "num_classes": 3}, trained=VECTORS), data)


def test_raw_data_passes_when_it_matches_or_cannot_be_checked():
    ckpt = _checkpoint("perceptron", {"in_features": 8, "num_classes": 3}, trained=VECTORS)
    check_fits(ckpt, (torch.zeros(3, 8), torch.zeros(3, dtype=torch.long)))
    reshaping = DataLoader(TensorDataset(torch.zeros(3, 2, 4)), collate_fn=lambda b: b)  # its collate may reshape
    check_fits(ckpt, reshaping)
    check_fits(_checkpoint("perceptron", {}), (torch.zeros(3, 5), torch.zeros(3)))  # nothing recorded
