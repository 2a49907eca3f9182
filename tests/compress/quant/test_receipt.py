"""The receipt: sizes are the files' real sizes, the int8 model really uses integer kernels, warnings fire."""

import pytest
import torch
from torch import nn

from aicompute.compress.quant.ptq import QuantConfig, quantize
from aicompute.compress.quant.receipt import Receipt, _warnings, make_receipt


def _conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4)).eval()


def test_receipt_measures_real_files(tmp_path):
    x = torch.randn(16, 1, 8, 8)
    y = torch.randint(0, 4, (16,))
    result = quantize(_conv_net(), [x], QuantConfig(), eval_data=(x, y))
    receipt = make_receipt(result, [x], (x, y), path=tmp_path / "m.onnx", batch_size=16, repeats=3)
    assert receipt.quant_bytes == (tmp_path / "m.onnx").stat().st_size
    assert receipt.float_bytes == (tmp_path / "m.fp32.onnx").stat().st_size
    assert receipt.quant_bytes < receipt.float_bytes
    assert receipt.integer_ops.get("QLinearConv", 0) == 2
    assert receipt.float_ms > 0 and receipt.quant_ms > 0 and receipt.torch_ms > 0
    assert receipt.batch_size == 16
    assert abs(receipt.ort_accuracy - result.accuracy) <= 1 / 16  # ORT equals the simulation up to a code flip
    assert receipt.to_dict()["size_ratio"] == pytest.approx(receipt.float_bytes / receipt.quant_bytes)


def test_receipt_without_a_path_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    x = torch.randn(4, 1, 8, 8)
    result = quantize(_conv_net(), [x], QuantConfig())
    receipt = make_receipt(result, [x], batch_size=4, repeats=2)
    assert receipt.path is None and receipt.ort_accuracy is None
    assert not any(tmp_path.rglob("*.onnx"))


def test_warnings_say_what_went_wrong():
    bad = Receipt(float_bytes=100, quant_bytes=120, batch_size=1, float_ms=1.0, quant_ms=2.0, torch_ms=1.0,
                  integer_ops={}, float_accuracy=0.9, sim_accuracy=0.9, ort_accuracy=0.8, budget_pt=0.5)
    text = " | ".join(_warnings(bad))
    for fragment in ("not faster", "no smaller", "no integer kernel", "more than the budget", "simulation"):
        assert fragment in text
    good = Receipt(float_bytes=400, quant_bytes=100, batch_size=1, float_ms=2.0, quant_ms=1.0, torch_ms=1.0,
                   integer_ops={"QLinearConv": 1}, float_accuracy=0.9, sim_accuracy=0.9, ort_accuracy=0.9,
                   budget_pt=0.5)
    assert _warnings(good) == []
