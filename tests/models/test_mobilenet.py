"""MobileNetV2: torchvision's exact parameter count and MACs, its layout, and real forwards at small sizes."""

import pytest
import torch
from torch import nn

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.models import build_for_dataset, count_params, get_model, model_spec
from aicompute.nn.light_blocks import InvertedResidual


def test_param_count_and_macs_match_torchvision(meta_macs):
    model = get_model("mobilenet_v2", device="meta")
    assert count_params(model) == 3_504_872  # torchvision MobileNet_V2_Weights meta["num_params"]
    assert round(meta_macs(model, (1, 3, 224, 224)) / 1e9, 3) == 0.301  # torchvision "_ops" (GMACs)


def test_layout_follows_the_paper_table():
    model = get_model("mobilenet_v2", device="meta")
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17  # n = 1 + 2 + 3 + 4 + 3 + 3 + 1
    assert [b.out_channels for b in blocks] == [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320]
    # residual only inside a stage (stride 1, same width): 10 of the 17 blocks
    assert sum(b.use_res_connect for b in blocks) == 10
    keys = set(model.state_dict())
    for key in (  # torchvision's state-dict keys
        "features.0.0.weight",
        "features.1.conv.0.0.weight",
        "features.1.conv.2.running_var",
        "features.2.conv.0.0.weight",
        "features.2.conv.3.weight",
        "features.18.0.weight",
        "classifier.1.bias",
    ):
        assert key in keys


@pytest.mark.parametrize(("width", "stem", "last"), [(0.5, 16, 1280), (1.4, 48, 1792)])
def test_width_multiplier_rounds_to_eight_and_keeps_1280_head_below_one(width, stem, last):
    model = get_model("mobilenet_v2", device="meta", width_mult=width)
    assert model.features[0][0].out_channels == stem
    assert model.last_channel == last and model.classifier[1].in_features == last
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize(("in_channels", "size"), [(1, 32), (3, 64), (3, (40, 24))])
def test_forward_and_backward_on_small_inputs(in_channels, size, check_trains_on_small_images):
    model, x = check_trains_on_small_images("mobilenet_v2", in_channels, size)
    model.eval()
    torch.testing.assert_close(model(x), model(x))  # deterministic in eval mode


def test_init_matches_torchvision():
    torch.manual_seed(0)
    model = get_model("mobilenet_v2", num_classes=100)
    head = model.classifier[1]
    assert head.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.count_nonzero(head.bias) == 0
    bn = model.features[0][1]
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))


def test_registry_entry_and_dataset_fit():
    spec = model_spec("mobilenet_v2")
    assert spec.family == "image" and spec.input_shape == (3, 224, 224)
    info = DatasetInfo(name="mnist", task="classification", input_shape=(1, 28, 28), num_classes=10)
    model, kwargs = build_for_dataset("mobilenet_v2", info)
    assert kwargs == {"in_channels": 1, "image_size": (28, 28), "num_classes": 10}
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_user_mistakes_raise_clear_errors():
    model = get_model("mobilenet_v2", num_classes=10, in_channels=1, image_size=32)
    with pytest.raises(AicomputeError, match=r"\(N, 1, H, W\), got \(2, 3, 32, 32\)"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(AicomputeError, match="image_size must be"):
        get_model("mobilenet_v2", device="meta", image_size=(32, 0))
    with pytest.raises(AicomputeError, match="width_mult must be > 0"):
        get_model("mobilenet_v2", device="meta", width_mult=0)
