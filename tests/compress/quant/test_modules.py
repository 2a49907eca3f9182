"""Quantized wrappers and prepare/calibrate/freeze, checked against the float model and
against quantize→dequantize computed by hand with ``compute_qparams`` and ``torch.nn.functional``."""

import io
import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aicompute.compress.quant.fake import FakeQuantizer, LSQQuantizer
from aicompute.compress.quant.modules import (
    PrepareReport,
    QuantConv2d,
    QuantLinear,
    QuantSpec,
    calibrate,
    freeze,
    int32_bias,
    prepare,
    quant_layers,
    quantize_outputs,
)
from aicompute.compress.quant.qparams import QParams, QScheme, compute_qparams
from aicompute.errors import AicomputeError
from aicompute.models import get_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

WEIGHT = QScheme(axis=0)  # int8 symmetric per output channel
ACT = QScheme(symmetric=False, signed=False)  # uint8 affine per tensor


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _on_int32_grid(bias: torch.Tensor, s_in: torch.Tensor, s_w: torch.Tensor) -> torch.Tensor:
    """round(b / (s_in·s_w))·s_in·s_w with the step in float32: the bias ORT's integer kernels add."""
    step = (s_in.float() * s_w.float()).double()
    return (torch.round(bias.detach().double() / step) * step).float()


# -- the wrappers ------------------------------------------------------------------------------------------


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def test_quantize_mode_equals_hand_computed_quantize_dequantize():
    model = _small_net().eval()
    batches = [torch.randn(3, 2, 6, 6) * (i + 1) for i in range(3)]
    prepared, report = prepare(model, QuantSpec(WEIGHT, ACT))
    assert report.quantized == ["0", "3"] and report.unsupported == {}
    calibrate(prepared, batches)
    freeze(prepared)

    conv, fc = model[0], model[3]
    # activation ranges: the conv sees the raw batches; the linear layer the float network's hidden features
    seen = torch.cat(batches)
    hidden = torch.flatten(F.relu(conv(seen)), 1).detach()
    qin_conv = compute_qparams(seen.min(), seen.max(), ACT)
    qin_fc = compute_qparams(hidden.min(), hidden.max(), ACT)
    qw_conv = compute_qparams(*conv.weight.detach().reshape(4, -1).aminmax(dim=1), WEIGHT)
    qw_fc = compute_qparams(*fc.weight.detach().aminmax(dim=1), WEIGHT)

    x = torch.randn(2, 2, 6, 6) * 2
    conv_bias = _on_int32_grid(conv.bias, qin_conv.scale, qw_conv.scale)  # per output channel
    h = F.conv2d(qin_conv.fake_quantize(x), qw_conv.fake_quantize(conv.weight), conv_bias)
    h = torch.flatten(F.relu(h), 1)
    fc_bias = _on_int32_grid(fc.bias, qin_fc.scale, qw_fc.scale)
    expected = F.linear(qin_fc.fake_quantize(h), qw_fc.fake_quantize(fc.weight), fc_bias)
    assert torch.allclose(prepared(x), expected, rtol=0, atol=1e-6)
    # the rounding is real: the float biases give another output
    with_float_bias = F.linear(qin_fc.fake_quantize(h), qw_fc.fake_quantize(fc.weight), fc.bias)
    assert not torch.allclose(with_float_bias, expected, rtol=0, atol=1e-6)

    layers = quant_layers(prepared)
    assert isinstance(layers["0"], QuantConv2d) and isinstance(layers["3"], QuantLinear)
    assert torch.equal(layers["0"].weight_qparams().scale, qw_conv.scale)
    assert torch.equal(layers["3"].input_qparams().zero_point, qin_fc.zero_point)


def test_prepared_lenet5_at_8_bits_keeps_the_float_logits():
    from aicompute.data import get_dataset

    torch.manual_seed(0)
    model = get_model("lenet5", num_classes=10, in_channels=1, image_size=28).eval()
    images = get_dataset("mnist", "test").inputs[:256]
    before = _snapshot(model)
    prepared, report = prepare(model)
    assert report.quantized == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    freeze(calibrate(prepared, images[:128].split(32)))
    with torch.no_grad():
        ref, out = model(images[128:]), prepared(images[128:])
    sqnr_db = float(10 * torch.log10(ref.pow(2).sum() / (ref - out).pow(2).sum()))
    assert sqnr_db > 30, f"SQNR {sqnr_db:.1f} dB"
    assert (ref.argmax(1) == out.argmax(1)).float().mean() > 0.95
    assert _state_equal(model.state_dict(), before)


def test_weight_only_needs_no_calibration():
    model = _small_net()
    prepared, _ = prepare(model, QuantSpec(QScheme(bits=4, axis=0), None))
    assert calibrate(prepared, []) is prepared  # nothing to observe
    freeze(prepared)
    conv = quant_layers(prepared)["0"]
    assert conv.input_qparams() is None and conv.input_quantizer is None
    qw = compute_qparams(*model[0].weight.detach().reshape(4, -1).aminmax(dim=1), QScheme(bits=4, axis=0))
    x = torch.randn(2, 2, 6, 6)
    assert torch.allclose(conv(x), F.conv2d(x, qw.fake_quantize(model[0].weight), model[0].bias), atol=1e-6)


def test_wrapper_shares_the_float_weight_and_never_writes_it():
    model = _small_net()
    prepared, _ = prepare(model)
    wrapper = prepared[0]
    float_conv = wrapper.module
    assert wrapper.weight is float_conv.weight and wrapper.bias is float_conv.bias
    assert all(p is not q for p in prepared.parameters() for q in model.parameters())  # a copy of the model
    weight = float_conv.weight.detach().clone()
    freeze(calibrate(prepared, [torch.randn(2, 2, 6, 6)]))
    prepared(torch.randn(2, 2, 6, 6))
    assert torch.equal(float_conv.weight, weight)
    assert not torch.equal(wrapper.quantized_weight(), weight)


def test_straight_through_gradients_reach_the_float_weights():
    prepared, _ = prepare(_small_net())
    freeze(calibrate(prepared, [torch.randn(4, 2, 6, 6)]))
    prepared(torch.randn(4, 2, 6, 6)).pow(2).sum().backward()
    assert prepared[0].module.weight.grad.abs().sum() > 0 and prepared[3].module.weight.grad.abs().sum() > 0


def test_unsupported_layers_are_reported_and_kept_float():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ConvTranspose2d(4, 2, 2),
        nn.Flatten(),
        nn.Linear(2 * 8 * 8, 3),
    )
    prepared, report = prepare(model)
    assert report.quantized == ["0", "4"]
    assert report.unsupported == {"1": "BatchNorm2d", "2": "ConvTranspose2d"}
    assert type(prepared[2]) is nn.ConvTranspose2d
    freeze(calibrate(prepared, [torch.randn(2, 1, 9, 9)]))
    assert prepared(torch.randn(2, 1, 9, 9)).shape == (2, 3)
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()


def test_skip_keeps_named_layers_float():
    model = get_model("resnet18", num_classes=10, image_size=32, width=8)
    prepared, report = prepare(model, QuantSpec(skip=("conv1", "layer4", "fc")))
    assert "conv1" in report.skipped and "fc" in report.skipped and "layer4.0.conv1" in report.skipped
    assert "layer1.0.conv1" in report.quantized and not any(n.startswith("layer4") for n in report.quantized)
    assert type(prepared.conv1) is nn.Conv2d and type(prepared.fc) is nn.Linear
    with pytest.raises(AicomputeError, match="did you mean 'layer4'"):
        prepare(model, QuantSpec(skip=("layer44",)))


def test_learnable_spec_gives_lsq_quantizers_with_gradients():
    model = _small_net()
    prepared, _ = prepare(model, QuantSpec(QScheme(bits=4, axis=0), ACT, learnable=True, weight_observer="lsq"))
    layer = quant_layers(prepared)["0"]
    assert isinstance(layer.weight_quantizer, LSQQuantizer) and isinstance(layer.input_quantizer, LSQQuantizer)
    assert layer.weight_quantizer.scale.shape == (4,)
    freeze(calibrate(prepared, [torch.randn(4, 2, 6, 6)]))
    prepared(torch.randn(4, 2, 6, 6)).pow(2).sum().backward()
    assert layer.weight_quantizer.scale.grad.abs().sum() > 0 and layer.input_quantizer.scale.grad.abs().sum() > 0
    assert layer.weight_qparams().axis == 0 and layer.input_qparams().qmax == 255


def test_frozen_state_dict_loads_into_a_fresh_prepared_model():
    model = _small_net()
    prepared, _ = prepare(model)
    freeze(calibrate(prepared, [torch.randn(4, 2, 6, 6)]))
    quantize_outputs(prepared, ["3"])  # the flag travels too
    buffer = io.BytesIO()
    torch.save(prepared.state_dict(), buffer)
    buffer.seek(0)
    fresh, _ = prepare(model)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))  # a checkpoint holds only safe types
    x = torch.randn(3, 2, 6, 6)
    assert torch.equal(fresh(x), prepared(x))
    assert quant_layers(fresh)["3"].input_qparams().to_dict() == quant_layers(prepared)["3"].input_qparams().to_dict()
    assert quant_layers(fresh)["3"].quantize_output and not quant_layers(fresh)["0"].quantize_output
    assert quant_layers(fresh)["3"].output_qparams().to_dict() == quant_layers(prepared)["3"].output_qparams().to_dict()


def test_flow_errors_say_what_to_do():
    model = _small_net()
    prepared, _ = prepare(model)
    with pytest.raises(AicomputeError, match="not frozen yet"):
        quant_layers(prepared)["0"].weight_qparams()
    with pytest.raises(AicomputeError, match="run calibrate"):
        freeze(prepared)
    with pytest.raises(AicomputeError, match="got no batches"):
        calibrate(prepared, [])
    calibrate(prepared, [(torch.randn(2, 2, 6, 6), torch.zeros(2))])  # (inputs, targets) batches
    freeze(prepared)
    with pytest.raises(AicomputeError, match="already frozen"):
        calibrate(prepared, [torch.randn(2, 2, 6, 6)])
    with pytest.raises(AicomputeError, match="already prepared"):
        prepare(prepared)
    with pytest.raises(AicomputeError, match="call prepare"):
        calibrate(model, [torch.randn(2, 2, 6, 6)])
    with pytest.raises(AicomputeError, match="wraps an nn.Conv2d"):
        QuantConv2d(nn.Linear(2, 2), FakeQuantizer(QScheme()), None)


def test_quant_spec_checks_and_round_trips():
    spec = QuantSpec(QScheme(bits=4, axis=0), None, weight_observer="moving_average", skip=["fc"])
    assert spec.skip == ("fc",)
    assert QuantSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert QuantSpec().weight == QScheme(axis=0) and QuantSpec().activation == ACT
    with pytest.raises(AicomputeError, match="quantizes nothing"):
        QuantSpec(None, None)
    with pytest.raises(AicomputeError, match="per tensor"):
        QuantSpec(activation=QScheme(axis=1))
    with pytest.raises(AicomputeError, match="did you mean 'minmax'"):
        QuantSpec(weight_observer="minmx")
    with pytest.raises(AicomputeError, match="per-channel"):
        QuantSpec(weight_observer="percentile")
    with pytest.raises(AicomputeError, match="not a calibration method"):
        QuantSpec(weight_observer="lsq")  # LSQ's rule only for learnable quantizers
    with pytest.raises(AicomputeError, match="unknown QuantSpec field"):
        QuantSpec.from_dict({"bits": 8})
    with pytest.raises(AicomputeError, match="out of range for a weight of shape"):
        prepare(nn.Linear(3, 2), QuantSpec(QScheme(axis=2)))
    assert isinstance(PrepareReport().to_dict(), dict)


# -- output quantization ------------------------------------------------------------------------------------


def test_output_quantizer_calibrates_with_the_input_and_quantizes_only_when_asked():
    model = _small_net().eval()
    batches = [torch.randn(3, 2, 6, 6) * (i + 1) for i in range(3)]
    prepared, _ = prepare(model)
    freeze(calibrate(prepared, batches))
    conv = quant_layers(prepared)["0"]
    with torch.no_grad():
        raw = model[0](torch.cat(batches))  # the float outputs calibration saw
    qout = compute_qparams(raw.min(), raw.max(), ACT)
    assert conv.output_quantizer.qparams.to_dict() == qout.to_dict()
    assert conv.output_qparams() is None and not conv.quantize_output  # off by default

    x = torch.randn(2, 2, 6, 6)
    with torch.no_grad():
        unquantized = conv(x)
        quantize_outputs(prepared, ["0"])
        assert conv.output_qparams().to_dict() == qout.to_dict()
        assert torch.equal(conv(x), qout.fake_quantize(unquantized))
        assert not torch.equal(conv(x), unquantized)
        assert quant_layers(prepared)["3"].output_qparams() is None
        quantize_outputs(prepared, [])  # exactly the named layers: none now
        assert torch.equal(conv(x), unquantized)
    seen = conv.output_quantizer.observer.num_batches
    prepared(x)
    assert conv.output_quantizer.observer.num_batches == seen  # frozen layers observe nothing more


def test_output_quantization_errors_say_what_to_do():
    prepared, _ = prepare(_small_net(), QuantSpec(WEIGHT, None))  # weight-only: no output quantizer
    freeze(prepared)
    with pytest.raises(AicomputeError, match="no output quantizer"):
        quantize_outputs(prepared, ["0"])
    prepared, _ = prepare(_small_net())
    with pytest.raises(AicomputeError, match="did you mean '3'"):
        quantize_outputs(prepared, ["3x"])
    with pytest.raises(AicomputeError, match="True or False"):
        quant_layers(prepared)["0"].quantize_output = 1
    # LSQ inputs may be frozen without calibration; an output quantizer cannot
    lsq, _ = prepare(_small_net(), QuantSpec(QScheme(bits=4, axis=0), ACT, learnable=True))
    quantize_outputs(lsq, ["0"])
    with pytest.raises(AicomputeError, match="saw no calibration data: run calibrate"):
        freeze(lsq)
    lsq, _ = prepare(_small_net(), QuantSpec(QScheme(bits=4, axis=0), ACT, learnable=True))
    freeze(lsq)
    with pytest.raises(AicomputeError, match="saw no calibration data before the layer was frozen"):
        quantize_outputs(lsq, ["0"])
    assert not quant_layers(lsq)["0"].quantize_output
    with pytest.raises(AicomputeError, match="per tensor"):
        QuantConv2d(nn.Conv2d(1, 1, 1), None, FakeQuantizer(ACT), FakeQuantizer(QScheme(axis=0)))
    with pytest.raises(AicomputeError, match="no input quantizer"):
        QuantConv2d(nn.Conv2d(1, 1, 1), FakeQuantizer(WEIGHT), None, FakeQuantizer(ACT))


@settings(max_examples=50, deadline=None)
@given(
    bias=st.lists(st.floats(-50, 50, width=32), min_size=1, max_size=6),
    s_in=st.floats(1e-4, 1.0),
    s_w=st.floats(1e-4, 1.0),
)
def test_int32_bias_lies_on_the_accumulator_grid(bias, s_in, s_w):
    b = torch.tensor(bias, requires_grad=True)
    s_w_channels = torch.full((len(bias),), s_w)
    out = int32_bias(b, QParams(s_in, 128, 0, 255), QParams(s_w_channels, torch.zeros(len(bias)), -128, 127, axis=0))
    step = (torch.tensor(s_in, dtype=torch.float32) * s_w_channels.float()).double()
    codes = out.detach().double() / step
    assert ((codes - codes.round()).abs() <= 1e-3 + codes.abs() * 2**-22).all()  # whole steps, up to float32
    error = (out.detach().double() - b.detach().double()).abs()
    assert (error <= step / 2 + b.detach().double().abs() * 2**-22).all()  # half a step, up to float32
    out.sum().backward()
    assert torch.equal(b.grad, torch.ones(len(bias)))  # straight through


def test_int32_bias_overflow_and_gemm_only_for_linear():
    huge = torch.tensor([1e6])
    tiny = QParams(1e-4, 0, 0, 255)
    assert int32_bias(huge, tiny, tiny) is huge  # 1e6 / 1e-8 codes overflow int32: left float, as exported
    # a Linear over (B, T, C) exports as MatMul + Add whose bias stays float; over (B, C) as Gemm (int32 bias)
    torch.manual_seed(0)
    linear = nn.Linear(4, 3)
    prepared, _ = prepare(nn.Sequential(linear))
    x = torch.randn(8, 5, 4)
    freeze(calibrate(prepared, [x]))
    layer = quant_layers(prepared)["0"]
    qin, qw = layer.input_qparams(), layer.weight_qparams()
    with torch.no_grad():
        weight = qw.fake_quantize(linear.weight)
        assert torch.allclose(prepared(x), F.linear(qin.fake_quantize(x), weight, linear.bias), rtol=0, atol=1e-6)
        flat = x[:, 0]
        on_grid = _on_int32_grid(linear.bias, qin.scale, qw.scale)
        assert torch.allclose(prepared(flat), F.linear(qin.fake_quantize(flat), weight, on_grid), rtol=0, atol=1e-6)
