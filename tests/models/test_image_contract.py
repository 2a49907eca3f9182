"""One contract for every image model in the zoo: its factory checks ``num_classes``, ``in_channels`` and
``dropout`` by name, and its forward rejects a batch with the wrong channel count as a user error.

The list is read from the registry, so a newly registered image model is covered without editing this file.
"""

import pytest
import torch

from aicompute.errors import AicomputeError
from aicompute.models import get_model, list_models

IMAGE_MODELS = [spec for spec in list_models() if spec.family == "image"]


def test_the_zoo_has_the_expected_image_models():
    names = {spec.name for spec in IMAGE_MODELS}
    assert {"lenet5", "alexnet", "vgg11", "vgg16", "googlenet", "resnet18", "resnet50", "densenet121",
            "mobilenet_v2", "ghostnet", "efficientnet_b0", "efficientnet_b4"} <= names


@pytest.mark.parametrize("spec", IMAGE_MODELS, ids=lambda s: s.name)
@pytest.mark.parametrize("arg", ["num_classes", "in_channels"])
@pytest.mark.parametrize("bad", [0, -2, 3.0])
def test_sizes_must_be_positive_integers(spec, arg, bad):
    with pytest.raises(AicomputeError, match=rf"^{arg} must be a positive integer, got {bad!r}$"):
        get_model(spec.name, device="meta", **{arg: bad})


@pytest.mark.parametrize("spec", [s for s in IMAGE_MODELS if "dropout" in s.defaults], ids=lambda s: s.name)
@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1])
def test_dropout_must_be_a_probability(spec, bad):
    with pytest.raises(AicomputeError, match=rf"^dropout must be a probability in \[0, 1\), got {bad!r}$"):
        get_model(spec.name, device="meta", dropout=bad)
    model = get_model(spec.name, device="meta", dropout=0.0)  # the closed end is allowed
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))


def test_alexnet_dropout_error_is_ours_not_torchs():
    # nn.Dropout would raise a bare ValueError for p = 1.5; the factory says which argument is wrong
    with pytest.raises(AicomputeError, match="dropout"):
        get_model("alexnet", dropout=1.5)


@pytest.mark.parametrize("spec", IMAGE_MODELS, ids=lambda s: s.name)
def test_wrong_channel_count_is_a_user_error(spec):
    c, h, w = spec.input_shape
    model = get_model(spec.name, device="meta")
    x = torch.empty(2, c + 1, h, w, device="meta")
    with pytest.raises(AicomputeError, match=rf"\(N, {c}, H, W\), got \(2, {c + 1}, {h}, {w}\); .*in_channels={c + 1}"):
        model(x)
    with pytest.raises(AicomputeError, match=r"in_channels=<C>"):  # a single image without its batch dim
        model(torch.empty(c, h, w, device="meta"))
    assert model(torch.empty(2, c, h, w, device="meta")).shape[0] == 2  # the right input still runs
