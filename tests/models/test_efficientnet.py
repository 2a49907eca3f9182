"""EfficientNet B0 / B4: torchvision's exact counts and MACs, compound scaling, stochastic depth, forwards."""

import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.models import count_params, get_model, model_spec
from aicompute.models.efficientnet import efficientnet, scale_stages
from aicompute.nn.light_blocks import MBConv


@pytest.mark.parametrize(
    ("name", "params", "size", "gmacs"),
    [
        ("efficientnet_b0", 5_288_548, 224, 0.386),  # torchvision meta: num_params, "_ops" (GMACs)
        ("efficientnet_b4", 19_341_616, 380, 4.394),
    ],
)
def test_param_count_and_macs_match_torchvision(name, params, size, gmacs, meta_macs):
    model = get_model(name, device="meta")
    assert count_params(model) == params
    assert model_spec(name).input_shape == (3, size, size)
    assert round(meta_macs(model, (1, 3, size, size)) / 1e9, 3) == gmacs


def test_b4_compound_scaling_by_hand():
    stages = scale_stages(1.4, 1.8)
    # widths × 1.4 to a multiple of 8: 44.8→48, 22.4→24, 33.6→32, 56, 112, 156.8→160, 268.8→272, 448
    assert [s.in_channels for s in stages] == [48, 24, 32, 56, 112, 160, 272]
    assert [s.out_channels for s in stages] == [24, 32, 56, 112, 160, 272, 448]
    # depths × 1.8 rounded up: 1→2, 2→4, 2→4, 3→6, 3→6, 4→8, 1→2
    assert [s.num_layers for s in stages] == [2, 4, 4, 6, 6, 8, 2]
    model = get_model("efficientnet_b4", device="meta")
    assert model.features[0][0].out_channels == 48 and model.last_channel == 4 * 448
    assert sum(isinstance(m, MBConv) for m in model.modules()) == 32


def test_stochastic_depth_grows_linearly_and_se_squeezes_the_block_input():
    model = get_model("efficientnet_b0", device="meta")
    blocks = [m for m in model.modules() if isinstance(m, MBConv)]
    assert len(blocks) == 16
    assert [b.stochastic_depth.p for b in blocks] == pytest.approx([0.2 * i / 16 for i in range(16)])
    first, second = model.features[2][0], model.features[2][1]  # 16 → 24 (expanded 96), then 24 → 24 (144)
    assert first.block[2].fc1.out_channels == 4 and first.block[2].fc1.in_channels == 96
    assert second.block[2].fc1.out_channels == 6 and second.block[2].fc1.in_channels == 144
    assert isinstance(first.block[2].activation, nn.SiLU)
    keys = set(model.state_dict())
    for key in (  # torchvision's state-dict keys
        "features.0.0.weight",
        "features.1.0.block.0.0.weight",
        "features.1.0.block.1.fc1.weight",
        "features.2.0.block.0.0.weight",
        "features.2.0.block.3.1.running_mean",
        "features.8.0.weight",
        "classifier.1.weight",
    ):
        assert key in keys


@pytest.mark.parametrize(("in_channels", "size"), [(1, 32), (3, 64)])
def test_b0_forward_and_backward_on_small_inputs(in_channels, size, check_trains_on_small_images):
    model, x = check_trains_on_small_images("efficientnet_b0", in_channels, size)
    model.eval()
    torch.testing.assert_close(model(x), model(x))  # no stochastic depth or dropout in eval mode


def test_b4_meta_forward_at_any_size():
    model = get_model("efficientnet_b4", device="meta", num_classes=7, in_channels=1, image_size=48)
    assert model(torch.empty(3, 1, 48, 40, device="meta")).shape == (3, 7)


def test_head_init_is_uniform_in_one_over_sqrt_out():
    torch.manual_seed(0)
    head = efficientnet("b0", num_classes=100).classifier[1]
    bound = 100**-0.5
    assert head.weight.abs().max().item() <= bound
    assert head.weight.abs().max().item() > 0.95 * bound  # spread over the whole interval
    assert torch.count_nonzero(head.bias) == 0


def test_b5_to_b7_use_tensorflow_batchnorm_settings():
    with torch.device("meta"):  # B5 is 30M parameters: build it without allocating them
        bn = efficientnet("b5", num_classes=10).features[0][1]
        bn0 = efficientnet("b0", num_classes=10).features[0][1]
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    assert (bn0.eps, bn0.momentum) == (1e-5, 0.1)


def test_user_mistakes_raise_clear_errors():
    with pytest.raises(AicomputeError, match="unknown EfficientNet variant 'b9'"):
        efficientnet("b9")
    with pytest.raises(AicomputeError, match="stochastic_depth_prob"):
        get_model("efficientnet_b0", device="meta", stochastic_depth_prob=2.0)
    model = get_model("efficientnet_b0", num_classes=10, in_channels=3, image_size=32)
    with pytest.raises(AicomputeError, match=r"\(N, 3, H, W\), got \(2, 1, 32, 32\)"):
        model(torch.randn(2, 1, 32, 32))
