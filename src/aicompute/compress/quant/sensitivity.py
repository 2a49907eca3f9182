"""Which layers quantization hurts, and mixed precision that keeps those at higher bits.

``sensitivity`` quantizes one layer at a time (every other layer float, junction blocks too) and measures
accuracy on held-out data: the drop is that layer's own cost. ``mixed_precision`` then raises the most sensitive layers to
``high_bits``, one by one in that order, until the whole model's drop is within the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from aicompute.checks import positive_number
from aicompute.compress.quant.ptq import QuantConfig, QuantResult, layer_names, quantize

__all__ = ["LayerSensitivity", "sensitivity", "mixed_precision"]


@dataclass(frozen=True)
class LayerSensitivity:
    name: str
    accuracy: float
    """Accuracy with only this layer quantized."""
    drop_pt: float
    """Float accuracy minus that, in percentage points."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "accuracy": self.accuracy, "drop_pt": self.drop_pt}


def sensitivity(model: nn.Module, calib_data: Any, eval_data: Any, config: QuantConfig | None = None,
                *, batch_size: int = 64) -> list[LayerSensitivity]:
    """One row per quantizable layer, most sensitive first."""
    config = config or QuantConfig()
    names = layer_names(model, config)
    rows = []
    for name in names:
        others = tuple(n for n in names if n != name)
        result = quantize(model, calib_data, replace(config, skip=config.skip + others, junctions=False), eval_data=eval_data,
                          batch_size=batch_size)
        rows.append(LayerSensitivity(name, result.accuracy, result.accuracy_drop))
    return sorted(rows, key=lambda r: (-r.drop_pt, r.name))


def mixed_precision(model: nn.Module, calib_data: Any, eval_data: Any, config: QuantConfig | None = None, *,
                    budget_pt: float = 0.5, high_bits: int = 8, batch_size: int = 64) -> QuantResult:
    """Quantize at ``config.bits``, then raise the most sensitive layers to ``high_bits`` until the accuracy
    drop is at most ``budget_pt`` percentage points (or every layer is at ``high_bits``).

    The result's ``extra`` holds the sensitivity table and the layers raised.
    """
    positive_number("budget_pt", budget_pt)
    config = config or QuantConfig()
    ranked = sensitivity(model, calib_data, eval_data, config, batch_size=batch_size)
    raised: list[str] = []
    result = quantize(model, calib_data, config, eval_data=eval_data, batch_size=batch_size)
    for row in ranked:
        if result.accuracy_drop is not None and result.accuracy_drop <= budget_pt:
            break
        raised.append(row.name)
        bits = {**config.layer_bits, **{name: high_bits for name in raised}}
        result = quantize(model, calib_data, replace(config, layer_bits=bits), eval_data=eval_data,
                          batch_size=batch_size)
    result.method = "ptq-mixed"
    result.extra = {"sensitivity": [r.to_dict() for r in ranked], "raised_to_high_bits": raised,
                    "high_bits": high_bits, "budget_pt": budget_pt}
    return result
