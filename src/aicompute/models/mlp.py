"""Fully connected classifiers: ``perceptron`` (one linear layer) and ``mlp`` (LeNet-300-100 by default).

Both flatten their input, so an MNIST batch (B, 1, 28, 28) and a feature batch (B, D) read the same way
(``in_features`` = 784 or D). Each fully connected layer computes a = f(Wa' + b), the seed's affine map
followed by a non-linearity; the last layer leaves its logits without one.

Parameter counts at the defaults (weights + biases):

* ``perceptron``: 784·10 + 10 = 7,850;
* ``mlp`` (LeNet-300-100, LeCun et al., 1998): 784·300 + 300 + 300·100 + 100 + 100·10 + 10 = 266,610.

The zoo ``perceptron`` is a multi-class linear classifier trained like any other model (softmax and SGD);
the classic mistake-driven binary rule lives in :mod:`aicompute.nn.perceptron`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from aicompute.checks import positive_int
from aicompute.models.registry import register_model
from aicompute.nn.activations import get_activation

__all__ = ["MLP", "LinearClassifier", "mlp", "perceptron"]


class LinearClassifier(nn.Module):
    """logits = W·flatten(x) + b: (B, ...) -> (B, num_classes)."""

    def __init__(self, in_features: int = 784, num_classes: int = 10) -> None:
        super().__init__()
        positive_int("in_features", in_features)
        positive_int("num_classes", num_classes)
        self.flatten = nn.Flatten()  # (B, ...) -> (B, in_features)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(x))


class MLP(nn.Module):
    """flatten -> [Linear -> activation] per hidden width -> Linear to ``num_classes`` logits.

    ``hidden=()`` leaves a single linear layer. ``activation`` is a name from
    :data:`aicompute.nn.activations.ACTIVATIONS`.
    """

    def __init__(
        self,
        in_features: int = 784,
        num_classes: int = 10,
        hidden: Sequence[int] = (300, 100),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        positive_int("in_features", in_features)
        positive_int("num_classes", num_classes)
        for width in hidden:
            positive_int("every hidden width", width)
        self.hidden = tuple(hidden)
        self.flatten = nn.Flatten()  # (B, ...) -> (B, in_features)
        layers: list[nn.Module] = []
        fan_in = in_features
        for width in self.hidden:
            layers += [nn.Linear(fan_in, width), get_activation(activation)]
            fan_in = width
        layers.append(nn.Linear(fan_in, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(self.flatten(x))


@register_model("perceptron", family="vector", input_shape=(1, 28, 28))
def perceptron(in_features: int = 784, num_classes: int = 10) -> nn.Module:
    """Single linear layer classifier (7,850 params at 784 -> 10)."""
    return LinearClassifier(in_features, num_classes)


@register_model("mlp", family="vector", input_shape=(1, 28, 28))
def mlp(
    in_features: int = 784,
    num_classes: int = 10,
    hidden: Sequence[int] = (300, 100),
    activation: str = "relu",
) -> nn.Module:
    """LeNet-300-100 MLP, 784-300-100-10 with ReLU (266,610 params)."""
    return MLP(in_features, num_classes, hidden, activation)
