"""PTQ: accuracy, layers and qparams, per-layer bits, weight-only, binary, and every user mistake."""

import pytest
import torch
from torch import nn

from aicompute.compress.quant.ptq import QuantConfig, calibration_batches, layer_names, quantize
from aicompute.errors import AicomputeError


def test_int8_ptq_keeps_accuracy_and_exposes_qparams(digits_mlp):
    model, train, test = digits_mlp
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = quantize(model, train, QuantConfig(), eval_data=test)
    assert result.float_accuracy > 0.85
    assert abs(result.accuracy_drop) <= 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input untouched
    weights, inputs = result.qparams()
    assert list(weights) == list(inputs) == ["layers.0", "layers.2", "layers.4"]
    assert weights["layers.0"].scale.numel() == 300  # per output channel
    assert inputs["layers.0"].qmin == 0 and inputs["layers.0"].qmax == 255  # uint8 activations
    record = result.to_dict()
    assert record["config"]["label"] == "W8A8" and record["accuracy_drop_pt"] == result.accuracy_drop


def test_fewer_bits_cost_more(digits_mlp):
    model, train, test = digits_mlp
    errors = {bits: quantize(model, train, QuantConfig(bits=bits, act_bits=None)).layers[0].weight_rel_error
              for bits in (8, 4, 2)}
    assert errors[8] < errors[4] < errors[2]
    # closed form for a uniform grid: RMS error ≈ step/√12, step = 2·max|w|/(2^b − 1), per channel
    w = model.layers[0].weight.detach()
    step = 2 * w.abs().amax(dim=1, keepdim=True) / 255
    predicted = float((step.square() / 12).mean().sqrt() * w.numel() ** 0.5 / w.norm())
    assert errors[8] == pytest.approx(predicted, rel=0.15)


def test_weight_only_per_tensor_binary_and_layer_bits(digits_mlp):
    model, train, _ = digits_mlp
    wo = quantize(model, train, QuantConfig(bits=4, act_bits=None, granularity="tensor"))
    weights, inputs = wo.qparams()
    assert inputs == {} and weights["layers.2"].scale.numel() == 1
    binary = quantize(model, train, QuantConfig(bits=1, act_bits=None))
    q = binary.model.layers[0].quantized_weight()
    assert torch.allclose(q.abs(), model.layers[0].weight.abs().mean(dim=1, keepdim=True).expand_as(q))
    mixed = quantize(model, train, QuantConfig(bits=2, act_bits=None, layer_bits={"layers.4": 8}))
    assert [layer.weight_bits for layer in mixed.layers] == [2, 2, 8]


def test_skip_and_unsupported_layers_stay_float():
    net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 3))
    calib = torch.randint(0, 10, (8, 3))
    result = quantize(net, [calib], QuantConfig(act_bits=None))
    assert [layer.name for layer in result.layers] == ["2"]
    assert result.to_dict()["kept_float"] == {"0": "Embedding"}
    skipped = quantize(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)), [torch.randn(4, 3)], QuantConfig(skip=("0",)))
    assert [layer.name for layer in skipped.layers] == ["1"]
    assert layer_names(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))) == ["0", "2"]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"bits": 0}, "bits must be an integer from 1 to 16"),
        ({"bits": 17}, "from 1 to 16"),
        ({"act_bits": 1}, "act_bits"),
        ({"calib": "kl"}, "unknown calib"),
        ({"scheme": "symmetric"}, "choose one of sym, asym"),
        ({"skip": ("layers.9",)}, "does not have"),
        ({"layer_bits": {"layers.9": 4}}, "layer_bits names layer 'layers.9'"),
    ],
)
def test_bad_configs(digits_mlp, kwargs, message):
    model, train, _ = digits_mlp
    with pytest.raises(AicomputeError, match=message):
        quantize(model, train, QuantConfig(**kwargs))


def test_empty_calibration_and_nan_weights():
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(AicomputeError, match="calibration data is empty"):
        quantize(net, [], QuantConfig())
    with pytest.raises(AicomputeError, match="calibration data is empty"):
        list(calibration_batches(torch.empty(0, 3)))
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    with pytest.raises(AicomputeError, match="NaN or inf"):
        quantize(net, [torch.randn(2, 3)], QuantConfig())
