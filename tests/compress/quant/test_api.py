"""quantize_checkpoint: PTQ, QAT and mixed precision of a checkpoint file, which is never modified."""

import hashlib

import pytest

from aicompute.compress.quant.api import quantize_checkpoint
from aicompute.compress.quant.ptq import QuantConfig
from aicompute.errors import AicomputeError
from aicompute.train import train_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "mlp.pt"
    train_model("mlp", "digits", epochs=2, seed=0, out=path)
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ptq_of_a_checkpoint_with_receipt(checkpoint, tmp_path):
    before = _digest(checkpoint)
    run = quantize_checkpoint(checkpoint, export=tmp_path / "mlp.onnx")
    assert _digest(checkpoint) == before
    record = run.to_dict()
    assert record["model"] == "mlp" and record["data"] == "digits"
    assert record["receipt"]["integer_ops"] and (tmp_path / "mlp.onnx").exists()
    assert abs(record["accuracy_drop_pt"]) <= 1.5


def test_qat_and_mixed_paths(checkpoint):
    qat_run = quantize_checkpoint(checkpoint, config=QuantConfig(bits=4), qat_epochs=1, receipt=False)
    assert qat_run.result.method == "qat" and qat_run.receipt is None
    mixed = quantize_checkpoint(checkpoint, config=QuantConfig(bits=2, act_bits=None), mixed=True,
                                budget_pt=50.0, receipt=False)
    assert mixed.result.method == "ptq-mixed"
    with pytest.raises(AicomputeError, match="not both"):
        quantize_checkpoint(checkpoint, qat_epochs=1, mixed=True)
    with pytest.raises(AicomputeError, match="qat_epochs"):
        quantize_checkpoint(checkpoint, qat_epochs=-1)
