"""Quantization-aware training: fine-tune a model through its quantizers with the straight-through estimator.

``qat`` prepares the model as :func:`~aicompute.compress.quant.ptq.quantize` does (BatchNorm folded,
Conv/Linear wrapped), calibrates the quantizers on a few batches, then trains in "quantize" mode: the
forward sees quantized weights and activations, the backward passes gradients straight through the
rounding to the float weights (clipped STE). With ``config.learnable`` the scales are LSQ parameters
trained with the weights; otherwise every scale stays as calibrated before training (fixed-scale QAT:
weight scales from the initial weights, so training adapts the weights to the grid).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from aicompute.checks import positive_int, positive_number
from aicompute.compress.quant.ptq import (
    QuantConfig,
    QuantResult,
    accuracy_of,
    calibrate_and_freeze,
    layer_records,
    prepare_model,
)

__all__ = ["qat"]


def qat(
    model: nn.Module,
    train_data: Any,
    config: QuantConfig | None = None,
    *,
    epochs: int = 1,
    lr: float = 3e-5,
    eval_data: Any = None,
    batch_size: int = 64,
    max_steps: int | None = None,
    seed: int = 0,
) -> QuantResult:
    """Fine-tune a quantized copy of ``model`` on ``train_data`` for ``epochs``; accuracy on ``eval_data``.

    The float accuracy reported is the input model's (BatchNorm folded), so the drop is the whole cost of
    quantization after QAT. The default ``lr`` is small on purpose: the network is already trained, and
    ``benchmarks/quant_accuracy.py`` found 1e-4 too large for a BatchNorm-folded ResNet (picked on a
    validation slice: 1e-5 for LeNet-5, 3e-5 for the ResNet).
    """
    from aicompute.train import fit

    positive_int("epochs", epochs)
    positive_number("lr", lr)
    config = config or QuantConfig()
    float_model, prepared, report = prepare_model(model, config)
    calibrate_and_freeze(float_model, prepared, train_data, config, batch_size)  # quantized from step one
    fitted = fit(prepared, train_data, epochs=epochs, lr=lr, batch_size=batch_size, max_steps=max_steps, seed=seed)
    prepared.eval()
    result = QuantResult(prepared, float_model, config, layer_records(prepared, config), report, method="qat")
    result.extra = {"qat_epochs": epochs, "qat_lr": lr, "qat_final_loss": fitted.history[-1].train_loss
                    if fitted.history else None}
    if eval_data is not None:
        result.float_accuracy = accuracy_of(float_model, eval_data, batch_size)
        result.accuracy = accuracy_of(prepared, eval_data, batch_size)
    return result
