"""The fully connected zoo models: exact parameter counts, shapes, the forward pass by hand, registry wiring."""

import pytest
import torch
from torch import nn

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.models.registry import build_for_dataset, count_params, example_input, get_model, model_spec


def test_parameter_counts_are_exact():
    # perceptron: 784·10 weights + 10 biases = 7,850
    assert count_params(get_model("perceptron")) == 7_850
    # LeNet-300-100: (784·300 + 300) + (300·100 + 100) + (100·10 + 10) = 235,500 + 30,100 + 1,010 = 266,610
    assert count_params(get_model("mlp")) == 266_610
    # 40 features, one hidden layer of 16, 3 classes: (40·16 + 16) + (16·3 + 3) = 656 + 51 = 707
    assert count_params(get_model("mlp", in_features=40, hidden=(16,), num_classes=3)) == 707
    # no hidden layer: the perceptron again
    assert count_params(get_model("mlp", hidden=())) == 7_850


def test_lenet_300_100_layout():
    linears = [m for m in get_model("mlp").modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 300), (300, 100), (100, 10)]
    kinds = [type(m).__name__ for m in get_model("mlp").layers]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]  # no activation on the logits


@pytest.mark.parametrize("name", ["perceptron", "mlp"])
def test_forward_flattens_images_and_vectors(name):
    torch.manual_seed(0)
    assert get_model(name)(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    model = get_model(name, in_features=40, num_classes=3)
    x = torch.randn(4, 40)
    assert model(x).shape == (4, 3)
    torch.testing.assert_close(model(x.view(4, 1, 5, 8)), model(x))  # same numbers, any layout


def test_forward_equals_the_layer_equations():
    torch.manual_seed(1)
    model = get_model("mlp", in_features=6, hidden=(5, 4), num_classes=3, activation="tanh").double()
    (W1, b1), (W2, b2), (W3, b3) = [(m.weight, m.bias) for m in model.modules() if isinstance(m, nn.Linear)]
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    a0 = x.reshape(7, 6)
    a1 = torch.tanh(a0 @ W1.T + b1)  # a⁽ˡ⁾ = f(W⁽ˡ⁾ a⁽ˡ⁻¹⁾ + b⁽ˡ⁾)
    a2 = torch.tanh(a1 @ W2.T + b2)
    torch.testing.assert_close(model(x), a2 @ W3.T + b3, rtol=0, atol=1e-12)
    p = get_model("perceptron", in_features=6, num_classes=3).double()
    torch.testing.assert_close(p(x), a0 @ p.fc.weight.T + p.fc.bias, rtol=0, atol=1e-12)


def test_registry_entries_and_dataset_fit():
    for name in ("perceptron", "mlp"):
        spec = model_spec(name)
        assert spec.family == "vector" and spec.input_shape == (1, 28, 28)
        assert get_model(name)(example_input(spec, 2)).shape == (2, 10)
    info = DatasetInfo(name="mnist1d", task="classification", input_shape=(40,), num_classes=10, kind="signal")
    model, kwargs = build_for_dataset("mlp", info)
    assert kwargs == {"in_features": 40, "num_classes": 10}
    assert model(torch.randn(3, 40)).shape == (3, 10)
    meta = get_model("mlp", device="meta")
    assert all(p.is_meta for p in meta.parameters()) and count_params(meta) == 266_610


def test_bad_options_are_user_errors():
    with pytest.raises(AicomputeError, match="every hidden width must be a positive integer, got 0"):
        get_model("mlp", hidden=(300, 0))
    with pytest.raises(AicomputeError, match="unknown activation 'rleu'"):
        get_model("mlp", activation="rleu")
    with pytest.raises(AicomputeError, match="in_features must be a positive integer"):
        get_model("perceptron", in_features=-1)
