"""GhostNet 1.0×: parameter count from an independent closed form over the paper's Table 7, MACs, forwards."""

import math

import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.models import count_params, get_model, model_spec
from aicompute.nn.light_blocks import GhostBottleneck


# Paper Table 7 (k, #exp, #out, SE, stride), written out again here rather than imported.
TABLE7 = [
    (3, 16, 16, 0, 1),
    (3, 48, 24, 0, 2),
    (3, 72, 24, 0, 1),
    (5, 72, 40, 1, 2),
    (5, 120, 40, 1, 1),
    (3, 240, 80, 0, 2),
    (3, 200, 80, 0, 1),
    (3, 184, 80, 0, 1),
    (3, 184, 80, 0, 1),
    (3, 480, 112, 1, 1),
    (3, 672, 112, 1, 1),
    (5, 672, 160, 1, 2),
    (5, 960, 160, 0, 1),
    (5, 960, 160, 1, 1),
    (5, 960, 160, 0, 1),
    (5, 960, 160, 1, 1),
]
# SE squeeze width: #exp / 4 rounded to a multiple of 4 (18 → 20 and 30 → 32; the rest divide evenly).
SQUEEZE = {72: 20, 120: 32, 480: 120, 672: 168, 960: 240}


def ghost_module_params(c_in: int, c_out: int) -> int:
    m = math.ceil(c_out / 2)  # ratio 2: m intrinsic maps from a 1×1 conv, m ghosts from a 3×3 depthwise
    return (c_in * m + 2 * m) + (9 * m + 2 * m)  # each conv followed by BN (2 params per channel)


def closed_form_params(num_classes: int = 1000) -> int:
    total = 3 * 9 * 16 + 2 * 16  # stem 3×3 conv + BN
    c_in = 16
    for k, mid, out, se, stride in TABLE7:
        total += ghost_module_params(c_in, mid) + ghost_module_params(mid, out)
        if stride == 2:
            total += k * k * mid + 2 * mid  # depthwise stride-2 conv + BN
        if se:
            r = SQUEEZE[mid]
            total += (mid * r + r) + (r * mid + mid)  # 1×1 reduce and expand, with bias
        if stride != 1 or c_in != out:
            total += (k * k * c_in + 2 * c_in) + (c_in * out + 2 * out)  # depthwise-separable shortcut
        c_in = out
    total += 160 * 960 + 2 * 960  # 1×1 conv + BN to 960
    total += 960 * 1280 + 1280  # conv_head (bias, no BN)
    return total + 1280 * num_classes + num_classes


def test_param_count_equals_the_closed_form_of_the_official_layout():
    model = get_model("ghostnet", device="meta")
    assert count_params(model) == closed_form_params() == 5_182_508
    assert count_params(get_model("ghostnet", device="meta", num_classes=10)) == closed_form_params(10)


def test_macs_match_the_paper(meta_macs):
    def macs(width_mult: float) -> int:
        return meta_macs(get_model("ghostnet", device="meta", width_mult=width_mult), (1, 3, 224, 224))

    assert round(macs(1.0) / 1e6) == 141  # Table 7: 141M FLOPs (multiply-adds)
    assert round(macs(0.5) / 1e6) == 42  # Table 8, GhostNet 0.5×: 42M FLOPs, 2.6M params
    assert round(count_params(get_model("ghostnet", device="meta", width_mult=0.5)) / 1e6, 1) == 2.6


def test_layout_and_se_placement():
    model = get_model("ghostnet", device="meta")
    blocks = [m for m in model.modules() if isinstance(m, GhostBottleneck)]
    assert len(blocks) == 16
    assert [b.out_channels for b in blocks] == [row[2] for row in TABLE7]
    assert [b.se is not None for b in blocks] == [bool(row[3]) for row in TABLE7]
    assert [b.conv_dw is not None for b in blocks] == [row[4] == 2 for row in TABLE7]
    assert all(isinstance(b.se.scale_activation, nn.Hardsigmoid) for b in blocks if b.se is not None)
    assert len(model.blocks) == 10  # nine stages of the official grouping + the 1×1 conv to 960
    assert model.conv_head.bias is not None and model.classifier.in_features == 1280


@pytest.mark.parametrize(("in_channels", "size"), [(1, 32), (3, 64)])
def test_forward_and_backward_on_small_inputs(in_channels, size, check_trains_on_small_images):
    check_trains_on_small_images("ghostnet", in_channels, size)


def test_width_mult_scales_blocks_but_not_the_head():
    model = get_model("ghostnet", device="meta", width_mult=1.3)
    assert model.conv_stem.out_channels == 20  # 16 × 1.3 = 20.8 → 20 (multiple of 4)
    assert model.conv_head.out_channels == 1280
    assert all(m.out_channels % 4 == 0 for m in model.modules() if isinstance(m, GhostBottleneck))


def test_registry_entry_and_errors():
    spec = model_spec("ghostnet")
    assert spec.family == "image" and spec.input_shape == (3, 224, 224)
    model = get_model("ghostnet", num_classes=10, in_channels=3, image_size=32)
    with pytest.raises(AicomputeError, match=r"expects a batch of images shaped \(N, 3, H, W\)"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(AicomputeError, match="width_mult must be > 0, got -1.0"):
        get_model("ghostnet", device="meta", width_mult=-1.0)
    with pytest.raises(AicomputeError, match="unexpected keyword argument .width.*width_mult"):  # old name gone
        get_model("ghostnet", device="meta", width=0.5)
