"""Quantized junctions: fake quantizers on the input and output of the blocks that add or concatenate
activations (a residual block's ``relu(F(x) + x)``, a dense block's ``cat``).

ONNX Runtime runs such an ``Add`` on integers (``QLinearAdd``; ``QLinearConcat`` for a ``Concat``) only when
every input arrives dequantized and the output is quantized: ``DQ, DQ → Add → Q``. Otherwise the add stays
in float, and every block pays a float ``Add`` plus the Q/DQ pairs and layout changes around it — on a
ResNet that costs more than the int8 convolutions save. The sum has no module of its own in PyTorch
(``out + identity`` inside ``forward``), so the quantizers sit at the edges of the innermost module whose
forward computes it, the *junction block*:

* its **input** quantizer covers everything that reads the block's input: the skip path into the add and
  the first layers (whose own input quantizers then see values already on the same grid: equal parameters,
  so nothing changes and the export writes one pair);
* its **output** quantizer covers the block's result (after a final ReLU the zero point sits at the grid
  minimum, and ORT folds that ReLU into the quantizer), which the next block reads.

The layer feeding the add from the residual branch quantizes its own output
(:func:`~aicompute.compress.quant.export.layers_needing_output_quant` names it). The exporter writes the
same pairs from ``input_qparams`` / ``output_qparams`` keyed by the block's name
(:meth:`~aicompute.compress.quant.ptq.QuantResult.qparams`).

A :class:`JunctionQuantizer` is the block's child ``junction_quantizer`` (so ``.to()``, the state dict and
``deepcopy`` carry it) and runs from a forward pre-hook on the block's tensor input and a forward hook on its
output. The quantizers are fixed-scale :class:`~aicompute.compress.quant.fake.FakeQuantizer` s of the
activation scheme, also under LSQ specs (as layer outputs are). Blocks are found in the exported graph
(:func:`~aicompute.compress.quant.onnx_graph.junction_blocks`): one tensor in, one tensor out, not a
container (``nn.Sequential`` & co. iterate their children, which a new child would join).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor, nn

from aicompute.compress.quant.fake import FakeQuantizer
from aicompute.compress.quant.qparams import QParams, QScheme
from aicompute.errors import AicomputeError

__all__ = ["CHILD", "JunctionQuantizer", "attach_junction_quantizers", "junction_quantizers", "container_problem"]

CHILD = "junction_quantizer"
"""Name of the :class:`JunctionQuantizer` child on a junction block."""

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def container_problem(module: nn.Module) -> str | None:
    """Why a quantizer cannot be attached to ``module``, or None."""
    if isinstance(module, _CONTAINERS):
        return f"it is an {type(module).__name__} subclass, whose forward may iterate its children"
    if hasattr(module, CHILD):
        return f"it already has a {CHILD!r} attribute"
    return None


class JunctionQuantizer(nn.Module):
    """Input and output fake quantizers of one junction block, run by hooks on the block."""

    def __init__(self, scheme: QScheme, observer: str = "minmax") -> None:
        super().__init__()
        if scheme.axis is not None:
            raise AicomputeError("junction quantizers work per tensor: build them with a QScheme with axis=None")
        self.input_quantizer = FakeQuantizer(scheme, observer)
        self.output_quantizer = FakeQuantizer(scheme, observer)

    def quantize_input(self, block: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Forward pre-hook: the block's one tensor argument through the input quantizer."""
        return tuple(self.input_quantizer(a) if isinstance(a, Tensor) and a.is_floating_point() else a for a in args)

    def quantize_output(self, block: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        """Forward hook: the block's output through the output quantizer."""
        return self.output_quantizer(output) if isinstance(output, Tensor) else output

    def freeze(self) -> JunctionQuantizer:
        for q in (self.input_quantizer, self.output_quantizer):
            if q.mode == "calibrate" and not q.has_data:
                raise AicomputeError(
                    "a junction quantizer saw no calibration data: run calibrate(prepared, batches) before freeze"
                )
            q.freeze()
        return self

    def input_qparams(self) -> QParams:
        return self.input_quantizer.qparams

    def output_qparams(self) -> QParams:
        return self.output_quantizer.qparams


def attach_junction_quantizers(
    prepared: nn.Module, names: Iterable[str], scheme: QScheme, observer: str = "minmax"
) -> dict[str, JunctionQuantizer]:
    """Give each block of ``names`` (module names of ``prepared``) a :class:`JunctionQuantizer` and its hooks,
    in place; returns them by block name. The blocks' tensor inputs must be one tensor (checked by the graph
    search that names them)."""
    modules = dict(prepared.named_modules())
    attached = {}
    for name in names:
        block = modules.get(name)
        if block is None or name == "":
            raise AicomputeError(f"no junction block {name!r} in the model; use names from named_modules()")
        problem = container_problem(block)
        if problem is not None:
            raise AicomputeError(f"cannot quantize the junction block {name!r}: {problem}")
        jq = JunctionQuantizer(scheme, observer)
        block.add_module(CHILD, jq)
        block.register_forward_pre_hook(jq.quantize_input)
        block.register_forward_hook(jq.quantize_output)
        attached[name] = jq
    return attached


def junction_quantizers(prepared: nn.Module) -> dict[str, JunctionQuantizer]:
    """The junction quantizers of ``prepared`` by block name."""
    suffix = "." + CHILD
    return {
        name[: -len(suffix)] if name.endswith(suffix) else "": m
        for name, m in prepared.named_modules()
        if isinstance(m, JunctionQuantizer)
    }
