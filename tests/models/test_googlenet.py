"""GoogLeNet: exact parameter count from the Inception table, channel arithmetic, the stage shapes at
224×224 (on meta), torchvision naming and initialisation, and any-size inputs."""

import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.models import count_params, get_model
from aicompute.models.googlenet import INCEPTION_V1_STAGES
from aicompute.nn.conv_blocks import Inception


def inception_params(cin: int, c1: int, r3: int, c3: int, r5: int, c5: int, pool: int, k5: int) -> int:
    """Conv weights (no bias) plus BN γ, β for every conv of one Inception module."""
    weights = cin * c1 + cin * r3 + 9 * r3 * c3 + cin * r5 + k5 * k5 * r5 * c5 + cin * pool
    return weights + 2 * (c1 + r3 + c3 + r5 + c5 + pool)


def googlenet_closed_form(k5: int) -> int:
    stem = (3 * 64 * 7 * 7 + 2 * 64) + (64 * 64 + 2 * 64) + (64 * 192 * 3 * 3 + 2 * 192)
    total, channels = stem, 192
    for stage in INCEPTION_V1_STAGES:
        for _name, c1, r3, c3, r5, c5, pool in stage:
            total += inception_params(channels, c1, r3, c3, r5, c5, pool, k5)
            channels = c1 + c3 + c5 + pool
    return total + channels * 1000 + 1000


def test_googlenet_has_6624904_parameters():
    assert googlenet_closed_form(k5=3) == 6_624_904
    assert count_params(get_model("googlenet", device="meta")) == 6_624_904


def test_paper_5x5_branch_adds_16_weights_per_reduced_channel_pair():
    extra = sum((25 - 9) * r5 * c5 for stage in INCEPTION_V1_STAGES for _n, _a, _b, _c, r5, c5, _p in stage)
    assert extra == 380_928
    model = get_model("googlenet", device="meta", branch3_kernel_size=5)
    assert count_params(model) == googlenet_closed_form(k5=5) == 6_624_904 + extra
    assert model.inception4a.branch3[1].conv.kernel_size == (5, 5)
    with pytest.raises(AicomputeError, match="must be odd"):
        get_model("googlenet", device="meta", branch3_kernel_size=4)


def test_inception_channel_arithmetic_chains_through_the_network():
    model = get_model("googlenet", device="meta")
    blocks = [(n, m) for n, m in model.named_children() if isinstance(m, Inception)]
    stages = {3: "ab", 4: "abcde", 5: "ab"}
    expected = [f"inception{stage}{c}" for stage, letters in stages.items() for c in letters]
    assert [n for n, _ in blocks] == expected
    assert [m.out_channels for _, m in blocks] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    assert [m.in_channels for _, m in blocks] == [192, 256, 480, 512, 512, 512, 528, 832, 832]
    assert model.fc.in_features == 1024


def test_feature_map_sizes_at_224_follow_the_paper(shapes_at_224):
    model = get_model("googlenet", device="meta")
    names = ["maxpool1", "maxpool2", "inception3b", "maxpool3", "inception4e", "maxpool4", "inception5b"]
    assert shapes_at_224(model, names) == {
        "maxpool1": (64, 56, 56),
        "maxpool2": (192, 28, 28),
        "inception3b": (480, 28, 28),
        "maxpool3": (480, 14, 14),
        "inception4e": (832, 14, 14),
        "maxpool4": (832, 7, 7),
        "inception5b": (1024, 7, 7),
    }


def test_meta_construction_allocates_no_storage():
    model = get_model("googlenet", device="meta")
    assert all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers())


def test_torchvision_state_dict_names():
    keys = set(get_model("googlenet", device="meta").state_dict())
    for key in (
        "conv1.conv.weight",
        "conv1.bn.running_mean",
        "conv3.bn.weight",
        "inception3a.branch1.conv.weight",
        "inception3a.branch2.1.conv.weight",
        "inception4e.branch3.0.bn.bias",
        "inception5b.branch4.1.conv.weight",
        "fc.weight",
        "fc.bias",
    ):
        assert key in keys
    assert not any(k.startswith("aux") for k in keys)
    assert not any(k.endswith("conv.bias") for k in keys)  # every conv is followed by BN


def test_initialisation_is_torchvision_s():
    torch.manual_seed(0)
    model = get_model("googlenet", num_classes=10)
    weight = model.inception4e.branch2[1].conv.weight  # 160 → 320, 3×3: 460,800 values
    assert weight.std().item() == pytest.approx(0.01, rel=0.03)
    assert weight.abs().max().item() <= 2.0
    assert model.fc.weight.std().item() == pytest.approx(0.01, rel=0.1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 3 + 9 * 6
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) and b.eps == 1e-3 for b in bns)


@pytest.mark.parametrize("channels, size, classes", [(3, 64, 1000), (1, 32, 10), (1, (8, 12), 3)])
def test_forward_on_small_inputs(channels, size, classes, check_image_logits):
    torch.manual_seed(0)
    model = get_model("googlenet", in_channels=channels, image_size=size, num_classes=classes).eval()
    _, x = check_image_logits(model, channels, size, classes)
    # 8 rows: conv1 → 4, maxpool1 → 2, maxpool2 → 1, and the 3×3 maxpool3 no longer fits
    assert isinstance(model.maxpool3, nn.Identity) == (x.shape[2] == 8)
