"""The MNIST-1D paper's 1-D CNN (models/cnn1d.py)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.models import build_for_dataset, count_params, example_input, get_model, model_spec
from aicompute.models.cnn1d import CNN1d


def test_param_count_matches_the_paper():
    # conv1: 1·25·5 + 25 = 150; conv2, conv3: 25·25·3 + 25 = 1,900 each; linear: 125·10 + 10 = 1,260
    assert 150 + 1900 + 1900 + 1260 == 5210
    assert count_params(get_model("cnn1d")) == 5210


@pytest.mark.parametrize("shape", [(7, 40), (7, 1, 40)])
def test_forward_shape_for_flat_and_channel_input(shape):
    torch.manual_seed(0)
    model = get_model("cnn1d")
    assert model(torch.randn(shape)).shape == (7, 10)


def test_flat_input_is_one_channel():
    torch.manual_seed(0)
    model = get_model("cnn1d")
    x = torch.randn(5, 40)
    torch.testing.assert_close(model(x), model(x.unsqueeze(1)), rtol=0, atol=0)


def test_lengths_through_the_convolutions():
    model = get_model("cnn1d")
    lengths = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: lengths.append(out.shape[-1]))
        for m in model.features
        if isinstance(m, torch.nn.Conv1d)
    ]
    model(torch.randn(2, 40))
    for h in hooks:
        h.remove()
    # ⌊(40+2−5)/2⌋+1 = 19, ⌊(19+2−3)/2⌋+1 = 10, ⌊(10+2−3)/2⌋+1 = 5
    assert lengths == [19, 10, 5]
    assert model.out_length == 5
    assert model.classifier.in_features == 125


def test_matches_the_papers_layers_written_with_functional_ops():
    torch.manual_seed(1)
    model = get_model("cnn1d", num_classes=4)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv1d)]
    assert [c.kernel_size[0] for c in convs] == [5, 3, 3]
    x = torch.randn(3, 40)
    h = x.view(-1, 1, 40)
    for conv in convs:
        h = F.relu(F.conv1d(h, conv.weight, conv.bias, stride=2, padding=1))
    expected = F.linear(h.reshape(3, -1), model.classifier.weight, model.classifier.bias)
    torch.testing.assert_close(model(x), expected)


@settings(max_examples=15, deadline=None)
@given(length=st.integers(3, 120), in_channels=st.integers(1, 3), channels=st.integers(1, 6))
def test_flatten_size_follows_the_conv_length_formula(length, in_channels, channels):
    n = length
    for k in (5, 3, 3):
        n = (n + 2 - k) // 2 + 1
    model = CNN1d(num_classes=3, in_channels=in_channels, length=length, channels=channels)
    assert model.classifier.in_features == channels * n
    out = model.features(torch.randn(2, in_channels, length))
    assert out.shape == (2, channels, n)
    assert model(torch.randn(2, in_channels, length)).shape == (2, 3)


def test_too_short_signal_is_rejected_at_build_time():
    assert get_model("cnn1d", length=3)(torch.randn(2, 3)).shape == (2, 10)
    with pytest.raises(AicomputeError, match="length >= 3"):
        get_model("cnn1d", length=2)


@pytest.mark.parametrize("name", ["num_classes", "in_channels", "length", "channels"])
@pytest.mark.parametrize("bad", [0, -1, 2.0])
def test_sizes_must_be_positive_integers(name, bad):
    with pytest.raises(AicomputeError, match=rf"{name} must be a positive integer, got {bad!r}"):
        get_model("cnn1d", **{name: bad})


@pytest.mark.parametrize("shape", [(2, 41), (2, 2, 40), (2, 1, 1, 40)])
def test_wrong_input_shape_says_what_it_reads(shape):
    with pytest.raises(AicomputeError, match=r"\(batch, 1, 40\)"):
        get_model("cnn1d")(torch.randn(shape))


def test_multichannel_model_needs_the_channel_dim():
    model = get_model("cnn1d", in_channels=2, length=20)
    assert model(torch.randn(3, 2, 20)).shape == (3, 10)
    with pytest.raises(AicomputeError, match=r"\(batch, 2, 20\)"):
        model(torch.randn(3, 20))


def test_registry_entry_and_dataset_fit():
    spec = model_spec("cnn1d")
    assert (spec.family, spec.input_shape, spec.input_dtype) == ("signal", (40,), "float32")
    assert get_model("cnn1d")(example_input(spec, 3)).shape == (3, 10)
    info = DatasetInfo(
        name="toy-signal", task="classification", input_shape=(2, 24), num_classes=5, kind="signal"
    )
    model, kwargs = build_for_dataset("cnn1d", info)
    assert kwargs == {"in_channels": 2, "length": 24, "num_classes": 5}
    assert model(torch.randn(4, 2, 24)).shape == (4, 5)
