"""The compression receipt: is the quantized model really smaller, really faster, and how much worse?

Every figure is measured now on this machine: the float and the int8 ONNX files' bytes on disk (the
quantized one with its integer weights really stored as int8 / packed int4), ONNX Runtime's median latency
of both at one batch size, the integer kernels ORT's optimizer actually chose, and accuracy on the held-out
split of the float model, the PyTorch simulation and the int8 model in ORT. A plain warning says when the
quantized model is slower, no smaller, runs no integer kernel, or loses more than the budget.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aicompute.checks import positive_int
from aicompute.compress.quant.export import export_onnx, export_qdq
from aicompute.compress.quant.ptq import QuantResult, calibration_batches
from aicompute.compress.quant.runtime import integer_ops, ort_accuracy, ort_latency_ms
from aicompute.timing import median_ms

__all__ = ["Receipt", "make_receipt"]


@dataclass
class Receipt:
    float_bytes: int
    quant_bytes: int
    batch_size: int
    float_ms: float
    """ONNX Runtime, float32 model, median per batch."""
    quant_ms: float
    """ONNX Runtime, quantized model, median per batch."""
    torch_ms: float
    """PyTorch eager, float32 model, median per batch (for scale)."""
    integer_ops: dict[str, int]
    float_accuracy: float | None
    sim_accuracy: float | None
    """The PyTorch simulation (fake quantization)."""
    ort_accuracy: float | None
    """The quantized ONNX model in ONNX Runtime."""
    budget_pt: float | None
    path: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def size_ratio(self) -> float:
        return self.float_bytes / self.quant_bytes

    @property
    def speedup(self) -> float:
        return self.float_ms / self.quant_ms

    @property
    def drop_pt(self) -> float | None:
        if self.float_accuracy is None or self.ort_accuracy is None:
            return None
        return 100 * (self.float_accuracy - self.ort_accuracy)

    def rows(self) -> list[tuple[str, Any, Any, str]]:
        """(what, float, quantized, ratio) rows for printing."""
        acc = lambda a: None if a is None else f"{100 * a:.2f}%"  # noqa: E731
        return [
            ("ONNX file bytes", self.float_bytes, self.quant_bytes, f"{self.size_ratio:.2f}x smaller"),
            (f"ORT latency, batch {self.batch_size} (ms)", self.float_ms, self.quant_ms, f"{self.speedup:.2f}x faster"),
            (f"PyTorch fp32 latency, batch {self.batch_size} (ms)", self.torch_ms, None, ""),
            ("accuracy (held-out)", acc(self.float_accuracy), acc(self.ort_accuracy),
             "" if self.drop_pt is None else f"{self.drop_pt:+.2f} pt drop"),
            ("accuracy of the PyTorch simulation", None, acc(self.sim_accuracy), ""),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "float_bytes": self.float_bytes, "quant_bytes": self.quant_bytes, "size_ratio": self.size_ratio,
            "batch_size": self.batch_size, "ort_float_ms": self.float_ms, "ort_quant_ms": self.quant_ms,
            "speedup": self.speedup, "torch_float_ms": self.torch_ms, "integer_ops": self.integer_ops,
            "float_accuracy": self.float_accuracy, "sim_accuracy": self.sim_accuracy,
            "ort_accuracy": self.ort_accuracy, "drop_pt": self.drop_pt, "budget_pt": self.budget_pt,
            "path": self.path, "warnings": self.warnings,
        }  # fmt: skip


def _warnings(r: Receipt) -> list[str]:
    out = []
    if r.quant_ms >= r.float_ms:
        out.append(f"the quantized model is not faster in ONNX Runtime here ({r.quant_ms:.3g} ms vs "
                   f"{r.float_ms:.3g} ms float)")
    if r.quant_bytes >= r.float_bytes:
        out.append(f"the quantized file is no smaller ({r.quant_bytes:,} vs {r.float_bytes:,} bytes)")
    if not r.integer_ops:
        out.append("ONNX Runtime chose no integer kernel: the model runs dequantized in float")
    if r.budget_pt is not None and r.drop_pt is not None and r.drop_pt > r.budget_pt:
        out.append(f"accuracy drops {r.drop_pt:.2f} pt, more than the budget of {r.budget_pt:g} pt")
    if r.sim_accuracy is not None and r.ort_accuracy is not None and abs(r.sim_accuracy - r.ort_accuracy) > 0.002:
        out.append(f"ONNX Runtime's accuracy differs from the PyTorch simulation by "
                   f"{100 * abs(r.sim_accuracy - r.ort_accuracy):.2f} pt")
    return out


def make_receipt(
    result: QuantResult,
    example_data: Any,
    eval_data: Any = None,
    *,
    path: str | Path | None = None,
    batch_size: int = 64,
    repeats: int = 20,
    threads: int | None = None,
    budget_pt: float | None = None,
) -> Receipt:
    """Export ``result`` (float and quantized ONNX), run both in ONNX Runtime and measure them.

    ``example_data`` gives one batch of ``batch_size`` inputs (any form :func:`calibration_batches` takes);
    ``path`` keeps the quantized ONNX file there (the float one beside it, ``*.fp32.onnx``), otherwise both
    live in a temporary folder that is removed.
    """
    positive_int("batch_size", batch_size)
    x = next(iter(calibration_batches(example_data, batch_size=batch_size, limit=1)))
    weights, inputs = result.qparams()
    with tempfile.TemporaryDirectory(prefix="aicompute-receipt-") as tmp:
        quant_path = Path(path) if path is not None else Path(tmp) / "model.int8.onnx"
        float_path = quant_path.with_name(quant_path.stem.removesuffix(".int8") + ".fp32.onnx")
        export_onnx(result.float_model, x[:1], float_path)
        export_qdq(result.float_model, x[:1], weights, inputs, quant_path, output_qparams=result.output_qparams())
        with torch.inference_mode():
            torch_ms = median_ms(lambda: result.float_model(x), repeats=repeats)
        receipt = Receipt(
            float_bytes=float_path.stat().st_size,
            quant_bytes=quant_path.stat().st_size,
            batch_size=int(x.shape[0]),
            float_ms=ort_latency_ms(float_path, x, repeats=repeats, threads=threads),
            quant_ms=ort_latency_ms(quant_path, x, repeats=repeats, threads=threads),
            torch_ms=torch_ms,
            integer_ops=dict(integer_ops(quant_path, threads=threads)),
            float_accuracy=result.float_accuracy,
            sim_accuracy=result.accuracy,
            ort_accuracy=None if eval_data is None else ort_accuracy(quant_path, eval_data, threads=threads),
            budget_pt=budget_pt,
            path=str(quant_path) if path is not None else None,
        )
    receipt.warnings = _warnings(receipt)
    return receipt

