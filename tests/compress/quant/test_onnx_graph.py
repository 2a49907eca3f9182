"""The graph index, Q/DQ insertion, and the output verdicts, on small hand-built ONNX graphs.

Each verdict is checked against ONNX Runtime itself: the graph is given the Q/DQ pairs the export would
write (weights and the quantized layers' inputs, no output pair), and ORT's optimized graph shows whether the
first conv ran as ``QLinearConv`` — which it does exactly when :func:`output_verdict` says no pair is needed.
"""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from aicompute.compress.quant.onnx_graph import (
    QDQGraph,
    activation_key,
    node_scopes,
    output_verdict,
)
from aicompute.compress.quant.qparams import QParams
from aicompute.compress.quant.runtime import optimized_op_counts
from aicompute.errors import AicomputeError

U8 = (TensorProto.UINT8, 0.05, 0)  # ReLU outputs: zero point at the grid minimum
U8_MID = (TensorProto.UINT8, 0.05, 128)  # signed data on uint8 (the graph input)
U8_Z5 = (TensorProto.UINT8, 0.05, 5)
U8_WIDE = (TensorProto.UINT8, 0.08, 0)
I8_SYM = (TensorProto.INT8, 0.05, 0)  # symmetric int8: zero point 0 is not the grid minimum -128
C, HW = 4, 6


def scoped(node: onnx.NodeProto, *scopes: str) -> onnx.NodeProto:
    """``node`` with the exporter's module-scope metadata (root '' first, the op itself last)."""
    prop = node.metadata_props.add()
    prop.key, prop.value = "pkg.torch.onnx.name_scopes", repr(["", *scopes, node.name])
    return node


def conv(name: str, src: str, out: str) -> onnx.NodeProto:
    return scoped(helper.make_node("Conv", [src, f"{name}.weight"], [out], f"node_{name}", pads=[1, 1, 1, 1]), name)


def gemm(name: str, src: str, out: str) -> onnx.NodeProto:
    return scoped(helper.make_node("Gemm", [src, f"{name}.weight"], [out], f"node_{name}", transB=1), name)


def op(op_type: str, inputs: list[str], out: str, **attrs) -> onnx.NodeProto:
    return helper.make_node(op_type, inputs, [out], f"node_{out}", **attrs)


def model(nodes: list[onnx.NodeProto], outputs: list[str]) -> onnx.ModelProto:
    """x (1, 4, 6, 6) → conv ``a`` → ``nodes``; every conv is 4 → 4 channels, 3×3, padded; ``fc`` takes 144."""
    g = torch.Generator().manual_seed(0)
    weights = {f"{n.name[5:]}.weight": (C, C, 3, 3) if n.op_type == "Conv" else (10, C * HW * HW)
               for n in nodes if n.op_type in ("Conv", "Gemm")}  # fmt: skip
    inits = [numpy_helper.from_array(torch.randn(shape, generator=g).numpy(), name) for name, shape in weights.items()]
    inits.append(numpy_helper.from_array(np.array([1, C * HW * HW], dtype=np.int64), "flat_shape"))
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, HW, HW])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    typed = {v.name: v for v in [*inferred.value_info, *inferred.output] if v.type.tensor_type.HasField("shape")}
    for out in proto.graph.output:  # the checker wants the outputs' shapes: shape inference knows them
        if out.name in typed:
            out.CopyFrom(typed[out.name])
    return proto


# Each case: the nodes after "a" (x → a → "ya"), graph outputs, input keys of the quantized layers, and
# whether a's output needs its own pair (with a piece of the reason).
CASES = {
    "relu → conv": ([op("Relu", ["ya"], "r"), conv("b", "r", "yb")], ["yb"], {"b": U8}, False, "through Relu"),
    "relu → zero point not minimal": (
        [op("Relu", ["ya"], "r"), conv("b", "r", "yb")], ["yb"], {"b": U8_Z5}, True, "zero point 5"
    ),
    "relu → symmetric int8": (
        [op("Relu", ["ya"], "r"), conv("b", "r", "yb")], ["yb"], {"b": I8_SYM}, True, "grid minimum -128"
    ),
    "relu → maxpool → transpose": (
        [op("Relu", ["ya"], "r"), op("MaxPool", ["r"], "p", kernel_shape=[2, 2], strides=[1, 1]),
         op("Transpose", ["p"], "t", perm=[0, 1, 3, 2]), conv("b", "t", "yb")],
        ["yb"], {"b": U8}, False, "Relu, MaxPool, Transpose",
    ),
    "residual add": ([op("Add", ["ya", "x"], "s"), conv("b", "s", "yb")], ["yb"], {"b": U8}, True, "Add 'node_s'"),
    "graph output": ([conv("b", "ya", "yb")], ["ya", "yb"], {"b": U8_MID}, True, "graph output"),
    "two readers, one quantizer": (
        [conv("b", "ya", "yb"), conv("c", "ya", "yc")], ["yb", "yc"], {"b": U8_MID, "c": U8_MID}, False, "['b', 'c']"
    ),
    "two readers, two quantizers": (
        [conv("b", "ya", "yb"), conv("c", "ya", "yc")], ["yb", "yc"], {"b": U8_MID, "c": U8_WIDE}, True, "different"
    ),
    "relu read by a conv and an add": (
        [op("Relu", ["ya"], "r"), conv("b", "r", "yb"), op("Add", ["r", "yb"], "s")], ["s"], {"b": U8}, True,
        "after Relu reaches Add 'node_s' and 1 quantized input",
    ),
    "reader with a float input": ([conv("b", "ya", "yb")], ["yb"], {}, True, "Conv 'node_b'"),
    "reshape → gemm": (
        [op("Reshape", ["ya", "flat_shape"], "f"), gemm("fc", "f", "logits")], ["logits"], {"fc": U8_MID}, False,
        "through Reshape",
    ),
    "flatten → gemm": (
        [op("Flatten", ["ya"], "f", axis=1), gemm("fc", "f", "logits")], ["logits"], {"fc": U8_MID}, True, "Flatten"
    ),
}  # fmt: skip


def verdict_of(proto: onnx.ModelProto, keys: dict) -> tuple:
    g = QDQGraph(proto)
    layers = g.layer_nodes()
    quantized = {slot: (name, key) for name, key in keys.items() for slot in g.input_slots(name, layers)}
    return output_verdict(g, "a", quantized), g, layers


def with_qdq(proto: onnx.ModelProto, keys: dict) -> onnx.ModelProto:
    """What the export writes without output pairs: int8 per-tensor weights through DQ, Q→DQ on quantized inputs."""
    g = QDQGraph(proto)
    layers = g.layer_nodes()
    for name, indices in layers.items():
        w = numpy_helper.to_array(g.init[g.nodes[indices[0]].input[1]])
        scale = np.float32(np.abs(w).max() / 127)
        codes = numpy_helper.from_array(np.round(w / scale).astype(np.int8))
        dq = g.constant_dq(f"{name}.weight", codes, np.array(scale), torch.tensor(0), None)
        g.before.setdefault(indices[0], []).append(dq)
        g.nodes[indices[0]].input[1] = dq.output[0]
    for name, key in keys.items():
        for i, k in g.input_slots(name, layers):
            g.quantize_input(i, k, key)
    g.finish()
    onnx.checker.check_model(proto)
    return proto


@pytest.mark.parametrize("case", list(CASES))
def test_verdict_says_what_ort_fuses(case, tmp_path):
    nodes, outputs, reader_keys, needs_pair, reason = CASES[case]
    keys = {"a": U8_MID, **reader_keys}
    verdict, _, _ = verdict_of(model([conv("a", "x", "ya"), *nodes], outputs), keys)
    assert verdict.layer == "a" and verdict.needs_pair == needs_pair, verdict
    assert reason in verdict.reason, verdict.reason
    # the independent reference: did ORT run conv `a` as QLinearConv? (every other conv ends in a float output)
    path = tmp_path / "qdq.onnx"
    onnx.save(with_qdq(model([conv("a", "x", "ya"), *nodes], outputs), keys), str(path))
    ops = optimized_op_counts(path)
    assert ops["QLinearConv"] == (0 if needs_pair else 1), (case, dict(ops))


def test_unknown_parameters_are_assumed_shared_with_the_zero_point_at_the_minimum():
    relu = model([conv("a", "x", "ya"), op("Relu", ["ya"], "r"), conv("b", "r", "yb"), conv("c", "r", "yc")],
                 ["yb", "yc"])  # fmt: skip
    verdict, _, _ = verdict_of(relu, {"b": None, "c": None})
    assert not verdict.needs_pair and "['b', 'c']" in verdict.reason
    verdict, _, _ = verdict_of(relu, {"b": None, "c": U8})  # one known, one not: two quantizers
    assert verdict.needs_pair and "different" in verdict.reason


def test_a_layer_without_an_output_in_the_graph_is_refused():
    proto = model([conv("a", "x", "ya")], ["ya"])
    g = QDQGraph(proto)
    with pytest.raises(AicomputeError, match="no float output"):
        output_verdict(g, "missing", {})


def test_index_scopes_readers_and_slots():
    proto = model([conv("a", "x", "ya"), op("Relu", ["ya"], "r"), conv("b", "r", "yb"), op("Add", ["r", "yb"], "s")],
                  ["s"])  # fmt: skip
    g = QDQGraph(proto)
    assert [node_scopes(n) for n in proto.graph.node] == [["a"], [], ["b"], []]
    assert g.layer_nodes() == {"a": [0], "b": [2]}
    assert g.readers("r") == [(2, 0), (3, 0)] and g.readers("s") == [] and g.is_graph_output("s")
    assert g.module_outputs("a") == [(0, 0, "ya")] and g.module_inputs("b") == [(2, 0)]
    assert g.input_slots("b", g.layer_nodes()) == [(2, 0)]
    assert g.fresh("r") == "r_1" and g.fresh("r") == "r_2" and g.fresh("new") == "new"


def test_pairs_are_shared_reused_and_written_in_topological_order(tmp_path):
    proto = model([conv("a", "x", "ya"), conv("b", "ya", "yb"), conv("c", "ya", "yc")], ["yb", "yc"])
    g = QDQGraph(proto)
    assert g.quantize_output("a", U8_MID) == ["ya"]
    assert g.quantize_input(1, 0, U8_MID) is None  # b reads a's DQ with the same parameters: nothing new
    assert g.quantize_input(2, 0, U8_WIDE) == "ya"  # c requantizes it with its own
    assert g.quantize_input(0, 0, U8_MID) == "x" and g.quantize_input(0, 0, U8_MID) is None
    g.finish()
    onnx.checker.check_model(proto)  # includes the topological order of the rewritten node list
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") == 3 and ops.index("QuantizeLinear") < ops.index("Conv")
    producers = {o: n for n in proto.graph.node for o in n.output}
    assert producers["ya"].op_type == "DequantizeLinear"  # readers keep the name, now dequantized
    assert producers[proto.graph.node[ops.index("Conv")].output[0]].op_type == "Conv"
    # a block whose output is its conv's: the same value, one pair; different parameters are refused
    inner = conv("a", "x", "ya")
    inner.metadata_props[0].value = repr(["", "blk", "a", inner.name])
    g = QDQGraph(model([inner], ["ya"]))
    assert g.quantize_output("a", U8) == ["ya"] and g.quantize_output("blk", U8) == []
    with pytest.raises(AicomputeError, match="differ from those already given"):
        g.quantize_output("blk", U8_WIDE)


def test_activation_keys_and_their_errors():
    assert activation_key(QParams(0.5, 3, 0, 255), "q", 21) == (TensorProto.UINT8, 0.5, 3)
    assert activation_key(QParams(0.5, 0, -(1 << 15), (1 << 15) - 1), "q", 21)[0] == TensorProto.INT16
    with pytest.raises(AicomputeError, match=r"\[-127, 127\]"):
        activation_key(QParams(1.0, 0, -127, 127), "q", 21)
    with pytest.raises(AicomputeError, match="16 bits from opset 21"):
        activation_key(QParams(0.5, 0, -(1 << 15), (1 << 15) - 1), "q", 20)
    with pytest.raises(AicomputeError, match="per-channel"):
        activation_key(QParams(torch.ones(2), torch.zeros(2), 0, 255, axis=1), "q", 21)
    with pytest.raises(AicomputeError, match="must be a QParams"):
        activation_key(0.5, "q", 21)
