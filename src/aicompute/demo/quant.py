"""The quantization tour: number formats, accuracy against bits on a trained LeNet-5, and the receipt —
size and ONNX Runtime latency of the int8 model against the float one, measured now."""

from __future__ import annotations

from typing import Any

import torch

from aicompute.compress.formats import format_table
from aicompute.compress.quant import QuantConfig, quantize
from aicompute.compress.quant.receipt import make_receipt

__all__ = ["quant_tour"]

WEIGHT_ONLY_BITS = (8, 6, 4, 3, 2)
FULL_BITS = (8, 6, 4)


def quant_tour(*, epochs: int = 3, seed: int = 0, resnet_width: int = 16, batch_size: int = 64,
               repeats: int = 20) -> dict[str, Any]:
    """One record: the format table, LeNet-5 accuracy per bit width, and two receipts (LeNet-5 trained on
    MNIST; a ResNet-18 of ``resnet_width`` for size and speed, whose accuracy is not measured)."""
    from aicompute.data import get_dataset
    from aicompute.models import get_model
    from aicompute.train import train_model

    run = train_model("lenet5", "mnist", epochs=epochs, seed=seed)
    train, test = get_dataset("mnist", "train"), get_dataset("mnist", "test")
    sweep = []
    for bits in WEIGHT_ONLY_BITS:
        sweep.append(_point(quantize(run.network, train, QuantConfig(bits=bits, act_bits=None), eval_data=test)))
    for bits in FULL_BITS:
        sweep.append(_point(quantize(run.network, train, QuantConfig(bits=bits, act_bits=bits), eval_data=test)))
    int8 = quantize(run.network, train, QuantConfig(), eval_data=test)
    lenet_receipt = make_receipt(int8, test, test, batch_size=batch_size, repeats=repeats)
    resnet = get_model("resnet18", in_channels=1, num_classes=10, image_size=28, width=resnet_width).eval()
    calib = torch.stack([test[i][0] for i in range(batch_size)])
    resnet_q = quantize(resnet, [calib], QuantConfig())
    resnet_receipt = make_receipt(resnet_q, [calib], batch_size=batch_size, repeats=repeats)
    return {
        "kind": "quant-tour",
        "formats": format_table(),
        "model": "lenet5",
        "data": "mnist",
        "float_accuracy": int8.float_accuracy,
        "sweep": sweep,
        "receipts": [
            {"model": "lenet5 (trained on mnist)", **lenet_receipt.to_dict()},
            {"model": f"resnet18, width {resnet_width}, 1×28×28 (untrained: size and speed only)",
             **resnet_receipt.to_dict()},
        ],
    }


def _point(result: Any) -> dict[str, Any]:
    return {"label": result.config.label, "bits": result.config.bits, "act_bits": result.config.act_bits,
            "accuracy": result.accuracy, "drop_pt": result.accuracy_drop}
