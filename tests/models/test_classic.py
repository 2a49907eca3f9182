"""LeNet-5, AlexNet, VGG: exact parameter counts (derived layer by layer), the seed text's LeNet-5 layer
table, torchvision layouts, any-size inputs, meta construction and initialisation."""

import pytest
import torch
from torch import nn

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.models import build_for_dataset, count_params, get_model, model_spec
from aicompute.models.classic import VGG_CONFIGS


# --- LeNet-5


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_lenet5_has_61706_parameters_at_the_reference(activation):
    conv1 = 6 * (1 * 5 * 5) + 6  # 156
    conv2 = 16 * (6 * 5 * 5) + 16  # 2,416
    fc1 = (16 * 5 * 5) * 120 + 120  # 48,120
    fc2 = 120 * 84 + 84  # 10,164
    fc3 = 84 * 10 + 10  # 850
    assert conv1 + conv2 + fc1 + fc2 + fc3 == 61_706
    assert count_params(get_model("lenet5", activation=activation)) == 61_706


def test_lenet5_follows_the_seed_layer_table(output_shapes):
    model = get_model("lenet5")
    names = ["conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "fc3"]
    shapes = output_shapes(model, torch.randn(1, 1, 32, 32), names)
    assert shapes == {
        "conv1": (6, 28, 28),
        "pool1": (6, 14, 14),
        "conv2": (16, 10, 10),
        "pool2": (16, 5, 5),
        "fc1": (120,),
        "fc2": (84,),
        "fc3": (10,),
    }
    assert isinstance(model.pool1, nn.MaxPool2d)  # the seed text's max pooling


def test_lenet5_pads_28x28_mnist_to_the_reference_table(output_shapes):
    model = get_model("lenet5", image_size=28)
    assert model.conv1.padding == (2, 2)
    shapes = output_shapes(model, torch.randn(1, 1, 28, 28), ["conv1", "pool2"])
    assert shapes == {"conv1": (6, 28, 28), "pool2": (16, 5, 5)}
    assert count_params(model) == 61_706


def test_lenet5_on_other_sizes_and_channels():
    rgb = get_model("lenet5", in_channels=3)
    assert count_params(rgb) == 61_706 + 2 * (6 * 5 * 5)  # two more input channels in conv1
    big = get_model("lenet5", in_channels=3, image_size=64, num_classes=1000)
    # 64 → conv 60 → pool 30 → conv 26 → pool 13: flatten 16·13·13
    assert big.flatten_features == 16 * 13 * 13
    assert big(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
    rect = get_model("lenet5", image_size=(28, 40))
    assert rect.conv1.padding == (2, 0)
    assert rect(torch.randn(2, 1, 28, 40)).shape == (2, 10)


def test_lenet5_options_and_errors():
    model = get_model("lenet5", activation="tanh", pool="avg")
    assert isinstance(model.act1, nn.Tanh) and isinstance(model.pool2, nn.AvgPool2d)
    with pytest.raises(AicomputeError, match="activation"):
        get_model("lenet5", activation="gelu")
    with pytest.raises(AicomputeError, match="at least 16×16"):
        get_model("lenet5", image_size=15, conv1_padding=0)
    with pytest.raises(AicomputeError, match="conv1_padding must be a non-negative integer, got -1"):
        get_model("lenet5", conv1_padding=-1)
    # 16 → conv 12 → pool 6 → conv 2 → pool 1: the smallest image LeNet-5 reads unpadded
    assert get_model("lenet5", image_size=16, conv1_padding=0).flatten_features == 16


# --- AlexNet


def test_alexnet_has_61100840_parameters():
    layers = [
        3 * 64 * 11 * 11 + 64,  # conv1: 23,296
        64 * 192 * 5 * 5 + 192,  # conv2: 307,392
        192 * 384 * 3 * 3 + 384,  # conv3: 663,936
        384 * 256 * 3 * 3 + 256,  # conv4: 884,992
        256 * 256 * 3 * 3 + 256,  # conv5: 590,080
        256 * 6 * 6 * 4096 + 4096,  # fc6: 37,752,832
        4096 * 4096 + 4096,  # fc7: 16,781,312
        4096 * 1000 + 1000,  # fc8: 4,097,000
    ]
    assert sum(layers) == 61_100_840
    model = get_model("alexnet", device="meta")
    assert count_params(model) == 61_100_840
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [sum(p.numel() for p in m.parameters()) for m in convs] == layers


def test_alexnet_uses_torchvision_module_indices(output_shapes):
    model = get_model("alexnet", device="meta")
    keys = {k.rsplit(".", 1)[0] for k in model.state_dict()}
    convs = {"features.0", "features.3", "features.6", "features.8", "features.10"}
    assert keys == convs | {"classifier.1", "classifier.4", "classifier.6"}
    shapes = output_shapes(model, torch.empty(1, 3, 224, 224, device="meta"), ["features", "avgpool"])
    assert shapes == {"features": (256, 6, 6), "avgpool": (256, 6, 6)}


def test_alexnet_runs_on_small_images_by_leaving_out_pools_that_do_not_fit():
    model = get_model("alexnet", in_channels=1, image_size=32, num_classes=10, hidden=64)
    # 32 → conv1 7 → pool 3 → conv2 3 → pool 1 → conv3-5 1 → the last 3×3 pool cannot fit
    assert isinstance(model.features[2], nn.MaxPool2d) and isinstance(model.features[5], nn.MaxPool2d)
    assert isinstance(model.features[12], nn.Identity)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    full = get_model("alexnet", image_size=64)
    assert full(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
    with pytest.raises(AicomputeError, match="at least 7×7"):
        get_model("alexnet", image_size=6)


# --- VGG


def vgg_closed_form(config: list, batch_norm: bool, classes: int = 1000) -> int:
    total, channels = 0, 3
    for item in config:
        if item != "M":
            total += (3 * 3 * channels + 1) * item + (2 * item if batch_norm else 0)
            channels = item
    return total + (512 * 7 * 7 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * classes


@pytest.mark.parametrize(
    "name, batch_norm, expected",
    [
        ("vgg11", False, 132_863_336),
        ("vgg16", False, 138_357_544),
        ("vgg11", True, 132_868_840),
        ("vgg16", True, 138_365_992),
    ],
)
def test_vgg_parameter_counts(name, batch_norm, expected):
    assert vgg_closed_form(VGG_CONFIGS[name], batch_norm) == expected
    assert count_params(get_model(name, device="meta", batch_norm=batch_norm)) == expected


def test_vgg16_has_thirteen_3x3_convs_and_torchvision_indices(output_shapes):
    model = get_model("vgg16", device="meta")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and all(c.kernel_size == (3, 3) for c in convs)
    assert isinstance(model.features[4], nn.MaxPool2d) and isinstance(model.features[30], nn.MaxPool2d)
    assert [i for i, m in enumerate(model.classifier) if isinstance(m, nn.Linear)] == [0, 3, 6]
    shapes = output_shapes(model, torch.empty(1, 3, 224, 224, device="meta"), ["features", "classifier"])
    assert shapes == {"features": (512, 7, 7), "classifier": (1000,)}


@pytest.mark.parametrize("name", ["vgg11", "vgg16"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_small_width_forward_on_any_input(name, batch_norm):
    for c, size, classes in [(3, 64, 1000), (1, 32, 10), (1, 16, 3)]:
        kwargs = {"in_channels": c, "image_size": size, "num_classes": classes, "batch_norm": batch_norm}
        model = get_model(name, width=8, hidden=32, **kwargs)
        assert model(torch.randn(2, c, size, size)).shape == (2, classes)
    # a 16×16 image leaves room for four of the five 2×2 pools
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 4


def test_vgg_initialisation_is_torchvision_s():
    torch.manual_seed(0)
    model = get_model("vgg11", width=64, hidden=256, batch_norm=True)
    conv = model.features[4]  # 64 → 128, fan-out = 128·9
    assert isinstance(conv, nn.Conv2d)
    assert conv.weight.std().item() == pytest.approx((2 / (128 * 9)) ** 0.5, rel=0.05)
    assert torch.all(conv.bias == 0)
    linear = model.classifier[3]
    assert linear.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(linear.bias == 0)
    bn = model.features[1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


# --- zoo


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg11", "vgg16"])
def test_meta_construction_allocates_no_storage(name):
    model = get_model(name, device="meta")
    assert all(p.is_meta for p in model.parameters())
    assert all(b.is_meta for b in model.buffers())
    spec = model_spec(name)
    out = model(torch.empty(1, *spec.input_shape, device="meta"))
    assert out.shape == (1, spec.defaults["num_classes"])


def test_lenet5_fits_an_mnist_shaped_dataset():
    info = DatasetInfo(name="mnist", task="classification", input_shape=(1, 28, 28), num_classes=10)
    model, kwargs = build_for_dataset("lenet5", info)
    assert kwargs == {"in_channels": 1, "image_size": (28, 28), "num_classes": 10}
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)
    assert model_spec("lenet5").input_shape == (1, 32, 32)
