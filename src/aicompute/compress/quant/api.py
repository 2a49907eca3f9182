"""``quantize_checkpoint``: what ``aicompute quantize`` runs — PTQ (or QAT, or mixed precision) of a trained
checkpoint on its data set, then the compression receipt measured in ONNX Runtime.

Calibration (and QAT) use the data set's training split, accuracy its held-out split. The checkpoint file is
only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicompute.compress.quant.ptq import QuantConfig, QuantResult, quantize
from aicompute.compress.quant.qat import qat
from aicompute.compress.quant.receipt import Receipt, make_receipt
from aicompute.compress.quant.sensitivity import mixed_precision
from aicompute.errors import AicomputeError

__all__ = ["QuantizeRun", "quantize_checkpoint"]


@dataclass
class QuantizeRun:
    model: str
    data: str | None
    result: QuantResult
    receipt: Receipt | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "model": self.model, "data": self.data,
                "receipt": None if self.receipt is None else self.receipt.to_dict()}


def quantize_checkpoint(
    path: str | Path,
    data: Any = None,
    config: QuantConfig | None = None,
    *,
    qat_epochs: int = 0,
    qat_lr: float = 3e-5,
    mixed: bool = False,
    budget_pt: float = 0.5,
    export: str | Path | None = None,
    receipt: bool = True,
    batch_size: int = 64,
    allow_import: bool = False,
) -> QuantizeRun:
    """Quantize the checkpoint at ``path`` as ``config`` says and measure the result.

    ``qat_epochs > 0`` fine-tunes with quantization-aware training; ``mixed`` keeps the most sensitive
    layers at 8 bits until the drop is within ``budget_pt``. ``export`` keeps the int8 ONNX file there.
    """
    from aicompute.train import checkpoint_and_data

    config = config or QuantConfig()
    if qat_epochs < 0:
        raise AicomputeError(f"qat_epochs must be 0 or more, got {qat_epochs}")
    if qat_epochs and mixed:
        raise AicomputeError("choose QAT (--qat-epochs) or mixed precision (--mixed-precision), not both")
    ckpt, test, data_name = checkpoint_and_data(path, data, split="test", allow_import=allow_import)
    _, train, _ = checkpoint_and_data(path, data, split="train", allow_import=allow_import)
    model = ckpt.model
    if qat_epochs:
        result = qat(model, train, config, epochs=qat_epochs, lr=qat_lr, eval_data=test, batch_size=batch_size)
    elif mixed:
        result = mixed_precision(model, train, test, config, budget_pt=budget_pt, batch_size=batch_size)
    else:
        result = quantize(model, train, config, eval_data=test, batch_size=batch_size)
    measured = make_receipt(result, test, test, path=export, batch_size=batch_size, budget_pt=budget_pt) \
        if receipt else None
    return QuantizeRun(ckpt.model_name, data_name, result, measured)
