"""ResNet-18/50: exact parameter counts from the block closed forms, v1.5 layout, stage shapes at
224×224 (on meta), torchvision naming and initialisation, zero-init residuals, any-size inputs."""

import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.models import count_params, get_model
from aicompute.nn.conv_blocks import BasicBlock, Bottleneck


def bn(c: int) -> int:
    return 2 * c


def basic_block(cin: int, planes: int, stride: int) -> int:
    params = 9 * cin * planes + bn(planes) + 9 * planes * planes + bn(planes)
    if stride != 1 or cin != planes:
        params += cin * planes + bn(planes)  # 1×1 projection shortcut
    return params


def bottleneck(cin: int, planes: int, stride: int) -> int:
    out = 4 * planes
    params = cin * planes + bn(planes) + 9 * planes * planes + bn(planes) + planes * out + bn(out)
    if stride != 1 or cin != out:
        params += cin * out + bn(out)
    return params


def resnet_closed_form(block, expansion: int, layers: list[int], classes: int = 1000) -> int:
    total = 3 * 64 * 7 * 7 + bn(64)  # stem
    cin = 64
    for i, n in enumerate(layers):
        planes = 64 * 2**i
        for j in range(n):
            total += block(cin, planes, 2 if (i > 0 and j == 0) else 1)
            cin = planes * expansion
    return total + cin * classes + classes


def test_resnet18_has_11689512_parameters():
    assert basic_block(64, 64, 1) == 73_984
    assert basic_block(64, 128, 2) == 230_144
    assert resnet_closed_form(basic_block, 1, [2, 2, 2, 2]) == 11_689_512
    assert count_params(get_model("resnet18", device="meta")) == 11_689_512


def test_resnet50_has_25557032_parameters():
    assert bottleneck(64, 64, 1) == 75_008  # first block of layer1 projects 64 → 256
    assert resnet_closed_form(bottleneck, 4, [3, 4, 6, 3]) == 25_557_032
    assert count_params(get_model("resnet50", device="meta")) == 25_557_032


@pytest.mark.parametrize(
    "name, expansion, counts", [("resnet18", 1, [2, 2, 2, 2]), ("resnet50", 4, [3, 4, 6, 3])]
)
def test_stage_layout_and_shapes_at_224(name, expansion, counts, shapes_at_224):
    model = get_model(name, device="meta")
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    assert [len(s) for s in stages] == counts
    assert shapes_at_224(model, ["layer1", "layer2", "layer3", "layer4"]) == {
        "layer1": (64 * expansion, 56, 56),
        "layer2": (128 * expansion, 28, 28),
        "layer3": (256 * expansion, 14, 14),
        "layer4": (512 * expansion, 7, 7),
    }


def test_resnet50_is_v1_5_stride_on_the_3x3():
    model = get_model("resnet50", device="meta")
    for stage in (model.layer2, model.layer3, model.layer4):
        first = stage[0]
        assert isinstance(first, Bottleneck)
        assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)
        assert first.downsample[0].stride == (2, 2)
    assert model.layer1[0].downsample is not None and model.layer1[1].downsample is None


def test_torchvision_state_dict_names():
    keys = set(get_model("resnet50", device="meta").state_dict())
    expected = [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv3.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.bias",
        "layer4.2.bn3.weight",
        "fc.weight",
        "fc.bias",
    ]
    assert set(expected) <= keys
    assert "conv1.bias" not in keys


def test_meta_construction_allocates_no_storage():
    for name in ("resnet18", "resnet50"):
        model = get_model(name, device="meta", zero_init_residual=True)
        assert all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers())


def test_initialisation_and_zero_init_residual():
    torch.manual_seed(0)
    model = get_model("resnet18", width=32)
    conv = model.layer3[1].conv1  # 128 → 128, fan-out 128·9
    assert conv.weight.std().item() == pytest.approx((2 / (128 * 9)) ** 0.5, rel=0.05)
    assert all(torch.all(m.weight == 1) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    zeroed = get_model("resnet18", width=8, zero_init_residual=True)
    blocks = [m for m in zeroed.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    assert all(torch.all(b.bn2.weight == 0) and torch.all(b.bn1.weight == 1) for b in blocks)
    # each block starts as ReLU(shortcut(x)); an identity block passes a non-negative input through
    x = torch.rand(2, 8, 5, 5)
    torch.testing.assert_close(zeroed.layer1(x), x)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_small_width_forward_on_any_input(name, check_image_logits):
    torch.manual_seed(0)
    for c, size, classes in [(3, 64, 1000), (1, 32, 10), (1, (8, 20), 3)]:
        model = get_model(name, in_channels=c, image_size=size, num_classes=classes, width=8).eval()
        check_image_logits(model, c, size, classes)
    assert model.fc.in_features == 8 * 8 * (4 if name == "resnet50" else 1)


def test_full_width_resnet18_on_a_32x32_image():
    model = get_model("resnet18", in_channels=1, image_size=32, num_classes=10)
    assert count_params(model) == 11_689_512 - 2 * 64 * 49 - 990 * 512 - 990  # one input channel, 10 classes
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_bad_width_is_a_user_error():
    with pytest.raises(AicomputeError, match="width must be a positive integer, got 0"):
        get_model("resnet18", width=0)
