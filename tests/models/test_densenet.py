"""DenseNet-121: exact parameter count from the dense-layer closed form, channel arithmetic, the 121
weighted layers, shapes at 224×224 (on meta), torchvision naming and initialisation, any-size inputs."""

import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.models import count_params, get_model
from aicompute.models.densenet import DenseNet
from aicompute.nn.conv_blocks import DenseBlock, DenseLayer, Transition


def densenet_closed_form(k: int = 32, blocks=(6, 12, 24, 16), init: int = 64, bn_size: int = 4) -> int:
    total = 3 * init * 7 * 7 + 2 * init  # conv0 + norm0
    c = init
    for i, layers in enumerate(blocks):
        for _ in range(layers):
            # BN(c) + 1×1 c → 4k + BN(4k) + 3×3 4k → k
            total += 2 * c + c * bn_size * k + 2 * bn_size * k + 9 * bn_size * k * k
            c += k
        if i != len(blocks) - 1:
            total += 2 * c + c * (c // 2)  # transition: BN(c) + 1×1 c → c/2
            c //= 2
    return total + 2 * c + c * 1000 + 1000  # norm5 + classifier


def test_densenet121_has_7978856_parameters():
    assert densenet_closed_form() == 7_978_856
    assert count_params(get_model("densenet121", device="meta")) == 7_978_856


def test_channel_arithmetic_and_121_weighted_layers():
    model = get_model("densenet121", device="meta")
    feats = model.features
    blocks = [m for m in feats.children() if isinstance(m, DenseBlock)]
    transitions = [m for m in feats.children() if isinstance(m, Transition)]
    assert [len(b) for b in blocks] == [6, 12, 24, 16]
    # 64 → +6·32 = 256 → /2 = 128 → +12·32 = 512 → 256 → +24·32 = 1024 → 512 → +16·32 = 1024
    assert [(b.in_channels, b.out_channels) for b in blocks] == [
        (64, 256),
        (128, 512),
        (256, 1024),
        (512, 1024),
    ]
    assert [(t.in_channels, t.out_channels) for t in transitions] == [(256, 128), (512, 256), (1024, 512)]
    assert model.classifier.in_features == 1024
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 1 + 2 * (6 + 12 + 24 + 16) + 3 + 1 == 121  # the "121"


def test_shapes_at_224(shapes_at_224):
    model = get_model("densenet121", device="meta")
    names = [f"features.{n}" for n in ("pool0", "transition1", "transition2", "transition3", "norm5")]
    assert shapes_at_224(model, names) == {
        "features.pool0": (64, 56, 56),
        "features.transition1": (128, 28, 28),
        "features.transition2": (256, 14, 14),
        "features.transition3": (512, 7, 7),
        "features.norm5": (1024, 7, 7),
    }


def test_torchvision_state_dict_names():
    keys = set(get_model("densenet121", device="meta").state_dict())
    expected = [
        "features.conv0.weight",
        "features.norm0.running_mean",
        "features.denseblock1.denselayer1.norm1.weight",
        "features.denseblock1.denselayer6.conv2.weight",
        "features.denseblock4.denselayer16.norm2.bias",
        "features.transition3.conv.weight",
        "features.norm5.running_var",
        "classifier.weight",
        "classifier.bias",
    ]
    assert set(expected) <= keys


def test_meta_construction_allocates_no_storage():
    model = get_model("densenet121", device="meta")
    assert all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers())


def test_initialisation_is_torchvision_s():
    torch.manual_seed(0)
    model = get_model("densenet121", num_classes=10, growth_rate=16)
    conv = model.features.denseblock3.denselayer10.conv2  # 64 → 16, 3×3: fan-in 64·9
    assert isinstance(model.features.denseblock3.denselayer10, DenseLayer)
    assert conv.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    assert torch.all(model.classifier.bias == 0)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in bns)


def test_small_growth_forward_on_any_input(check_image_logits):
    torch.manual_seed(0)
    for c, size, classes in [(3, 64, 1000), (1, 32, 10), (1, 16, 3)]:
        kwargs = {"in_channels": c, "image_size": size, "num_classes": classes}
        model = get_model("densenet121", growth_rate=4, num_init_features=8, **kwargs).eval()
        check_image_logits(model, c, size, classes)
    # 16 → conv0 8 → pool0 4 → 2 → 1: the third transition has no room to pool
    assert isinstance(model.features.transition2.pool, nn.AvgPool2d)
    assert isinstance(model.features.transition3.pool, nn.Identity)


def test_bad_options_are_user_errors():
    with pytest.raises(AicomputeError, match="growth_rate must be a positive integer, got 0"):
        get_model("densenet121", growth_rate=0)
    with pytest.raises(AicomputeError, match=r"drop_rate must be a probability in \[0, 1\), got 1.0"):
        get_model("densenet121", device="meta", drop_rate=1.0)
    with pytest.raises(AicomputeError, match=r"block_config\[1\] must be a positive integer, got 0"):
        DenseNet(block_config=(2, 0))
