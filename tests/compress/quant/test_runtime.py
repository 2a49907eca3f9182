"""ONNX Runtime execution: the integer kernels ORT really picks for a QDQ export, outputs and accuracy
against torch, latency, ORT's own quantize_static for comparison, and clear errors."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aicompute.compress.quant.export import export_onnx, export_qdq
from aicompute.compress.quant.qparams import QScheme, compute_qparams
from aicompute.compress.quant.runtime import (
    INTEGER_OPS,
    integer_ops,
    optimized_op_counts,
    ort_accuracy,
    ort_latency_ms,
    ort_quantize_static,
    ort_run,
    ort_session,
)
from aicompute.errors import AicomputeError
from aicompute.train import evaluate

LAYERS = ("conv1", "conv2", "fc", "head")


class ConvTokens(nn.Module):
    """Two convs, then a linear over the (B, H·W, C) pixel "tokens" (ONNX MatMul), then a linear head (Gemm)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(3, 8, 3), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(8, 8, 3), nn.ReLU()
        self.fc, self.head = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x):
        h = self.relu2(self.conv2(self.relu1(self.conv1(x))))  # (B, 8, H, W)
        tokens = h.flatten(2).transpose(1, 2)  # (B, H·W, 8)
        return self.head(torch.relu(self.fc(tokens)).mean(dim=1))  # (B, 4)


def _qparams(model: nn.Module, x: torch.Tensor, bits: int = 8):
    modules, seen = dict(model.named_modules()), {}
    hooks = [modules[n].register_forward_pre_hook(lambda m, i, n=n: seen.__setitem__(n, i[0])) for n in LAYERS]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    weights = {}
    for n in LAYERS:
        w = modules[n].weight.detach()
        dims = tuple(range(1, w.dim()))
        weights[n] = compute_qparams(w.amin(dim=dims), w.amax(dim=dims), QScheme(bits=bits, axis=0))
    inputs = {n: compute_qparams(t.min(), t.max(), QScheme(symmetric=False, signed=False)) for n, t in seen.items()}
    return weights, inputs


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    model = ConvTokens().eval()
    x = torch.randn(32, 3, 8, 8)
    folder = tmp_path_factory.mktemp("ort")
    weights, inputs = _qparams(model, x)
    w4, _ = _qparams(model, x, bits=4)
    return {
        "model": model,
        "x": x,
        "fp32": export_onnx(model, x[:2], folder / "fp32.onnx"),
        "int8": export_qdq(model, x[:2], weights, inputs, folder / "int8.onnx").path,
        "int4": export_qdq(model, x[:2], w4, None, folder / "int4.onnx").path,
        "folder": folder,
    }


def test_qdq_export_runs_on_integer_kernels(models):
    ops = integer_ops(models["int8"])
    # both convs become QLinearConv (each ReLU → Q with zero point 0 is dropped by ORT), the linear over
    # tokens (MatMul) MatMulIntegerToFloat, and the head (Gemm with int32 bias) QGemm
    assert ops == {"QLinearConv": 2, "MatMulIntegerToFloat": 1, "QGemm": 1}
    assert set(ops) <= INTEGER_OPS
    assert integer_ops(models["fp32"]) == {}


def test_weight_only_int4_linear_runs_as_matmulnbits(models):
    counts = optimized_op_counts(models["int4"])
    assert counts["MatMulNBits"] == 1  # the token linear: 4-bit weights, fused by ORT
    assert counts["QLinearConv"] == 0  # weight-only: the convs dequantize their weights and run in float
    assert integer_ops(models["int4"]) == {"MatMulNBits": 1}


def test_fp32_onnx_output_equals_torch(models):
    x = torch.randn(5, 3, 8, 8)  # another batch size than exported: the batch is dynamic
    with torch.no_grad():
        expected = models["model"](x)
    session = ort_session(models["fp32"], threads=1)
    torch.testing.assert_close(ort_run(session, x), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ort_run(session, x.numpy()), expected, rtol=1e-4, atol=1e-5)


def test_ort_accuracy_equals_torch_evaluate(models):
    model, x = models["model"], models["x"]
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    targets = predicted.clone()
    targets[20:] = (predicted[20:] + 1) % 4  # 20 of 32 right: accuracy 0.625
    expected = evaluate(model, (x, targets)).accuracy
    assert expected == pytest.approx(20 / 32)
    assert ort_accuracy(models["fp32"], (x, targets)) == expected
    loader = DataLoader(TensorDataset(x, targets), batch_size=7)  # uneven batches
    assert ort_accuracy(models["fp32"], loader) == expected


def test_latency_is_a_positive_median(models):
    ms = ort_latency_ms(models["int8"], models["x"], repeats=3, warmup=1, threads=1)
    assert 0 < ms < 10_000
    with pytest.raises(AicomputeError, match="repeats"):
        ort_latency_ms(models["int8"], models["x"], repeats=0)


def test_ort_quantize_static_per_channel_qdq(models):
    path = ort_quantize_static(
        models["fp32"], [models["x"][:16], models["x"][16:]], models["folder"] / "ort.onnx", activation_type="uint8"
    )
    graph = onnx.load(str(path)).graph
    inits = {t.name: t for t in graph.initializer}
    scales = [inits[n.input[1]] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits]
    per_channel = [t for t in scales if numpy_helper.to_array(t).shape == (8,)]
    assert len(per_channel) >= 2  # one scale per output channel for the 8-channel convs
    assert integer_ops(path)["QLinearConv"] == 2
    x = torch.randn(8, 3, 8, 8)
    with torch.no_grad():
        expected = models["model"](x)
    got = ort_run(ort_session(path), x)
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()  # int8 close to float, not equal
    assert not torch.equal(got, expected)


def test_errors_are_clear(models, tmp_path):
    with pytest.raises(AicomputeError, match="no ONNX model"):
        ort_session(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(AicomputeError, match="cannot load"):
        ort_session(corrupt)
    with pytest.raises(AicomputeError, match="threads"):
        ort_session(models["fp32"], threads=0)
    with pytest.raises(AicomputeError, match=r"shape \(2, 3, 8\)"):
        ort_run(ort_session(models["fp32"]), torch.randn(2, 3, 8))
    with pytest.raises(AicomputeError, match="activation_type"):
        ort_quantize_static(models["fp32"], [models["x"]], tmp_path / "q.onnx", activation_type="int4")
    with pytest.raises(AicomputeError, match="no batches"):
        ort_quantize_static(models["fp32"], [], tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()
    with pytest.raises(AicomputeError, match="numpy"):
        ort_run(ort_session(models["fp32"]), [[1.0]])
    assert np.isfinite(ort_latency_ms(models["fp32"], models["x"][:2], repeats=1, warmup=0))
