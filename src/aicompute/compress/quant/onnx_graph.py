"""The exported ONNX graph as :mod:`.export` rewrites it: which nodes each module made, Q/DQ insertion, and
where ONNX Runtime carries quantization across an op.

:class:`QDQGraph` indexes a float graph written by torch's dynamo exporter, whose nodes carry the names of the
modules they were traced in (``pkg.torch.onnx.name_scopes``), and inserts nodes before or after existing
ones without reordering them (:meth:`QDQGraph.finish` writes the list back in topological order). Activation
parameters are compared as an :data:`ActivationKey` ``(ONNX code type, scale, zero point)``.

**Where ORT carries quantization.** ORT turns ``DQ → Conv → Q`` into ``QLinearConv`` only when *every* reader
of the conv's output is that one ``QuantizeLinear``; :func:`output_verdict` decides, for a layer, whether its
output gets there without a Q/DQ pair of its own. A value is followed through a node that is its only reader
when ORT moves a ``QuantizeLinear`` back across it (measured on ORT 1.32 at opset 21, and read in its
``qdq_propagation.cc`` / ``relu_quantizelinear.cc``):

* ``MaxPool``, ``Reshape`` (what ``torch.flatten`` exports), ``Transpose``, ``Squeeze``, ``Unsqueeze``,
  ``Slice``: ORT's QDQ propagation copies the Q/DQ pair before them (each must be its input's only reader);
* ``Identity``: removed by ORT before its QDQ passes;
* ``Relu``: dropped when the ``QuantizeLinear`` after it has its zero point at the grid minimum (0 for
  uint8, -128 for int8) — the clamp of the quantizer *is* the ReLU then.

The walk ends well on the quantized inputs of other layers that share one ``QuantizeLinear`` (their input
parameters are equal: the export inserts one pair for them), and, for a ``Gemm``/``MatMul`` layer, on the
graph output: ORT's ``QGemm`` (``MatMulIntegerToFloat``) may write float, so logits stay unquantized (and
unclipped). It ends badly — the layer needs its own output
Q/DQ pair — on anything else: a graph output, an ``Add``/``Concat``/``Mul``, a layer whose input is not
quantized, a ``Flatten`` node (not propagated), a value with several readers of which one is not a
quantizer, or readers with different input parameters (two ``QuantizeLinear`` nodes).
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import Tensor

from aicompute.compress.quant.qparams import QParams
from aicompute.errors import AicomputeError

__all__ = [
    "ActivationKey",
    "ACTIVATION_TYPES",
    "CODE_NUMPY_TYPES",
    "INT4_TYPES",
    "LAYER_OPS",
    "PASSTHROUGH_OPS",
    "QDQGraph",
    "OutputVerdict",
    "JUNCTION_OPS",
    "activation_key",
    "junction_blocks",
    "node_scopes",
    "output_verdict",
]

ActivationKey = tuple[int, float, int]
"""Per-tensor activation parameters as the graph stores them: ``(ONNX code type, scale, zero point)``."""

# activation grid (qmin, qmax) -> ONNX type of its codes: QuantizeLinear saturates to the whole type
ACTIVATION_TYPES = {
    (-128, 127): TensorProto.INT8,
    (0, 255): TensorProto.UINT8,
    (-(1 << 15), (1 << 15) - 1): TensorProto.INT16,  # opset ≥ 21
    (0, (1 << 16) - 1): TensorProto.UINT16,  # opset ≥ 21
}
_GRID_MIN = {code_type: qmin for (qmin, _), code_type in ACTIVATION_TYPES.items()}
CODE_NUMPY_TYPES = {
    TensorProto.INT8: np.int8,
    TensorProto.UINT8: np.uint8,
    TensorProto.INT16: np.int16,
    TensorProto.UINT16: np.uint16,
}
INT4_TYPES = (TensorProto.INT4, TensorProto.UINT4)
LAYER_OPS = ("Conv", "Gemm", "MatMul")
"""ONNX ops that compute a ``Conv``/``Linear`` module."""
PASSTHROUGH_OPS = frozenset({"MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Identity", "Relu"})
"""Ops a ``QuantizeLinear`` moves back across in ORT (``Relu`` only with the zero point at the grid minimum)."""
JUNCTION_OPS = frozenset({"Add", "Sum", "Concat"})
"""Ops joining activations that ORT runs on integers when their inputs and output are quantized (``QLinearAdd``,
``QLinearConcat``): what makes a module a junction block (:func:`junction_blocks`)."""


def node_scopes(node: onnx.NodeProto) -> list[str]:
    """Names of the modules ``node`` was traced in, outermost first, without the root ``''``."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            return [s for s in ast.literal_eval(prop.value)[:-1] if s]  # the last entry is the op itself
    return []


def activation_key(qp: QParams, what: str, opset: int) -> ActivationKey:
    """The key of per-tensor activation parameters, or an error saying why ONNX cannot store them."""
    if not isinstance(qp, QParams):
        raise AicomputeError(f"{what} must be a QParams, got {type(qp).__name__}")
    if qp.per_channel or qp.binary:
        raise AicomputeError(
            f"{what} is {'binary' if qp.binary else 'per-channel'}; ONNX activations are quantized per tensor on an "
            "integer grid: use a per-tensor scheme with bits=8"
        )
    code_type = ACTIVATION_TYPES.get((qp.qmin, qp.qmax))
    if code_type is None or (code_type in (TensorProto.INT16, TensorProto.UINT16) and opset < 21):
        raise AicomputeError(
            f"{what} has the grid [{qp.qmin}, {qp.qmax}]; QuantizeLinear saturates to its whole type, so activations "
            "need the full int8 [-128, 127] or uint8 [0, 255] grid (bits=8, narrow_range=False; 16 bits from opset 21)"
        )
    return code_type, float(qp.scale), int(qp.zero_point)


class QDQGraph:
    """The graph being rewritten: lookups, fresh names, and nodes to insert before/after existing ones.

    ``nodes`` is the original node list, indexed as it was exported; insertions wait in ``before`` /
    ``after`` (by index) until :meth:`finish`. ``float_values`` are the float tensors (from shape inference).
    """

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.graph = proto.graph
        self.init = {t.name: t for t in self.graph.initializer}
        typed = onnx.shape_inference.infer_shapes(proto).graph  # a copy: its value_info stays out of the file
        values = [*typed.input, *typed.value_info, *typed.output]
        self.float_values = {v.name for v in values if v.type.tensor_type.elem_type == TensorProto.FLOAT}
        self.nodes = list(self.graph.node)
        self.scopes = [node_scopes(n) for n in self.nodes]
        self.before: dict[int, list[onnx.NodeProto]] = {}
        self.after: dict[int, list[onnx.NodeProto]] = {}
        self.dq_params: dict[str, ActivationKey] = {}  # DequantizeLinear output -> its parameters
        self.renamed: dict[str, str] = {}  # float output renamed by an output Q→DQ -> the value DQ now makes
        self.input_pairs: dict[tuple[str, ActivationKey], str] = {}  # (value, key) -> DQ output of its input Q→DQ
        made = (name for node in self.nodes for name in (node.name, *node.output))
        self._names = {*self.init, *made, *(i.name for i in self.graph.input)}  # values and node names in use

    # --- lookups ---------------------------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``, ... if taken."""
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def add_init(self, base: str, tensor: onnx.TensorProto) -> str:
        tensor.name = self.fresh(base)
        self.graph.initializer.append(tensor)
        self.init[tensor.name] = tensor
        return tensor.name

    def producer(self, value: str) -> int | None:
        """Index of the node making ``value`` (of the float original, when an output Q→DQ renamed it)."""
        made = next((raw for raw, renamed in self.renamed.items() if renamed == value), value)
        return next((i for i, node in enumerate(self.nodes) if made in node.output), None)

    def readers(self, value: str) -> list[tuple[int, int]]:
        """``(node index, input slot)`` of every original node reading ``value``."""
        return [(i, k) for i, node in enumerate(self.nodes) for k, name in enumerate(node.input) if name == value]

    def is_graph_output(self, value: str) -> bool:
        return any(o.name == value for o in self.graph.output)

    def in_scope(self, module: str) -> list[int]:
        return [i for i, s in enumerate(self.scopes) if module in s]

    def layer_nodes(self) -> dict[str, list[int]]:
        """Conv/Gemm/MatMul nodes with a constant weight, by the innermost module they were traced in (graph order)."""
        layers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            if node.op_type in LAYER_OPS and len(node.input) > 1 and node.input[1] in self.init:
                module = self.scopes[i][-1] if self.scopes[i] else node.name
                layers.setdefault(module, []).append(i)
        return layers

    def module_inputs(self, module: str) -> list[tuple[int, int]]:
        """``(node index, input slot)`` where a float activation made outside ``module`` enters it (the
        dequantized value, where an enclosing module's input pair already quantized it)."""
        inside = self.in_scope(module)
        made_inside = {name for i in inside for name in self.nodes[i].output}
        made_inside |= {self.renamed[name] for name in made_inside if name in self.renamed}  # now made by an output DQ
        constants = {name for n in self.nodes if n.op_type == "Constant" for name in n.output}
        return [
            (i, k)
            for i in inside
            for k, name in enumerate(self.nodes[i].input)
            if name
            and (name in self.float_values or name in self.dq_params)
            and name not in made_inside
            and name not in self.init
            and name not in constants
        ]

    def input_slots(self, module: str, layers: dict[str, list[int]]) -> list[tuple[int, int]]:
        """Where ``module``'s input is quantized: the data input of its Conv/Gemm/MatMul nodes (``layers``, from
        :meth:`layer_nodes`), or every float activation entering it for another module."""
        return [(i, 0) for i in layers[module]] if module in layers else self.module_inputs(module)

    def module_outputs(self, module: str) -> list[tuple[int, int, str]]:
        """``(node index, output slot, value)`` of the float values made inside ``module`` and read outside it
        (or graph outputs); ``value`` is the name readers see (a DQ's, when already quantized)."""
        inside = set(self.in_scope(module))
        read_outside = {name for i, n in enumerate(self.nodes) if i not in inside for name in n.input}
        read_outside |= {o.name for o in self.graph.output}
        outputs = []
        for i in sorted(inside):
            for k, name in enumerate(self.nodes[i].output):
                value = self.renamed.get(name, name)
                if value in read_outside and value in self.float_values:
                    outputs.append((i, k, value))
        return outputs

    # --- Q/DQ nodes ------------------------------------------------------------------------------------

    def dq_node(self, codes: str, scale: str, zero_point: str | None, out: str, axis: int | None) -> onnx.NodeProto:
        """``DequantizeLinear(codes, scale[, zero_point])`` writing a fresh name based on ``out``; a missing zero
        point means 0 of the codes' type."""
        inputs = [codes, scale] if zero_point is None else [codes, scale, zero_point]
        attrs = {} if axis is None else {"axis": axis}
        output = self.fresh(out)
        return helper.make_node("DequantizeLinear", inputs, [output], self.fresh(f"{out}_DequantizeLinear"), **attrs)

    def constant_dq(
        self, base: str, codes: onnx.TensorProto, scale: np.ndarray, zero_point: Tensor | None, axis: int | None
    ) -> onnx.NodeProto:
        """DQ of constant codes (``zero_point=None``: 0, left out of the file, as for the int32 bias)."""
        q = self.add_init(f"{base}_quantized", codes)
        s = self.add_init(f"{base}_scale", numpy_helper.from_array(scale.astype(np.float32)))
        z = None
        if zero_point is not None:  # weights keep theirs even when 0: ORT fuses DQ → Gemm into QGemm only with it
            zp = zero_point.reshape(scale.shape)
            if codes.data_type in INT4_TYPES:
                tensor = helper.make_tensor("zp", codes.data_type, list(zp.shape), zp.reshape(-1).tolist())
            else:
                tensor = numpy_helper.from_array(zp.numpy().astype(helper.tensor_dtype_to_np_dtype(codes.data_type)))
            z = self.add_init(f"{base}_zero_point", tensor)
        return self.dq_node(q, s, z, f"{base}_dequantized", axis)

    def qdq_pair(self, value: str, key: ActivationKey, base: str) -> tuple[list[onnx.NodeProto], str]:
        """``QuantizeLinear → DequantizeLinear`` reading ``value``; returns the two nodes and the DQ output."""
        code_type, scale, zp = key
        s = self.add_init(f"{base}_scale", numpy_helper.from_array(np.array(scale, dtype=np.float32)))
        zero_point = np.array(zp, dtype=CODE_NUMPY_TYPES[code_type])
        z = self.add_init(f"{base}_zero_point", numpy_helper.from_array(zero_point))
        q_out = self.fresh(f"{base}_quantized")
        q = helper.make_node("QuantizeLinear", [value, s, z], [q_out], self.fresh(f"{base}_QuantizeLinear"))
        dq = self.dq_node(q_out, s, z, f"{base}_dequantized", None)  # the zero point also fixes Q's output type
        self.dq_params[dq.output[0]] = key
        return [q, dq], dq.output[0]

    def quantize_output(self, module: str, key: ActivationKey) -> list[str]:
        """Q→DQ right after each output of ``module``, for all its readers: the producer's output is renamed and
        the DQ takes its name. Returns the values quantized (none new when another module's pair is there)."""
        outputs = self.module_outputs(module)
        if not outputs:
            raise AicomputeError(
                f"module {module!r} has no float output in the exported graph (the exporter removed or fused it); "
                "put its output_qparams on the module that computes the value"
            )
        inside = set(self.in_scope(module))
        done = []
        for i, k, value in outputs:
            if value in self.dq_params:  # another module's output too (a block and its last ReLU)
                if self.dq_params[value] != key:
                    raise AicomputeError(
                        f"output_qparams of {module!r} differ from those already given for the same value {value!r} "
                        "(the output of an enclosing or enclosed module): give one set of parameters"
                    )
                continue
            raw = self.fresh(f"{value}_float")
            self.renamed[raw] = value
            self.nodes[i].output[k] = raw
            for j in inside:  # the module's own later steps keep reading the float value, as under a forward hook
                for slot, name in enumerate(self.nodes[j].input):
                    if name == value:
                        self.nodes[j].input[slot] = raw
            nodes, dq_out = self.qdq_pair(raw, key, value)
            nodes[1].output[0] = value  # readers keep reading `value`, now the dequantized one
            self.dq_params.pop(dq_out)
            self.dq_params[value] = key
            self.after.setdefault(i, []).extend(nodes)
            done.append(value)
        return done

    def quantize_input(self, index: int, slot: int, key: ActivationKey) -> str | None:
        """Q→DQ between node ``index``'s input ``slot`` and its producer; returns the value, or None when nothing
        new was inserted (it is already dequantized so, or another reader's identical pair is reused)."""
        node = self.nodes[index]
        value = node.input[slot]
        if self.dq_params.get(value) == key:
            return None
        inserted = None
        dequantized = self.input_pairs.get((value, key))
        if dequantized is None:
            nodes, dequantized = self.qdq_pair(value, key, value)
            self.input_pairs[value, key] = dequantized
            producer = self.producer(value)  # right after it: every reader, earlier or later in the list, sees it
            (self.before.setdefault(0, []) if producer is None else self.after.setdefault(producer, [])).extend(nodes)
            inserted = value
        node.input[slot] = dequantized
        return inserted

    def finish(self) -> None:
        """Write the node list back in topological order, dropping initializers nothing reads any more."""
        ordered = []
        for i, node in enumerate(self.nodes):
            ordered += [*self.before.get(i, []), node, *self.after.get(i, [])]
        del self.graph.node[:]
        self.graph.node.extend(ordered)
        used = {name for n in ordered for name in n.input} | {o.name for o in self.graph.output}
        keep = [t for t in self.graph.initializer if t.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep)


# ---------------------------------------------------------------------------------------------- output verdicts


@dataclass(frozen=True)
class OutputVerdict:
    """Whether a layer's output needs a Q/DQ pair of its own for ORT to run the layer on integers."""

    layer: str
    needs_pair: bool
    reason: str
    """What the output reaches: the first thing ORT cannot quantize across, or the layers whose input
    quantizer already quantizes it (and the ops passed on the way)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


QuantizedInputs = dict[tuple[int, int], tuple[str, ActivationKey | None]]
"""``(node index, input slot) -> (layer, key)`` of every quantized layer input; key None: not known yet."""


def output_verdict(g: QDQGraph, layer: str, quantized: QuantizedInputs) -> OutputVerdict:
    """Follow each output of ``layer`` through ops ORT quantizes across (module docstring) and say whether it
    ends on one quantizer of other layers' inputs. A None key stands for parameters not known yet, assumed
    shared by readers of one value and with the zero point at the grid minimum (a ReLU output, uint8 affine)."""
    outputs = g.module_outputs(layer)
    if not outputs:
        raise AicomputeError(
            f"layer {layer!r} has no float output in the exported graph (the exporter removed or fused it); "
            "name the module that computes the value"
        )
    reached: list[str] = []
    passed: list[str] = []
    nodes = g.layer_nodes().get(layer, [])
    gemm = bool(nodes) and all(g.nodes[i].op_type in ("Gemm", "MatMul") for i in nodes)
    for _, _, value in outputs:
        path: list[str] = []
        blocker = _follow(g, value, quantized, reached, path)
        if blocker == "is a graph output" and gemm:
            passed += path  # QGemm / MatMulIntegerToFloat write float: logits need no quantizer
            reached.append("the graph output (ORT's QGemm writes float)")
            continue
        if blocker is not None:
            after = f" after {' → '.join(path)}" if path else ""
            return OutputVerdict(layer, True, f"output {value!r}{after} {blocker}")
        passed += path
    via = f" through {', '.join(dict.fromkeys(passed))}" if passed else ""
    return OutputVerdict(layer, False, f"only the quantized input of {sorted(set(reached))}{via}")


def _follow(g: QDQGraph, value: str, quantized: QuantizedInputs, reached: list[str], path: list[str]) -> str | None:
    """Walk from ``value`` while it has one reader that ORT quantizes across (appending its op to ``path``);
    None when the walk ends on one quantizer of layer inputs (their names go to ``reached``), else what stops it."""
    relu = None
    while True:
        if g.is_graph_output(value):
            return "is a graph output"
        readers = g.readers(value)
        if readers and all(r in quantized for r in readers):
            layers = sorted({quantized[r][0] for r in readers})
            keys = {quantized[r][1] for r in readers}
            if len(keys) > 1:
                return f"feeds {layers} with different input parameters (one QuantizeLinear each)"
            key = keys.pop()
            if relu is not None and key is not None and key[2] != _GRID_MIN[key[0]]:
                return (
                    f"reaches the input quantizer of {layers} with zero point {key[2]}, not the grid minimum "
                    f"{_GRID_MIN[key[0]]}: ORT keeps Relu {relu!r} in float"
                )
            reached += layers
            return None
        if len(readers) == 1 and readers[0][1] == 0:
            node = g.nodes[readers[0][0]]
            if node.op_type in PASSTHROUGH_OPS:
                relu = node.name if node.op_type == "Relu" else relu
                path.append(node.op_type)
                value = node.output[0]
                continue
        others = [g.nodes[i] for i, k in readers if (i, k) not in quantized]
        if not others:
            return "is not read"
        shared = f" and {len(readers) - len(others)} quantized input(s)" if len(others) < len(readers) else ""
        return f"reaches {', '.join(f'{n.op_type} {n.name!r}' for n in others)}{shared}"


# ---------------------------------------------------------------------------------------------- junction blocks


def junction_blocks(g: QDQGraph) -> dict[str, str | None]:
    """The modules whose own nodes join two or more activations (:data:`JUNCTION_OPS`: a residual add, a
    concatenation), innermost module per join, in graph order, each with None when its input and output can
    be quantized as one tensor each (:mod:`.junctions`), else why not: the join is in the model's own
    forward, or the block takes or returns several tensors."""
    constants = {name for n in g.nodes if n.op_type == "Constant" for name in n.output}
    blocks: dict[str, str | None] = {}
    for i, node in enumerate(g.nodes):
        if node.op_type not in JUNCTION_OPS:
            continue
        joined = [v for v in node.input if v in g.float_values and v not in g.init and v not in constants]
        if len(joined) < 2:
            continue  # a bias or a constant added to one activation
        module = g.scopes[i][-1] if g.scopes[i] else ""
        if module in blocks:
            continue
        if module == "":
            blocks[module] = f"{node.op_type} {node.name!r} is in the model's own forward, not in a submodule"
            continue
        entering = {g.nodes[j].input[k] for j, k in g.module_inputs(module)}
        leaving = g.module_outputs(module)
        if len(entering) != 1:
            blocks[module] = f"it takes {len(entering)} activations, not one"
        elif len(leaving) != 1:
            blocks[module] = f"it returns {len(leaving)} activations, not one"
        else:
            blocks[module] = None
    return blocks
