"""ONNX export in QDQ form that carries aicompute's own scales and zero points.

The float model is exported with ``torch.onnx.export(..., dynamo=True)``; the graph is then rewritten with
the ``onnx`` API (:mod:`.onnx_graph`), with nothing re-calibrated (unlike ``onnxruntime.quantization``):

* **weights** of each ``Conv``/``Linear`` named in ``weight_qparams`` become integer initializers (the codes
  of :meth:`QParams.quantize`) read through ``DequantizeLinear`` (``axis`` = output channels when
  per-channel: 0 for Conv and Gemm, 1 for the ``(in, out)`` weight of a MatMul);
* **activations**: ``input_qparams[name]`` puts ``QuantizeLinear → DequantizeLinear`` on the input of that
  module, as the module sees it (readers of one value with equal parameters share one pair);
  ``output_qparams[name]`` puts one pair right after the module's output — the value
  :func:`output_quant_plan` starts from — for all its readers, as a forward hook on the module would. A
  reader that also quantizes its input requantizes the dequantized value (``DQ → [Relu …] → Q``), exactly as
  the torch simulation does; with equal parameters and no op between, the reader reuses the pair;
* **bias** of a Conv/Gemm whose weight and input are both quantized becomes int32 codes
  ``round(b / (s_in · s_w))`` with scale ``s_in · s_w`` and zero point 0 (left out of the file), the form
  ORT folds into ``QLinearConv``/``QGemm``; a bias that would overflow int32 stays float.

What ORT 1.32 makes of it (measured; :func:`aicompute.compress.quant.runtime.integer_ops` checks a file):
``DQ → Conv → Q`` becomes ``QLinearConv`` — a conv runs in int8 only when its output is quantized too: by
``output_qparams``, or because the output reaches, through ops ORT moves a ``QuantizeLinear`` across, the
quantized input of the next layer (:func:`layers_needing_output_quant` names the layers for which that is not
so: a residual ``Add``, a ``Concat``, a conv's graph output ...); ``DQ, DQ → Add → Q`` becomes ``QLinearAdd``;
``DQ → Gemm`` ``QGemm`` (it needs the int32 bias and the weight's zero point); ``DQ → MatMul``
``MatMulIntegerToFloat``; a weight-only int4/int8 ``DQ → MatMul`` ``MatMulNBits``.

Conventions:

* Weights: per-tensor or per output channel (axis 0 of the torch weight), any grid within 8 bits (binary
  codes ±1 included). Activations: per-tensor on the *whole* int8 ``[-128, 127]`` or uint8 ``[0, 255]``
  grid (16 bits from opset 21), because ``QuantizeLinear`` saturates to its type, not to a narrower grid.
* **Int4 storage.** A weight-only layer (no ``input_qparams``) whose grid fits 4 bits is stored as ONNX
  ``INT4``/``UINT4`` (opset ≥ 21): two codes per byte, low nibble first (:func:`.packing.pack_int4`).
  ``LayerExport.weight_bytes`` is the exact size of the stored codes: ``ceil(n / 2)`` bytes for int4.
* The model is exported under ``eval_mode`` and must have its BatchNorm folded already: the exporter would
  fold a leftover BatchNorm into the conv, changing the weights the qparams were computed for. Each
  quantized weight is compared with the exported one, and a difference is refused.
* The batch dimension is dynamic (``dynamic_batch=True``). The exporter's per-node metadata (stack traces)
  is not written to the file.
"""

from __future__ import annotations

import contextlib
import warnings

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import Tensor, nn

from aicompute.checks import did_you_mean
from aicompute.compress.quant.onnx_graph import (
    CODE_NUMPY_TYPES,
    INT4_TYPES,
    ActivationKey,
    OutputVerdict,
    QDQGraph,
    activation_key,
    output_verdict,
)
from aicompute.compress.quant.packing import pack_int4, unpack_int4  # noqa: F401 - importable from here as before
from aicompute.compress.quant.qparams import QParams
from aicompute.errors import AicomputeError
from aicompute.fileio import atomic_write_bytes
from aicompute.logs import quiet_logger
from aicompute.modes import eval_mode

__all__ = [
    "DEFAULT_OPSET",
    "LayerExport",
    "ExportResult",
    "export_onnx",
    "export_qdq",
    "output_quant_plan",
    "layers_needing_output_quant",
]

DEFAULT_OPSET = 21
"""ONNX opset of exported graphs: 21 is the first with INT4 tensors and int4/int16 Q/DQ."""

_MIN_OPSET = 18  # the oldest opset torch's dynamo exporter writes
_WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_INT32 = torch.iinfo(torch.int32)
_TYPE_NAMES = {t: TensorProto.DataType.Name(t).lower() for t in (*INT4_TYPES, *CODE_NUMPY_TYPES)}


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LayerExport:
    """How one ``Conv``/``Linear`` module was written to the ONNX graph."""

    module: str
    """Module name in ``model.named_modules()``."""
    op: str
    """ONNX op computing it: ``Conv``, ``Gemm`` or ``MatMul``."""
    nodes: tuple[str, ...]
    """Names of the ONNX nodes (several when the module is called more than once)."""
    weight_dtype: str
    """Stored weight type: ``int8``, ``uint8``, ``int4``, ``uint4`` or ``float``."""
    per_channel: bool
    """Weight scales per output channel (False for per-tensor and for float weights)."""
    input_quantized: bool
    """The layer's input goes through ``QuantizeLinear → DequantizeLinear``."""
    bias: str
    """``int32`` (codes with scale ``s_in · s_w``), ``float`` or ``none``."""
    weight_bytes: int
    """Exact bytes of the stored weight (packed codes for int4; 4 per value when float)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "nodes": list(self.nodes)}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_qdq` wrote."""

    path: Path
    file_bytes: int
    """Size of the ONNX file on disk, in bytes."""
    opset: int
    layers: tuple[LayerExport, ...]
    """Every Conv/Linear module of the model found in the graph, quantized or not, in graph order."""
    quantized_values: tuple[str, ...]
    """ONNX values (activations) that got a ``QuantizeLinear → DequantizeLinear`` pair."""

    @property
    def float_layers(self) -> tuple[str, ...]:
        """Modules whose weights stayed float."""
        return tuple(layer.module for layer in self.layers if layer.weight_dtype == "float")

    @property
    def quantized_layers(self) -> tuple[str, ...]:
        return tuple(layer.module for layer in self.layers if layer.weight_dtype != "float")

    @property
    def weight_bytes(self) -> int:
        """Bytes of all Conv/Linear weights as stored (codes, or float32 for float layers)."""
        return sum(layer.weight_bytes for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "file_bytes": self.file_bytes,
            "opset": self.opset,
            "weight_bytes": self.weight_bytes,
            "layers": [layer.to_dict() for layer in self.layers],
            "float_layers": list(self.float_layers),
            "quantized_values": list(self.quantized_values),
        }


# ---------------------------------------------------------------------------------------------- float export


def _check_opset(opset: object) -> int:
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < _MIN_OPSET:
        raise AicomputeError(f"opset must be an integer ≥ {_MIN_OPSET} (torch's ONNX exporter), got {opset!r}")
    return opset


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs that torchvision's ops are not registered and warns about pytree internals; neither
    concerns the user, whose terminal should show only the command's own output."""
    with quiet_logger("torch.onnx._internal.exporter._registration"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def float_proto(model: nn.Module, example_input: Tensor, opset: int, dynamic_batch: bool) -> onnx.ModelProto:
    """The float model as an optimized ONNX graph (initializers named after parameters where they survive)."""
    if not isinstance(model, nn.Module):
        raise AicomputeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, Tensor):
        raise AicomputeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    x = example_input.detach()
    if dynamic_batch and x.dim() and x.shape[0] == 1:
        x = x.expand(2, *x.shape[1:]).contiguous()  # torch.export specializes a batch of 1 to a constant
    dynamic = ({0: "batch"},) if dynamic_batch and x.dim() else None
    try:
        with eval_mode(model), torch.no_grad(), _quiet_exporter():
            program = torch.onnx.export(
                model, (x,), dynamo=True, optimize=True, verbose=False, opset_version=opset, dynamic_shapes=dynamic
            )
    except Exception as err:  # torch.export / onnxscript failures: the model cannot be exported as it is
        hint = " (try dynamic_batch=False if the model fixes its batch size)" if dynamic_batch else ""
        raise AicomputeError(f"torch.onnx.export could not export {type(model).__name__}{hint}: {err}") from err
    return program.model_proto


def _save(proto: onnx.ModelProto, path: str | Path) -> Path:
    """Check and write ``proto`` atomically, without the exporter's per-node metadata (stack traces, scopes)."""
    for node in proto.graph.node:
        del node.metadata_props[:]
    onnx.checker.check_model(proto)
    return atomic_write_bytes(path, proto.SerializeToString())


def export_onnx(
    model: nn.Module,
    example_input: Tensor,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> Path:
    """Write the float model as ONNX (the fp32 baseline, and the input of ORT's own ``quantize_static``)."""
    return _save(float_proto(model, example_input, _check_opset(opset), dynamic_batch), path)


# ---------------------------------------------------------------------------------------------- weights


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _check_weight(name: str, module: nn.Module, qp: QParams) -> None:
    """Weight parameters the export can store: a Conv/Linear, per-tensor or per output channel, ≤ 8 bits."""
    if not isinstance(module, _WEIGHT_LAYERS):
        raise AicomputeError(
            f"weight_qparams[{name!r}] is for a {type(module).__name__}; weights are exported for "
            "nn.Conv1d, nn.Conv2d, nn.Conv3d and nn.Linear"
        )
    if qp.axis not in (None, 0):
        raise AicomputeError(
            f"weight_qparams[{name!r}] are per-channel along axis {qp.axis}; the export takes axis 0 "
            "(output channels) or per-tensor parameters"
        )
    if qp.per_channel and qp.scale.numel() != module.weight.shape[0]:
        raise AicomputeError(
            f"weight_qparams[{name!r}] have {qp.scale.numel()} channels but the layer has "
            f"{module.weight.shape[0]} output channels"
        )
    if not (-128 <= qp.qmin and qp.qmax <= (127 if qp.qmin < 0 else 255)):
        raise AicomputeError(
            f"weight_qparams[{name!r}] have the grid [{qp.qmin}, {qp.qmax}], wider than 8 bits; the QDQ export "
            "stores int8/uint8 codes (int4 for weight-only layers): use bits ≤ 8, or leave the layer out to keep "
            "it float"
        )


def _weight_code_type(qp: QParams, weight_only: bool, int4: bool) -> int:
    """Stored type of weight codes: int4/uint4 when weight-only and the grid fits, else int8/uint8."""
    signed = qp.qmin < 0
    if weight_only and int4 and qp.qmin >= (-8 if signed else 0) and qp.qmax <= (7 if signed else 15):
        return TensorProto.INT4 if signed else TensorProto.UINT4
    return TensorProto.INT8 if signed else TensorProto.UINT8


def _code_tensor(codes: Tensor, code_type: int) -> onnx.TensorProto:
    if code_type in INT4_TYPES:
        packed = pack_int4(codes, signed=code_type == TensorProto.INT4)
        return helper.make_tensor("codes", code_type, list(codes.shape), packed, raw=True)
    return numpy_helper.from_array(codes.numpy().astype(CODE_NUMPY_TYPES[code_type]))


def _stored_bytes(tensor: onnx.TensorProto) -> int:
    numel = math.prod(tensor.dims)
    if tensor.data_type in INT4_TYPES:
        return (numel + 1) // 2
    return numel * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize


def _int32_bias(g: QDQGraph, index: int, module: str, bias: Tensor, qp: QParams, in_key: ActivationKey) -> bool:
    """Replace node ``index``'s float bias by int32 codes with scale ``s_in · s_w``; False (bias left float)
    when the stored bias is not the module's or the codes would overflow int32."""
    node = g.nodes[index]
    stored = numpy_helper.to_array(g.init[node.input[2]])
    if stored.shape != tuple(bias.shape) or not np.array_equal(stored, bias.numpy()):
        return False
    scale = np.float32(in_key[1]) * qp.scale.numpy().astype(np.float32)  # (C,) or (): what ORT's kernels assume
    codes = np.round(bias.numpy().astype(np.float64) / scale.astype(np.float64))
    if codes.size and (codes.min() < _INT32.min or codes.max() > _INT32.max):
        return False
    codes = numpy_helper.from_array(codes.astype(np.int32))
    dq = g.constant_dq(f"{module}.bias", codes, scale, None, 0 if qp.per_channel else None)
    g.before.setdefault(index, []).append(dq)
    node.input[2] = dq.output[0]
    return True


def _write_layer(
    g: QDQGraph,
    name: str,
    module: nn.Module | None,
    indices: list[int],
    qp: QParams | None,
    in_key: ActivationKey | None,
    int4: bool,
) -> LayerExport:
    """Quantize one layer's weight (and bias) in the graph, and describe what was written."""
    node = g.nodes[indices[0]]
    weight_init = g.init[node.input[1]]
    nodes, quantized_input = tuple(g.nodes[i].name for i in indices), in_key is not None
    has_bias = getattr(module, "bias", None) is not None if module is not None else len(node.input) > 2
    bias = "float" if has_bias else "none"
    if qp is None:
        return LayerExport(name, node.op_type, nodes, "float", False, quantized_input, bias, _stored_bytes(weight_init))
    weight = module.weight.detach().cpu().float()  # torch layout: (out, in, *kernel) or (out, in)
    transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not _attr(node, "transB", 0))
    if not np.array_equal(numpy_helper.to_array(weight_init), (weight.T if transposed else weight).numpy()):
        raise AicomputeError(
            f"the exported weight of {name!r} differs from the module's: the exporter folded something into it "
            "(a BatchNorm after it?); fold BatchNorm into the conv before computing qparams, then export"
        )
    code_type = _weight_code_type(qp, in_key is None, int4)
    codes = qp.quantize(weight)
    stored = _code_tensor(codes.T.contiguous() if transposed else codes, code_type)  # MatMul reads (in, out)
    axis = None if not qp.per_channel else (1 if transposed else 0)
    dq = g.constant_dq(f"{name}.weight", stored, qp.scale.numpy(), qp.zero_point, axis)
    g.before.setdefault(indices[0], []).append(dq)
    for i in indices:
        layer = g.nodes[i]
        if layer.input[1] != node.input[1]:
            continue  # another weight traced in this module's scope: not the one checked above
        layer.input[1] = dq.output[0]
        bias_input = layer.input[2] if len(layer.input) > 2 and layer.op_type in ("Conv", "Gemm") else ""
        if in_key is not None and has_bias and bias_input in g.init:
            bias = "int32" if _int32_bias(g, i, name, module.bias.detach().cpu().float(), qp, in_key) else "float"
    dtype = _TYPE_NAMES[code_type]
    return LayerExport(name, node.op_type, nodes, dtype, qp.per_channel, quantized_input, bias, _stored_bytes(stored))


# ---------------------------------------------------------------------------------------------- the export


def _checked(qparams: Mapping[str, QParams] | None, what: str, modules: dict[str, nn.Module]) -> dict[str, QParams]:
    if qparams is None:
        return {}
    if not isinstance(qparams, Mapping):
        raise AicomputeError(f"{what} must be a dict from module name to QParams, got {type(qparams).__name__}")
    for name, qp in qparams.items():
        if name not in modules or name == "":
            raise AicomputeError(
                f"{what} names module {name!r}, which the model does not have{did_you_mean(str(name), modules)}; "
                "keys are names from model.named_modules()"
            )
        if not isinstance(qp, QParams):
            raise AicomputeError(f"{what}[{name!r}] must be a QParams, got {type(qp).__name__}")
    return dict(qparams)


def _check_found(names: Iterable[str], layer_nodes: dict[str, list[int]]) -> None:
    missing = [name for name in names if name not in layer_nodes]
    if missing:
        raise AicomputeError(
            f"no Conv/Gemm/MatMul node of {missing} in the exported graph: the module is not called in forward, or "
            "the exporter folded it into another op (a BatchNorm after it: fold BatchNorm before computing qparams)"
        )


def export_qdq(
    model: nn.Module,
    example_input: Tensor,
    weight_qparams: Mapping[str, QParams],
    input_qparams: Mapping[str, QParams] | None,
    path: str | Path,
    *,
    output_qparams: Mapping[str, QParams] | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    int4_weights: bool = True,
) -> ExportResult:
    """Export ``model`` to ``path`` as a QDQ ONNX graph with the given scales and zero points.

    ``weight_qparams`` maps ``nn.Conv1d/2d/3d``/``nn.Linear`` module names to their weight parameters;
    ``input_qparams`` maps module names to the parameters of the activation entering them;
    ``output_qparams`` (optional) those of a module's output, put right after it for every reader (give them
    for the layers :func:`layers_needing_output_quant` names, and ORT runs every quantized conv on integers).
    Layers in none of them stay float. ``int4_weights=False`` stores weight-only 4-bit grids as int8 instead
    of packed int4.
    """
    opset = _check_opset(opset)
    if not isinstance(model, nn.Module):
        raise AicomputeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modules = dict(model.named_modules())
    weights = _checked(weight_qparams, "weight_qparams", modules)
    for name, qp in weights.items():
        _check_weight(name, modules[name], qp)
    in_keys, out_keys = (
        {n: activation_key(qp, f"{what}[{n!r}]", opset) for n, qp in _checked(given, what, modules).items()}
        for given, what in ((input_qparams, "input_qparams"), (output_qparams, "output_qparams"))
    )

    proto = float_proto(model, example_input, opset, dynamic_batch)
    g = QDQGraph(proto)
    quantized_values = [value for name, key in out_keys.items() for value in g.quantize_output(name, key)]
    layer_nodes = g.layer_nodes()
    _check_found(weights, layer_nodes)
    # blocks before layers, outer before inner: the order in which the simulation's quantizers see a value
    # entering a block (its forward pre-hook, then each layer's input quantizer inside it)
    for name, key in sorted(in_keys.items(), key=lambda item: (item[0] in layer_nodes, item[0].count("."))):
        slots = g.input_slots(name, layer_nodes)
        if not slots:
            raise AicomputeError(
                f"module {name!r} has no float input in the exported graph; put its input_qparams on a module "
                "that reads one"
            )
        quantized_values += [value for i, k in slots if (value := g.quantize_input(i, k, key)) is not None]
    int4 = int4_weights and opset >= 21
    layers = [
        _write_layer(g, name, modules.get(name), indices, weights.get(name), in_keys.get(name), int4)
        for name, indices in layer_nodes.items()
    ]
    g.finish()
    path = _save(proto, path)
    return ExportResult(path, path.stat().st_size, opset, tuple(layers), tuple(quantized_values))


# ---------------------------------------------------------------------------------------------- output pairs


def output_quant_plan(
    model: nn.Module,
    example_input: Tensor,
    layer_names: Iterable[str],
    *,
    input_qparams: Mapping[str, QParams] | None = None,
    opset: int = DEFAULT_OPSET,
) -> tuple[OutputVerdict, ...]:
    """For each of ``layer_names`` (``Conv``/``Linear`` modules of the float, BatchNorm-folded ``model``), whether
    its output needs a Q/DQ pair of its own for ORT to run it on integers, and why (:func:`.onnx_graph.output_verdict`).

    The quantized inputs the outputs may end on are those of ``input_qparams`` (the export's input pairs), or,
    when it is None, those of every named layer, with parameters assumed shared by the readers of one value and
    with the zero point at the grid minimum after a ReLU (uint8 affine activations).
    """
    opset = _check_opset(opset)
    if not isinstance(model, nn.Module):
        raise AicomputeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(layer_names, str):
        layer_names = [layer_names]
    names = list(dict.fromkeys(layer_names))
    modules = dict(model.named_modules())
    for name in names:
        if not isinstance(name, str) or name not in modules or name == "":
            raise AicomputeError(
                f"layer_names has {name!r}, which the model does not have{did_you_mean(str(name), modules)}; "
                "use names from model.named_modules()"
            )
        if not isinstance(modules[name], _WEIGHT_LAYERS):
            raise AicomputeError(
                f"layer_names has {name!r}, a {type(modules[name]).__name__}; name nn.Conv1d/2d/3d or nn.Linear layers"
            )
    keys: dict[str, ActivationKey | None]
    if input_qparams is None:
        keys = dict.fromkeys(names)
    else:
        given = _checked(input_qparams, "input_qparams", modules)
        keys = {n: activation_key(qp, f"input_qparams[{n!r}]", opset) for n, qp in given.items()}

    g = QDQGraph(float_proto(model, example_input, opset, dynamic_batch=True))
    return graph_output_verdicts(g, names, keys)


def graph_output_verdicts(
    g: QDQGraph, names: list[str], keys: Mapping[str, ActivationKey | None]
) -> tuple[OutputVerdict, ...]:
    """:func:`output_quant_plan` on a graph already exported: ``keys`` maps every module whose input is
    quantized (layers and junction blocks) to its key, None when not known yet."""
    layer_nodes = g.layer_nodes()
    _check_found(names, layer_nodes)
    quantized = {slot: (name, key) for name, key in keys.items() for slot in g.input_slots(name, layer_nodes)}
    return tuple(output_verdict(g, name, quantized) for name in names)


def layers_needing_output_quant(
    model: nn.Module,
    example_input: Tensor,
    layer_names: Iterable[str],
    *,
    input_qparams: Mapping[str, QParams] | None = None,
    opset: int = DEFAULT_OPSET,
) -> list[str]:
    """The layers of ``layer_names`` whose output must be quantized by their own Q/DQ pair (``output_qparams``):
    those whose output reaches anything but other quantized layers' inputs — through ops ORT quantizes
    across — such as a residual ``Add``, a ``Concat`` or a conv's graph output (a ``Gemm``'s may stay float:
    ``QGemm`` writes float). See :func:`output_quant_plan`."""
    plan = output_quant_plan(model, example_input, layer_names, input_qparams=input_qparams, opset=opset)
    return [verdict.layer for verdict in plan if verdict.needs_pair]
