import pytest
import torch
from torch import nn

from aicompute.compress.quant import QuantConfig, export_qdq, quantize
from aicompute.compress.quant.fold import fold_batchnorm
from aicompute.compress.quant.modules import quant_layers
from aicompute.compress.quant.plan import quant_plan
from aicompute.compress.quant.runtime import optimized_op_counts, ort_run, ort_session
from aicompute.models import get_model

BLOCKS = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
CLOSING = [f"layer{s}.{b}.conv2" for s in range(1, 5) for b in range(2)]
DOWNSAMPLE = [f"layer{s}.0.downsample.0" for s in range(2, 5)]


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=10, image_size=32, width=8).eval()
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return fold_batchnorm(model), layers


def test_residual_blocks_are_junctions_and_the_stem_needs_no_output_pair(resnet):
    model, layers = resnet
    plan = quant_plan(model, torch.randn(1, 3, 32, 32), layers)
    assert list(plan.junctions) == BLOCKS and plan.junctions_kept_float == {}
    # what still needs its own output pair: the convs feeding each add; the stem conv's output reaches,
    # through ReLU and max-pool, only quantized inputs (layer1.0's conv1 and the block's input); fc's logits
    # leave QGemm in float
    assert sorted(plan.output_layers) == sorted([*CLOSING, *DOWNSAMPLE])
    assert not {v.layer: v for v in plan.outputs}["conv1"].needs_pair
    without = quant_plan(model, torch.randn(1, 3, 32, 32), layers, junctions=False)
    assert without.junctions == () and sorted(without.output_layers) == sorted(["conv1", *CLOSING, *DOWNSAMPLE])
    skipped = quant_plan(model, torch.randn(1, 3, 32, 32), layers, skip=("layer2",))
    assert "layer2.0" not in skipped.junctions and skipped.junctions_kept_float["layer2.0"] == "it is under a skipped name"


class TwoInputs(nn.Module):
    def forward(self, a, b):
        return a + b


class RootAdd(nn.Module):
    """Adds in its own forward, and through a block that takes two activations."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.join = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), TwoInputs()

    def forward(self, x):
        y = self.join(self.a(x), self.b(x))
        return y + self.a(x)


def test_joins_that_cannot_be_quantized_as_a_block_stay_float_with_a_reason():
    plan = quant_plan(RootAdd(), torch.randn(1, 3, 4, 4), ["a", "b"])
    assert plan.junctions == ()
    assert plan.junctions_kept_float["join"] == "it takes 2 activations, not one"
    assert "model's own forward" in plan.junctions_kept_float[""]
    assert plan.to_dict()["junctions_kept_float"] == plan.junctions_kept_float


def test_quantized_resnet_runs_every_add_on_integers_in_ort_and_equals_the_simulation(tmp_path):
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=10, image_size=32, width=8).eval()
    calib = torch.randn(64, 3, 32, 32)
    result = quantize(model, calib, QuantConfig(calib_batches=2), batch_size=32)
    assert result.junctions == BLOCKS and result.to_dict()["junctions"] == BLOCKS
    weights, inputs = result.qparams()
    outputs = result.output_qparams()
    assert set(BLOCKS) <= set(inputs) and set(BLOCKS) <= set(outputs) and "conv1" not in outputs
    path = tmp_path / "resnet18.onnx"
    export_qdq(result.float_model, calib[:1], weights, inputs, path, output_qparams=outputs)
    ops = optimized_op_counts(path, threads=1)
    # the whole network on integers: one Q at the input, float logits out of QGemm, the adds as QLinearAdd
    # with the block's ReLU folded into its output quantizer
    assert ops["QLinearAdd"] == 8 and ops["QLinearConv"] == 20 and ops["QGemm"] == 1, dict(ops)
    assert ops["Add"] == ops["Relu"] == ops["Conv"] == 0 and ops["QuantizeLinear"] <= 2, dict(ops)
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))  # not the calibration data
    with torch.no_grad():
        expected = result.model(x)
    fc = quant_layers(result.model)["fc"]
    step = float(inputs["fc"].scale * fc.quantized_weight().detach().abs().max())  # one code of fc's input, at most
    diff = (ort_run(ort_session(path, threads=1), x) - expected).abs()
    assert float((diff < step / 2).float().mean()) >= 0.95, float(diff.max() / step)
    with torch.no_grad():  # and the comparison has teeth: the float network is far away
        assert float((result.float_model(x) - expected).abs().max()) > 2 * step
    junctions_off = quantize(model, calib, QuantConfig(calib_batches=2, junctions=False), batch_size=32)
    assert junctions_off.junctions == [] and "conv1" in junctions_off.output_qparams()


class Halves(nn.Module):
    """A ghost-module-like join: two convs of the same input, concatenated."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c // 2, 3, padding=1), nn.Conv2d(c, c // 2, 1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.inner = Halves(c)

    def forward(self, x):
        return torch.relu(self.inner(x) + x)


class NestedNet(nn.Module):
    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem, self.block, self.fc = nn.Conv2d(3, c, 3, padding=1), Residual(c), nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(self.block(torch.relu(self.stem(x))).mean(dim=(2, 3)))


def test_nested_junctions_share_the_outer_blocks_input_and_match_ort(tmp_path):
    # the inner join reads the outer block's input, which the outer block's pair quantizes first
    torch.manual_seed(0)
    model = NestedNet().eval()
    calib = torch.randn(32, 3, 8, 8)
    result = quantize(model, calib, QuantConfig(calib_batches=1), batch_size=32)
    assert sorted(result.junctions) == ["block", "block.inner"]
    weights, inputs = result.qparams()
    path = tmp_path / "nested.onnx"
    export_qdq(result.float_model, calib[:1], weights, inputs, path, output_qparams=result.output_qparams())
    ops = optimized_op_counts(path, threads=1)
    assert ops["QLinearAdd"] == 1 and ops["QLinearConcat"] == 1 and ops["QLinearConv"] == 3, dict(ops)
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = result.model(x)
    torch.testing.assert_close(ort_run(ort_session(path, threads=1), x), expected, rtol=1e-4, atol=1e-4)
