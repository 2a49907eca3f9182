"""What each floating-point format does to a trained model: its weights' error and its test accuracy.

Every parameter is cast to the format (:func:`aicompute.compress.formats.cast`: round-to-nearest-even, the
format's own overflow) and the model is measured on the held-out split with those weights. Activations and
arithmetic stay float32 — this isolates the cost of *storing* weights in the format. Integer formats need a
scale to mean anything, which is quantization's job (:mod:`aicompute.compress.quant`), so they are not in
this study.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aicompute.compress.formats import cast, format_error, get_format

__all__ = ["FLOAT_FORMATS", "FormatEffect", "FormatEffects", "format_effects", "cast_weights"]

FLOAT_FORMATS = ("fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2")


def cast_weights(model: nn.Module, fmt: str) -> nn.Module:
    """A copy of ``model`` with every floating-point parameter replaced by its value in ``fmt``."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            if p.is_floating_point():
                p.copy_(cast(p, fmt).to(p.dtype))
    return out


@dataclass(frozen=True)
class FormatEffect:
    format: str
    bits: int
    weight_bytes: int
    rel_rms_error: float | None
    max_abs_error: float | None
    overflow_fraction: float
    flushed_to_zero_fraction: float
    accuracy: float | None
    """Test accuracy with the cast weights (``None`` for a language model: see ``loss``)."""
    loss: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FormatEffects:
    model: str
    data: str | None
    params: int
    effects: list[FormatEffect] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "format-effects",
            "model": self.model,
            "data": self.data,
            "params": self.params,
            "note": "weights cast to each format; activations and arithmetic in float32",
            "effects": [e.to_dict() for e in self.effects],
        }


def format_effects(
    checkpoint: str | Path,
    data: Any = None,
    *,
    formats: Sequence[str] = FLOAT_FORMATS,
    batch_size: int = 256,
    allow_import: bool = False,
) -> FormatEffects:
    """Cast the checkpoint's weights to each of ``formats`` and measure them on the held-out split."""
    from aicompute.train import checkpoint_and_data, evaluate

    ckpt, dataset, data_name = checkpoint_and_data(checkpoint, data, allow_import=allow_import)
    weights = torch.cat([p.detach().reshape(-1).float() for p in ckpt.model.parameters() if p.is_floating_point()])
    effects = []
    for name in formats:
        fmt = get_format(name)
        err = format_error(weights, fmt)
        result = evaluate(cast_weights(ckpt.model, fmt.name), dataset, batch_size=batch_size)
        effects.append(FormatEffect(
            format=fmt.name,
            bits=fmt.total_bits,
            weight_bytes=math.ceil(weights.numel() * fmt.bytes_per_value),
            rel_rms_error=err["rel_rms_error"],
            max_abs_error=err["max_abs_error"],
            overflow_fraction=err["overflow_fraction"],
            flushed_to_zero_fraction=err["flushed_to_zero_fraction"],
            accuracy=result.accuracy,
            loss=result.loss,
        ))
    return FormatEffects(ckpt.model_name, data_name, weights.numel(), effects)
