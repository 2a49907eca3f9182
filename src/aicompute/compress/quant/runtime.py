"""Running an exported model in ONNX Runtime on CPU: sessions, outputs, accuracy, latency, and which
integer kernels ORT really chose.

A QDQ graph (:func:`aicompute.compress.quant.export.export_qdq`) only *describes* quantization; ORT's
graph optimizer fuses ``DequantizeLinear → op → QuantizeLinear`` groups into integer kernels when it can.
:func:`integer_ops` saves ORT's optimized graph (``SessionOptions.optimized_model_filepath``) and counts
the integer ops in it, so a claim like "runs in int8" is checked, not assumed.

:func:`ort_quantize_static` runs ORT's own post-training quantizer (QDQ, per-channel weights, MinMax
calibration) — the comparison point for aicompute's own scales.

Conventions: CPU execution provider only, all graph optimizations on; ``threads=None`` lets ORT pick (one
per core); inputs are float32 tensors, batch first; the model's first input and first output are used.
Accuracy is the share of correct top-1 predictions in [0, 1], as :func:`aicompute.train.evaluate` reports it.
ORT's ``MatMulNBits`` (what it makes of a weight-only int4/int8 MatMul) quantizes its activations to int8 at
ORT's default accuracy level, so such a model's outputs differ from a float simulation by about 0.1 %
(measured on ORT 1.32); QDQ layers with quantized inputs match it to float rounding, up to a code flip.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor

from aicompute.checks import positive_int
from aicompute.data.loader import as_loader
from aicompute.errors import AicomputeError
from aicompute.fileio import atomic_write_bytes
from aicompute.timing import median_ms
from aicompute.train.batching import split_batch

__all__ = [
    "INTEGER_OPS",
    "ort_session",
    "ort_run",
    "optimized_op_counts",
    "integer_ops",
    "ort_latency_ms",
    "ort_accuracy",
    "ort_quantize_static",
]

INTEGER_OPS = frozenset(
    {
        # ONNX: integer in, integer out (QLinear*) or int32 out (*Integer)
        "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear",
        # com.microsoft, made by ORT's QDQ fusions
        "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearAveragePool", "QLinearGlobalAveragePool",
        "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere",
        "QLinearConvTranspose", "QGemm", "QAttention", "QEmbedLayerNormalization", "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "MatMulNBits",
    }
)  # fmt: skip
"""Op types (ONNX and ``com.microsoft``) that compute on integer codes."""


def _model_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise AicomputeError(f"no ONNX model at {str(path)!r}; export one first (export_qdq or export_onnx)")
    return path


def ort_session(
    path: str | Path, *, threads: int | None = None, optimized_path: str | Path | None = None
) -> ort.InferenceSession:
    """A CPU ``InferenceSession`` on ``path`` with all graph optimizations; ``optimized_path`` saves the
    graph ORT actually runs (after its QDQ fusions)."""
    path = _model_path(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = positive_int("threads", threads)
        options.inter_op_num_threads = 1
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
        options.log_severity_level = 3  # ORT warns that a saved NCHWc graph is hardware specific: we only read it
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own Fail/InvalidGraph/... types
        raise AicomputeError(f"ONNX Runtime cannot load {str(path)!r}: {err}") from err


def _as_array(x: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise AicomputeError(f"ORT input must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return np.ascontiguousarray(x.astype(np.float32, copy=False) if x.dtype.kind == "f" else x)


def ort_run(session: ort.InferenceSession, x: Tensor | np.ndarray) -> Tensor:
    """The session's first output for input ``x``, as a torch tensor."""
    feed = {session.get_inputs()[0].name: _as_array(x)}
    try:
        (out, *_) = session.run(None, feed)
    except Exception as err:
        expected = session.get_inputs()[0]
        raise AicomputeError(
            f"ONNX Runtime could not run the model on an input of shape {tuple(feed[expected.name].shape)}: "
            f"it expects {expected.shape} ({expected.type}): {err}"
        ) from err
    return torch.from_numpy(np.asarray(out))


def optimized_op_counts(path: str | Path, *, threads: int | None = None) -> Counter:
    """Op types, with counts, of the graph ORT runs for ``path`` after its optimizations."""
    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp, "optimized.onnx")
        ort_session(path, threads=threads, optimized_path=optimized)
        graph = onnx.load(str(optimized), load_external_data=False).graph
    return Counter(node.op_type for node in graph.node)


def integer_ops(path: str | Path, *, threads: int | None = None) -> Counter:
    """Integer kernels (:data:`INTEGER_OPS`) in ORT's optimized graph of ``path``, with counts."""
    return Counter({op: n for op, n in optimized_op_counts(path, threads=threads).items() if op in INTEGER_OPS})


def ort_latency_ms(
    path: str | Path, x: Tensor | np.ndarray, *, repeats: int = 20, warmup: int = 3, threads: int | None = None
) -> float:
    """Median wall time of one ORT run on ``x``, in ms (after ``warmup`` untimed runs)."""
    session = ort_session(path, threads=threads)
    feed = {session.get_inputs()[0].name: _as_array(x)}
    ort_run(session, feed[session.get_inputs()[0].name])  # shape errors surface here as AicomputeError
    return median_ms(lambda: session.run(None, feed), repeats=repeats, warmup=warmup)


def ort_accuracy(path: str | Path, data: Any, *, batch_size: int = 256, threads: int | None = None) -> float:
    """Share of correct top-1 predictions in [0, 1] of the ONNX model on ``data`` (a loader, dataset or
    ``(inputs, targets)``, as :func:`aicompute.train.evaluate` takes)."""
    session = ort_session(path, threads=threads)
    correct = total = 0
    for batch in as_loader(data, batch_size=batch_size, shuffle=False, name="data"):
        inputs, targets = split_batch(batch)
        logits = ort_run(session, inputs)
        correct += int((logits.argmax(dim=-1) == targets.reshape(logits.shape[:-1])).sum())
        total += targets.numel()
    if total == 0:
        raise AicomputeError("the evaluation data yielded no batches; pass a non-empty data set")
    return correct / total


def ort_quantize_static(
    float_path: str | Path,
    calibration: Iterable[Tensor | np.ndarray],
    path: str | Path,
    *,
    per_channel: bool = True,
    activation_type: str = "int8",
    weight_type: str = "int8",
) -> Path:
    """ORT's own ``quantize_static`` on a float ONNX model: QDQ format, MinMax calibration on the
    ``calibration`` batches, per-channel weights by default. Writes ``path`` atomically."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    for what, value in (("activation_type", activation_type), ("weight_type", weight_type)):
        if value not in types:
            raise AicomputeError(f"{what} must be 'int8' or 'uint8', got {value!r}")
    float_path = _model_path(float_path)
    input_name = ort_session(float_path).get_inputs()[0].name
    feeds = [{input_name: _as_array(batch)} for batch in calibration]
    if not feeds:
        raise AicomputeError("calibration yielded no batches; pass at least one float input batch")

    class Batches(CalibrationDataReader):
        """The calibration batches, one feed dict per ``get_next()``, then None."""

        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "quantized.onnx")
        quantize_static(
            str(float_path),
            str(out),
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=types[activation_type],
            weight_type=types[weight_type],
        )
        return atomic_write_bytes(path, out.read_bytes())
