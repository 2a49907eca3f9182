"""What a quantized model must quantize beyond its layers' inputs and weights for ONNX Runtime to run it on
integers end to end, read from one export of the float model.

* **Junction blocks** (:mod:`.junctions`): the modules whose forward adds or concatenates activations get
  quantizers on their input and output, so ORT runs the add as ``QLinearAdd``;
* **output pairs** (:func:`~aicompute.compress.quant.export.output_quant_plan`): the layers whose output
  reaches anything but quantized inputs — the residual branch's last conv, a shortcut's conv — quantize their
  output, so ORT fuses ``DQ → Conv → Q`` into ``QLinearConv``. The junction blocks' inputs count as
  quantized here: the stem's conv, read through ReLU and max-pool by the first block, then needs no pair.

:func:`quant_plan` decides both; :func:`~aicompute.compress.quant.ptq.calibrate_and_freeze` applies it to
the simulation, and the export follows from the quantizers' parameters, so the two compute the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from aicompute.compress.quant.export import DEFAULT_OPSET, float_proto, graph_output_verdicts
from aicompute.compress.quant.junctions import container_problem
from aicompute.compress.quant.modules import is_skipped
from aicompute.compress.quant.onnx_graph import OutputVerdict, QDQGraph, junction_blocks

__all__ = ["QuantPlan", "quant_plan"]


@dataclass(frozen=True)
class QuantPlan:
    junctions: tuple[str, ...]
    """Junction blocks whose input and output get quantizers, in graph order."""
    outputs: tuple[OutputVerdict, ...]
    """Per layer: whether its output needs a Q/DQ pair of its own, and why."""
    junctions_kept_float: dict[str, str] = field(default_factory=dict)
    """Junction blocks left without quantizers, and why."""

    @property
    def output_layers(self) -> list[str]:
        """The layers whose outputs the simulation quantizes (``quantize_outputs``)."""
        return [v.layer for v in self.outputs if v.needs_pair]

    def to_dict(self) -> dict[str, Any]:
        return {"junctions": list(self.junctions), "junctions_kept_float": dict(self.junctions_kept_float),
                "outputs": [v.to_dict() for v in self.outputs]}  # fmt: skip


def quant_plan(
    model: nn.Module,
    example_input: Tensor,
    layer_names: Iterable[str],
    *,
    junctions: bool = True,
    skip: Iterable[str] = (),
    opset: int = DEFAULT_OPSET,
) -> QuantPlan:
    """The plan for the float, BatchNorm-folded ``model`` whose ``layer_names`` (Conv/Linear modules) have
    quantized inputs: junction blocks (none when ``junctions`` is False; a block under a ``skip`` name stays
    float) and the layers needing output pairs."""
    names = list(dict.fromkeys(layer_names))
    skip = tuple(skip)
    modules = dict(model.named_modules())
    g = QDQGraph(float_proto(model, example_input, opset, dynamic_batch=True))
    chosen: list[str] = []
    kept: dict[str, str] = {}
    for block, problem in (junction_blocks(g) if junctions else {}).items():
        if problem is None and block in modules:
            problem = container_problem(modules[block])
        if problem is None and is_skipped(block, skip):
            problem = "it is under a skipped name"
        if problem is None:
            chosen.append(block)
        else:
            kept[block] = problem
    keys = {**dict.fromkeys(names), **dict.fromkeys(chosen)}
    return QuantPlan(tuple(chosen), graph_output_verdicts(g, names, keys), kept)
