"""QDQ export: the ONNX graph carries our own codes, scales and zero points, ONNX Runtime's output equals a
torch simulation of the same quantization, weight-only int4 layers are stored packed, mistakes are refused,
and residual networks run every conv in int8 once the layers ``layers_needing_output_quant`` names quantize
their outputs.

The first reference simulation is plain torch: weights replaced by ``QParams.fake_quantize(weight)``, and
forward (pre-)hooks that fake-quantize a module's input / output with the same parameters. The residual tests
compare ORT with the library's own prepared model in quantize mode (``modules.prepare``).
"""

import copy
import json
import math

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

from aicompute.compress.quant.export import (
    export_onnx,
    export_qdq,
    layers_needing_output_quant,
    output_quant_plan,
)
from aicompute.compress.quant.fold import fold_batchnorm
from aicompute.compress.quant.modules import calibrate, freeze, prepare, quant_layers, quantize_outputs
from aicompute.compress.quant.packing import pack_int4
from aicompute.compress.quant.qparams import QParams, QScheme, compute_qparams
from aicompute.compress.quant.runtime import optimized_op_counts, ort_accuracy, ort_run, ort_session
from aicompute.errors import AicomputeError
from aicompute.models import get_model

UINT8_AFFINE = QScheme(symmetric=False, signed=False)  # activations: ReLU outputs get zero point 0
LAYERS = ("stem", "block.conv1", "block.conv2", "fc")


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(c, c, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(c, c, 3, padding=1), nn.ReLU()

    def forward(self, x):
        return self.relu2(self.conv2(self.relu1(self.conv1(x))) + x)


class TinyResNet(nn.Module):
    """stem conv → ReLU → one residual block → global average pool → linear (BatchNorm-free: folded)."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem, self.relu = nn.Conv2d(3, c, 3, padding=1), nn.ReLU()
        self.block = Block(c)
        self.pool, self.flat, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.block(self.relu(self.stem(x))))))


def observe(model: nn.Module, x: torch.Tensor, names, *, outputs: bool = False) -> dict[str, torch.Tensor]:
    """The input (or output) each named module sees on ``x``."""
    seen, modules = {}, dict(model.named_modules())
    if outputs:
        hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o)) for n in names]
    else:
        hooks = [modules[n].register_forward_pre_hook(lambda m, i, n=n: seen.__setitem__(n, i[0])) for n in names]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def minmax(t: torch.Tensor, scheme: QScheme) -> QParams:
    return compute_qparams(t.min(), t.max(), scheme)


def weight_qparams(model: nn.Module, names, scheme: QScheme) -> dict[str, QParams]:
    modules, out = dict(model.named_modules()), {}
    for n in names:
        w = modules[n].weight.detach()
        if scheme.axis == 0:
            dims = tuple(range(1, w.dim()))
            out[n] = compute_qparams(w.amin(dim=dims), w.amax(dim=dims), scheme)
        else:
            out[n] = minmax(w, scheme)
    return out


def simulate(model: nn.Module, x: torch.Tensor, weights, inputs=None, outputs=None) -> torch.Tensor:
    """Torch reference: fake-quantized weights, inputs and outputs with the same QParams."""
    ref = copy.deepcopy(model).eval()
    modules = dict(ref.named_modules())
    with torch.no_grad():
        for n, qp in weights.items():
            modules[n].weight.copy_(qp.fake_quantize(modules[n].weight))
    for n, qp in (inputs or {}).items():
        modules[n].register_forward_pre_hook(lambda m, i, qp=qp: (qp.fake_quantize(i[0]),))
    for n, qp in (outputs or {}).items():
        modules[n].register_forward_hook(lambda m, i, o, qp=qp: qp.fake_quantize(o))
    with torch.no_grad():
        return ref(x)


def graph_of(path) -> tuple[onnx.GraphProto, dict, dict]:
    graph = onnx.load(str(path)).graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    return graph, inits, producers


def axis_of(node: onnx.NodeProto):
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), None)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = TinyResNet().eval()
    calib = torch.randn(32, 3, 10, 10)
    inputs = {n: minmax(t, UINT8_AFFINE) for n, t in observe(model, calib, LAYERS).items()}
    out_names = ("relu", "block.conv2", "block.relu2", "fc")
    observed = observe(model, calib, out_names, outputs=True)
    outputs = {n: minmax(t, UINT8_AFFINE if n != "fc" else QScheme()) for n, t in observed.items()}  # logits: int8
    return model, calib, inputs, outputs


@pytest.fixture(scope="module", params=["per-channel", "per-tensor"])
def exported(request, resnet, tmp_path_factory):
    model, calib, inputs, outputs = resnet
    scheme = QScheme(axis=0) if request.param == "per-channel" else QScheme()
    weights = weight_qparams(model, LAYERS, scheme)
    path = tmp_path_factory.mktemp("qdq") / "tiny.onnx"
    result = export_qdq(model, calib[:4], weights, inputs, path, output_qparams=outputs)
    return result, weights


def test_ort_output_equals_torch_simulation_within_one_output_step(resnet, exported):
    model, _, inputs, outputs = resnet
    result, weights = exported
    x = torch.randn(64, 3, 10, 10, generator=torch.Generator().manual_seed(1))  # not the calibration data
    expected = simulate(model, x, weights, inputs, outputs)
    got = ort_run(ort_session(result.path, threads=1), x)
    step = float(outputs["fc"].scale)  # the logits are quantized: ORT and torch may differ by one code
    diff = (got - expected).abs()
    assert diff.max() <= step * 1.001, f"max |ORT − torch| = {diff.max():.3g} > one output step {step:.3g}"
    assert (diff > step / 2).float().mean() < 0.05  # nearly every logit is the very same code
    # and the quantization is real: the float model differs from the simulation
    with torch.no_grad():
        assert (model(x) - expected).abs().max() > step
    # ORT's accuracy against the simulation's own predictions: at most one of 64 flips on a near-tie
    assert ort_accuracy(result.path, (x, expected.argmax(dim=1))) >= 63 / 64


def test_graph_carries_our_codes_scales_and_zero_points(resnet, exported):
    model, _, inputs, _ = resnet
    result, weights = exported
    graph, inits, producers = graph_of(result.path)
    modules = dict(model.named_modules())
    layer_nodes = {layer.module: layer.nodes[0] for layer in result.layers}
    assert set(layer_nodes) == set(LAYERS)
    for node in graph.node:
        if node.name not in layer_nodes.values():
            continue
        name = next(m for m, n in layer_nodes.items() if n == node.name)
        qp, weight = weights[name], modules[name].weight.detach()
        dq = producers[node.input[1]]
        assert dq.op_type == "DequantizeLinear"
        codes, scale, zero_point = (numpy_helper.to_array(inits[i]) for i in dq.input)
        assert inits[dq.input[0]].data_type == TensorProto.INT8
        assert np.array_equal(codes, qp.quantize(weight).numpy())  # Gemm keeps transB=1: torch layout
        assert np.array_equal(scale, qp.scale.numpy()) and np.array_equal(zero_point, qp.zero_point.numpy())
        assert axis_of(dq) == (0 if qp.per_channel else None)
        # int32 bias with scale s_in · s_w, zero point 0: what ORT folds into QLinearConv / QGemm
        bias_dq = producers[node.input[2]]
        b_codes, b_scale = (numpy_helper.to_array(inits[i]) for i in bias_dq.input)  # zero point left out: 0
        s_in = inputs[name].scale.numpy()
        assert b_codes.dtype == np.int32 and axis_of(bias_dq) == axis_of(dq)
        assert np.array_equal(b_scale, s_in * qp.scale.numpy())
        b = modules[name].bias.detach().double().numpy()
        assert np.array_equal(b_codes, np.round(b / b_scale.astype(np.float64)))
    # no float copy of a quantized weight is left in the file
    float_shapes = {tuple(t.dims) for t in graph.initializer if t.data_type == TensorProto.FLOAT}
    assert not float_shapes & {tuple(modules[n].weight.shape) for n in LAYERS}
    assert all(layer.bias == "int32" and layer.input_quantized for layer in result.layers)


def test_one_quantize_node_per_quantized_value(exported):
    result, _ = exported
    graph, _, _ = graph_of(result.path)
    quantizers = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    # the stem's ReLU output is both output_qparams["relu"] and block.conv1's input: quantized once
    assert len(quantizers) == len(result.quantized_values) == len(set(result.quantized_values))
    assert "x" in result.quantized_values  # the graph input, read by the stem
    json.dumps(result.to_dict())  # the record is JSON-safe


def test_layers_without_qparams_stay_float(resnet, tmp_path):
    model, calib, inputs, _ = resnet
    weights = weight_qparams(model, ["block.conv1"], QScheme(axis=0))
    result = export_qdq(model, calib[:4], weights, {"block.conv1": inputs["block.conv1"]}, tmp_path / "m.onnx")
    assert result.float_layers == ("stem", "block.conv2", "fc")
    assert result.quantized_layers == ("block.conv1",)
    graph, inits, producers = graph_of(result.path)
    modules = dict(model.named_modules())
    for layer in result.layers:
        node = next(n for n in graph.node if n.name == layer.nodes[0])
        if layer.module == "block.conv1":
            assert producers[node.input[1]].op_type == "DequantizeLinear"
        else:
            stored = numpy_helper.to_array(inits[node.input[1]])  # a float initializer, untouched
            assert np.array_equal(stored, modules[layer.module].weight.detach().numpy())
            assert layer.weight_bytes == 4 * modules[layer.module].weight.numel()
    assert result.quantized_values == ("relu",)  # only block.conv1's input
    x = torch.randn(16, 3, 10, 10)
    expected = simulate(model, x, weights, {"block.conv1": inputs["block.conv1"]})
    torch.testing.assert_close(ort_run(ort_session(result.path), x), expected, rtol=1e-4, atol=1e-5)


def test_int8_file_is_about_a_quarter_of_fp32(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(16, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3)
    ).eval()
    x = torch.randn(2, 16, 8, 8)
    names = ["0", "2", "4"]
    inputs = {n: minmax(t, UINT8_AFFINE) for n, t in observe(model, x, names).items()}
    fp32 = export_onnx(model, x, tmp_path / "fp32.onnx").stat().st_size
    result = export_qdq(model, x, weight_qparams(model, names, QScheme(axis=0)), inputs, tmp_path / "int8.onnx")
    n_weights = sum(model[int(n)].weight.numel() for n in names)  # 16·64·9 + 2·64·64·9 = 82944
    assert n_weights == 82944 and result.weight_bytes == n_weights  # one byte per int8 code, exactly
    # ≈ 1/4: four bytes per weight become one, plus per-channel scales, int32 biases and the Q/DQ nodes
    assert 3.6 < fp32 / result.file_bytes < 4.0, (fp32, result.file_bytes)


def test_weight_only_int4_is_stored_packed_and_runs(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5)).eval()
    x = torch.randn(8, 3, 6, 6)
    weights = weight_qparams(model, ["0", "3"], QScheme(bits=4, axis=0))
    result = export_qdq(model, x[:1], weights, None, tmp_path / "w4.onnx")  # batch 1: the batch stays dynamic
    graph, inits, producers = graph_of(result.path)
    for layer, index in zip(result.layers, (0, 3)):
        weight = model[index].weight.detach()
        assert layer.weight_dtype == "int4" and not layer.input_quantized and layer.bias == "float"
        assert layer.weight_bytes == math.ceil(weight.numel() / 2)  # 81 and 240 bytes: two codes per byte
        node = next(n for n in graph.node if n.name == layer.nodes[0])
        stored = inits[producers[node.input[1]].input[0]]
        assert stored.data_type == TensorProto.INT4
        assert stored.raw_data == pack_int4(weights[str(index)].quantize(weight))
    torch.testing.assert_close(ort_run(ort_session(result.path), x), simulate(model, x, weights), rtol=1e-4, atol=1e-5)


def test_unfolded_batchnorm_is_refused(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    with torch.no_grad():
        model[1].running_var.fill_(4.0)  # a BatchNorm that is not the identity
    weights = weight_qparams(model, ["0"], QScheme(axis=0))
    with pytest.raises(AicomputeError, match="fold BatchNorm"):
        export_qdq(model, torch.randn(2, 3, 6, 6), weights, None, tmp_path / "bn.onnx")
    assert not (tmp_path / "bn.onnx").exists()


PER_CHANNEL_8 = QParams(torch.ones(8), torch.zeros(8), -128, 127, axis=1)
FIVE_CHANNELS = QParams(torch.ones(5), torch.zeros(5), -128, 127, axis=0)


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda w, i: {"weight_qparams": {"stme": w["stem"]}}, r"'stme'.*did you mean 'stem'"),
        (lambda w, i: {"input_qparams": {"block.conv9": i["stem"]}}, "does not have"),
        (lambda w, i: {"weight_qparams": {"relu": w["stem"]}}, "ReLU"),
        (lambda w, i: {"weight_qparams": {"stem": 0.1}}, "must be a QParams"),
        (lambda w, i: {"weight_qparams": {"stem": PER_CHANNEL_8}}, "axis 1"),
        (lambda w, i: {"weight_qparams": {"stem": FIVE_CHANNELS}}, "5 channels"),
        (lambda w, i: {"weight_qparams": {"stem": QParams(1.0, 0, -(1 << 15), (1 << 15) - 1)}}, "wider than 8 bits"),
        (lambda w, i: {"input_qparams": {"stem": QParams(1.0, 0, -127, 127)}}, r"\[-127, 127\]"),
        (lambda w, i: {"input_qparams": {"stem": PER_CHANNEL_8}}, "per-channel"),
        (lambda w, i: {"input_qparams": {"stem": QParams.for_binary(0.5)}}, "binary"),
        (lambda w, i: {"output_qparams": {"fc": QParams(1.0, 0, 0, 15)}}, "output_qparams"),
    ],
)
def test_bad_qparams_are_refused_before_exporting(resnet, tmp_path, bad, match):
    model, calib, inputs, _ = resnet
    weights, stem_input = weight_qparams(model, ["stem"], QScheme(axis=0)), {"stem": inputs["stem"]}
    kwargs = {"weight_qparams": weights, "input_qparams": stem_input, **bad(weights, stem_input)}
    with pytest.raises(AicomputeError, match=match):
        export_qdq(model, calib[:2], path=tmp_path / "bad.onnx", **kwargs)
    assert not (tmp_path / "bad.onnx").exists()


def test_bad_arguments_are_refused(resnet, tmp_path):
    model, calib, inputs, _ = resnet
    x, weights = calib[:2], weight_qparams(model, ["stem"], QScheme(axis=0))
    with pytest.raises(AicomputeError, match="opset"):
        export_qdq(model, x, weights, inputs, tmp_path / "m.onnx", opset=13)
    with pytest.raises(AicomputeError, match="torch.Tensor"):
        export_qdq(model, x.numpy(), weights, None, tmp_path / "m.onnx")
    with pytest.raises(AicomputeError, match="nn.Module"):
        export_qdq(lambda t: t, x, {}, None, tmp_path / "m.onnx")


def test_output_qparams_on_a_module_that_leaves_no_node(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Identity(), nn.Linear(4, 2)).eval()
    qp = QParams(0.1, 0, 0, 255)
    with pytest.raises(AicomputeError, match="no float output"):
        export_qdq(model, torch.randn(2, 4), {}, None, tmp_path / "m.onnx", output_qparams={"1": qp})


def test_a_value_that_is_the_output_of_two_modules_is_quantized_once(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.ReLU())).eval()  # "1" ends with "1.1"
    x = torch.randn(8, 4)
    qp = QParams(0.05, 0, 0, 255)
    result = export_qdq(model, x, {}, None, tmp_path / "m.onnx", output_qparams={"1": qp, "1.1": qp})
    graph, _, _ = graph_of(result.path)
    assert [n.op_type for n in graph.node].count("QuantizeLinear") == 1
    assert graph.output[0].name == result.quantized_values[0]  # the graph output is now the dequantized value
    torch.testing.assert_close(ort_run(ort_session(result.path), x), simulate(model, x, {}, None, {"1": qp}))
    with pytest.raises(AicomputeError, match="differ"):
        export_qdq(model, x, {}, None, tmp_path / "m2.onnx", output_qparams={"1": qp, "1.1": QParams(0.1, 0, 0, 255)})


class SharedInput(nn.Module):
    """``pre``'s output feeds ``b`` and then ``a``: graph order differs from module order."""

    def __init__(self) -> None:
        super().__init__()
        self.pre, self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 3), nn.Linear(6, 3)

    def forward(self, x):
        h = self.pre(x)
        return self.b(h) + self.a(h)


def test_readers_with_the_same_input_qparams_share_one_pair(tmp_path):
    torch.manual_seed(0)
    model, x = SharedInput().eval(), torch.randn(16, 4)
    h = observe(model, x, ["a"])["a"]
    inputs = {"a": minmax(h, QScheme()), "b": minmax(h, QScheme())}  # equal, computed twice
    weights = weight_qparams(model, ["a", "b"], QScheme(axis=0))
    result = export_qdq(model, x, weights, inputs, tmp_path / "m.onnx")
    graph, _, producers = graph_of(result.path)
    assert [n.op_type for n in graph.node].count("QuantizeLinear") == 1 and len(result.quantized_values) == 1
    readers = [n for n in graph.node if n.op_type == "Gemm" and n.input[0] in producers]  # not pre: it reads x
    assert len(readers) == 2 and readers[0].input[0] == readers[1].input[0]
    got = ort_run(ort_session(result.path), x)
    # the int32 bias is rounded to the step s_in · s_w: half a step per layer, two layers add up
    bias_step = sum(float(inputs[n].scale * weights[n].scale.max()) for n in ("a", "b"))
    torch.testing.assert_close(got, simulate(model, x, weights, inputs), rtol=0, atol=bias_step)


# -- residual nets fully in int8: output pairs where layers_needing_output_quant says ----------------------


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the identity, then ReLU (BatchNorm folded before quantizing)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + x)


class TinyResidualNet(nn.Module):
    """stem conv-BN → residual block → max-pool → flatten → linear.

    The stem has no ReLU: the identity path then reads the stem's dequantized output, so ORT can fuse the
    add (behind a ReLU the identity would be a float value: ORT moves no DequantizeLinear across a ReLU)."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.block, self.pool, self.fc = ResidualBlock(c), nn.MaxPool2d(2), nn.Linear(c * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block(self.bn(self.stem(x)))), 1))  # (B, 10)


def trained_looking(model: nn.Module) -> nn.Module:
    """BatchNorm statistics that are not the identity, so folding really changes the convs."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def quantize_all(model: nn.Module, calib: torch.Tensor, path):
    """Fold, prepare, calibrate, freeze; quantize the outputs the plan names; export. The library's PTQ flow."""
    folded = fold_batchnorm(model)
    prepared, _ = prepare(folded)
    freeze(calibrate(prepared, calib.split(16)))
    layers = quant_layers(prepared)
    needing = layers_needing_output_quant(folded, calib[:2], layers)
    quantize_outputs(prepared, needing)
    outputs = {n: layer.output_qparams() for n, layer in layers.items() if layer.quantize_output}
    weights = {n: layer.weight_qparams() for n, layer in layers.items()}
    inputs = {n: layer.input_qparams() for n, layer in layers.items()}
    export_qdq(folded, calib[:2], weights, inputs, path, output_qparams=outputs)
    return folded, prepared, needing, (weights, inputs, outputs)


def logit_step(prepared: nn.Module) -> float:
    """How far one code of fc's input moves a logit at most (``s_in · max|W|``): the logits themselves are not
    quantized (ORT's QGemm writes float)."""
    fc = quant_layers(prepared)["fc"]
    return float(fc.input_qparams().scale * fc.quantized_weight().detach().abs().max())


def same_codes(ort_logits: torch.Tensor, sim_logits: torch.Tensor, step: float) -> tuple[float, float]:
    """(max |ORT − torch| in steps, share of logits within half a step)."""
    diff = (ort_logits - sim_logits).abs()
    return float(diff.max() / step), float((diff < step / 2).float().mean())


def test_tiny_residual_net_runs_fully_int8_and_equals_the_simulation(tmp_path):
    torch.manual_seed(0)
    model = trained_looking(TinyResidualNet())
    calib = torch.randn(64, 3, 8, 8)
    folded, prepared, needing, _ = quantize_all(model, calib, tmp_path / "int8.onnx")
    # the stem feeds the add (and conv1), conv2 the add, fc the graph output; conv1 only conv2 (through ReLU)
    assert needing == ["stem", "block.conv2"]  # fc's logits leave QGemm in float
    ops = optimized_op_counts(tmp_path / "int8.onnx")
    assert ops["QLinearConv"] == 3 and ops["QLinearAdd"] == 1 and ops["QGemm"] == 1, dict(ops)
    assert ops["Conv"] == ops["Add"] == ops["Relu"] == ops["Gemm"] == 0, dict(ops)

    x = torch.randn(256, 3, 8, 8, generator=torch.Generator().manual_seed(1))  # not the calibration data
    with torch.no_grad():
        expected = prepared(x)
    step = logit_step(prepared)
    worst, same = same_codes(ort_run(ort_session(tmp_path / "int8.onnx", threads=1), x), expected, step)
    assert worst <= 1.001 and same >= 0.95, (worst, same)  # measured on ORT 1.32: 0 steps, every code equal
    with torch.no_grad():  # and the comparison has teeth: the float network is several steps away
        assert same_codes(folded(x), expected, step)[0] > 2


def test_resnet18_runs_every_conv_in_int8(tmp_path):
    torch.manual_seed(0)
    model = trained_looking(get_model("resnet18", num_classes=10, image_size=32, width=8))
    calib = torch.randn(32, 3, 32, 32)
    _, prepared, needing, _ = quantize_all(model, calib, tmp_path / "resnet18.onnx")
    # every conv closing a residual branch, every downsample, the stem (its max-pooled output is an identity)
    # and fc (the logits); never the first conv of a block, which only feeds the second through a ReLU
    closing = [f"layer{s}.{b}.conv2" for s in range(1, 5) for b in range(2)]
    downsample = [f"layer{s}.0.downsample.0" for s in range(2, 5)]
    assert sorted(needing) == sorted(["conv1", *closing, *downsample])
    ops = optimized_op_counts(tmp_path / "resnet18.onnx")
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert convs == 20 and ops["QLinearConv"] == 20 and ops["Conv"] == 0 and ops["QGemm"] == 1, dict(ops)
    # a block's output (ReLU of the sum) feeds the next block's conv and its add: no quantizer of the
    # simulation sits there, so the adds stay float in ORT (8 of them) and the simulation still agrees
    assert ops["Add"] == 8
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = prepared(x)
    step = logit_step(prepared)
    worst, same = same_codes(ort_run(ort_session(tmp_path / "resnet18.onnx", threads=1), x), expected, step)
    assert same >= 0.95, (worst, same)  # measured on ORT 1.32: 99.1 % of logits on the same code, ≤ 2 steps off


def test_output_quant_plan_explains_and_checks_its_arguments(resnet):
    model, calib, inputs, _ = resnet
    plan = {v.layer: v for v in output_quant_plan(model, calib[:2], LAYERS)}
    # the stem's ReLU output feeds block.conv1 and the residual add: a float Add reader
    assert plan["stem"].needs_pair and "after Relu reaches Add" in plan["stem"].reason
    assert plan["block.conv1"].reason == "only the quantized input of ['block.conv2'] through Relu"
    assert plan["block.conv2"].needs_pair and "Add" in plan["block.conv2"].reason
    assert not plan["fc"].needs_pair and "graph output" in plan["fc"].reason  # QGemm writes float logits
    assert json.loads(json.dumps(plan["block.conv2"].to_dict()))["needs_pair"] is True
    # with the real input parameters the verdicts stay (block.conv2's input zero point is 0: ReLU dropped)
    assert inputs["block.conv2"].zero_point == 0
    assert layers_needing_output_quant(model, calib[:2], LAYERS, input_qparams=inputs) == ["stem", "block.conv2"]
    # int8 symmetric there: zero point 0 is not the grid minimum -128, ORT keeps the ReLU and conv1 in float
    symmetric = {**inputs, "block.conv2": QParams(inputs["block.conv2"].scale, 0, -128, 127)}
    plan = {v.layer: v for v in output_quant_plan(model, calib[:2], LAYERS, input_qparams=symmetric)}
    assert plan["block.conv1"].needs_pair and "ORT keeps Relu" in plan["block.conv1"].reason
    with pytest.raises(AicomputeError, match="did you mean 'stem'"):
        output_quant_plan(model, calib[:2], ["stme"])
    with pytest.raises(AicomputeError, match="a ReLU; name nn.Conv"):
        output_quant_plan(model, calib[:2], ["relu"])
    with pytest.raises(AicomputeError, match="opset"):
        output_quant_plan(model, calib[:2], LAYERS, opset=12)
