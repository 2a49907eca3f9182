"""The early classic CNNs: LeNet-5, AlexNet and VGG (11 and 16).

LeNet-5 follows the seed text's layer table; AlexNet and VGG follow torchvision's layouts (module
indices included, so their state dicts are interchangeable), which fixes the reference parameter
counts: alexnet 61,100,840, vgg11 132,863,336, vgg16 138,357,544 at 3×224×224 and 1000 classes.

Arguments are checked when a model is built (positive ``num_classes``/``in_channels``, ``dropout`` in
[0, 1)), and ``forward`` rejects a batch whose channel count differs from ``in_channels``.

Any input size works: AlexNet and VGG end in ``AdaptiveAvgPool2d`` (6×6 and 7×7) before the classifier,
and a max-pool that would shrink a small feature map below 1×1 is left out (see
:func:`aicompute.nn.shapes.pool_or_identity`), which changes no weight. Layer sizes are computed
from ``image_size`` at construction, so building under ``torch.device("meta")`` allocates nothing.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from aicompute.checks import non_negative_int, positive_int, probability
from aicompute.errors import AicomputeError
from aicompute.models.registry import register_model
from aicompute.nn.shapes import (
    IntOrPair,
    as_hw,
    check_classifier_args,
    check_image_batch,
    conv_output_size,
    pool_or_identity,
)

__all__ = ["LeNet5", "AlexNet", "VGG", "VGG_CONFIGS", "lenet5", "alexnet", "vgg11", "vgg16"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}
_POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


# --- LeNet-5 -------------------------------------------------------------------------------------


def _lenet_padding(side: int) -> int:
    """Pad C1 so that a side shorter than 32 behaves like the reference 32 (28 → 2, as for MNIST)."""
    return max(0, (32 - side + 1) // 2)


class LeNet5(nn.Module):
    """LeNet-5 as the seed text's table gives it.

    ====== ============= ======= ====== ======== ======== ============
    layer  input         kernel  count  padding  stride   output
    ====== ============= ======= ====== ======== ======== ============
    conv1  (C, 32, 32)   5×5     6      p        1        (6, 28, 28)
    pool1  (6, 28, 28)   2×2     –      0        2        (6, 14, 14)
    conv2  (6, 14, 14)   5×5     16     0        1        (16, 10, 10)
    pool2  (16, 10, 10)  2×2     –      0        2        (16, 5, 5)
    fc1    16·5·5        –       120                      120
    fc2    120           –       84                       84
    fc3    84            –       classes                  classes
    ====== ============= ======= ====== ======== ======== ============

    Other input sizes: ``conv1_padding=None`` pads C1 by ``max(0, ⌈(32 − side)/2⌉)`` per side, so a
    28×28 MNIST digit gets padding 2 and sees exactly the table above (the usual choice); larger images
    get no padding and a larger flatten, ``16·h₂·w₂``, computed from ``image_size``. Pass an explicit
    ``conv1_padding`` to override. Parameters at 1×32×32 and 10 classes: 61,706.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: IntOrPair = 32,
        *,
        activation: Literal["relu", "tanh"] = "relu",
        pool: Literal["max", "avg"] = "max",
        conv1_padding: int | None = None,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_channels)
        if activation not in _ACTIVATIONS or pool not in _POOLS:
            raise AicomputeError(
                f"lenet5 takes activation in {sorted(_ACTIVATIONS)} and pool in {sorted(_POOLS)}, "
                f"got activation={activation!r}, pool={pool!r}"
            )
        h, w = as_hw(image_size)
        if conv1_padding is None:
            pad = (_lenet_padding(h), _lenet_padding(w))
        else:
            pad = (non_negative_int("conv1_padding", conv1_padding),) * 2
        # conv 5×5 → pool 2 → conv 5×5 → pool 2, per spatial dimension
        sizes = []
        for side, p in zip((h, w), pad):
            side = conv_output_size(side, 5, padding=p) // 2
            sizes.append(conv_output_size(side, 5) // 2)
        if min(sizes) < 1:
            raise AicomputeError(
                f"lenet5 cannot read {h}×{w} images with conv1_padding={conv1_padding}: its two 5×5 convs "
                "and 2×2 pools need at least 16×16 after padding (32×32 is the reference); leave "
                "conv1_padding=None to pad automatically"
            )
        act, pool_cls = _ACTIVATIONS[activation], _POOLS[pool]
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=pad)
        self.act1 = act()
        self.pool1 = pool_cls(2, stride=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.act2 = act()
        self.pool2 = pool_cls(2, stride=2)
        self.flatten_features = 16 * sizes[0] * sizes[1]
        self.fc1 = nn.Linear(self.flatten_features, 120)
        self.act3 = act()
        self.fc2 = nn.Linear(120, 84)
        self.act4 = act()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, "lenet5")
        x = self.pool1(self.act1(self.conv1(x)))  # (B, 6, 14, 14) at the reference size
        x = self.pool2(self.act2(self.conv2(x)))  # (B, 16, 5, 5)
        x = torch.flatten(x, 1)  # (B, 400)
        x = self.act4(self.fc2(self.act3(self.fc1(x))))
        return self.fc3(x)


# --- AlexNet -------------------------------------------------------------------------------------


class AlexNet(nn.Module):
    """AlexNet in torchvision's single-tower layout (64-192-384-256-256 channels, no LRN).

    ``features`` (5 convs, 3 overlapping 3×3/2 max-pools) → ``AdaptiveAvgPool2d(6×6)`` → ``classifier``
    (dropout, ``256·6·6 → hidden``, dropout, ``hidden → hidden``, ``hidden → classes``).
    ``hidden=4096`` is the reference; a smaller one gives a cheap model with the same features.
    The first 11×11 stride-4 conv (padding 2) needs images of at least 7×7.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        image_size: IntOrPair = 224,
        *,
        hidden: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_channels)
        positive_int("hidden", hidden)
        probability("dropout", dropout)
        h, w = as_hw(image_size)
        if min(h, w) < 7:
            raise AicomputeError(
                f"alexnet needs images of at least 7×7 (its first conv is 11×11, stride 4, padding 2), "
                f"got {h}×{w}"
            )
        size = (conv_output_size(h, 11, 4, 2), conv_output_size(w, 11, 4, 2))
        pool1, size = pool_or_identity(nn.MaxPool2d(3, stride=2), size)
        pool2, size = pool_or_identity(nn.MaxPool2d(3, stride=2), size)  # conv2 (5×5, pad 2) keeps the size
        pool3, size = pool_or_identity(nn.MaxPool2d(3, stride=2), size)  # conv3-5 (3×3, pad 1) keep it too
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2),
            nn.ReLU(),
            pool1,
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            pool2,
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
            pool3,
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, "alexnet")
        x = self.avgpool(self.features(x))  # (B, 256, 6, 6)
        return self.classifier(torch.flatten(x, 1))  # flatten: (B, 9216)


# --- VGG -----------------------------------------------------------------------------------------

VGG_CONFIGS: dict[str, list[int | str]] = {
    # channels of each 3×3 conv at width 64; "M" is a 2×2/2 max-pool
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", *[256] * 4, "M", *[512] * 4, "M", *[512] * 4, "M"],
}


class VGG(nn.Module):
    """VGG in torchvision's layout: 3×3 convs (+ BN if ``batch_norm``) and ReLU, 5 max-pools, then
    ``AdaptiveAvgPool2d(7×7)`` and a ``8w·7·7 → hidden → hidden → classes`` classifier with dropout.

    ``width`` is the first stage's channel count (64 in the paper); the stages have ``width × (1, 2, 4,
    8, 8)`` channels. Weights are initialised as torchvision does: Kaiming-normal (fan-out) convs with
    zero bias, BN γ=1 β=0, linear weights N(0, 0.01²) with zero bias.
    """

    def __init__(
        self,
        config: list[int | str],
        num_classes: int = 1000,
        in_channels: int = 3,
        image_size: IntOrPair = 224,
        *,
        batch_norm: bool = False,
        width: int = 64,
        hidden: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_channels)
        positive_int("width", width)
        positive_int("hidden", hidden)
        probability("dropout", dropout)
        size = as_hw(image_size)
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                pool, size = pool_or_identity(nn.MaxPool2d(2, stride=2), size)
                layers.append(pool)
                continue
            out = int(item) * width // 64
            layers.append(nn.Conv2d(channels, out, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, "vgg")
        x = self.avgpool(self.features(x))  # (B, 8·width, 7, 7)
        return self.classifier(torch.flatten(x, 1))  # flatten: (B, 8·width·49)


# --- Zoo entries ---------------------------------------------------------------------------------


@register_model("lenet5", family="image", input_shape=(1, 32, 32))
def lenet5(
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: IntOrPair = 32,
    activation: Literal["relu", "tanh"] = "relu",
    pool: Literal["max", "avg"] = "max",
    conv1_padding: int | None = None,
) -> LeNet5:
    """LeNet-5 (1998): two 5×5 convs with 2×2 pools, FC 120-84; 61,706 params at 1×32×32, 10 classes."""
    return LeNet5(
        num_classes, in_channels, image_size, activation=activation, pool=pool, conv1_padding=conv1_padding
    )


@register_model("alexnet", family="image", input_shape=(3, 224, 224))
def alexnet(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: IntOrPair = 224,
    hidden: int = 4096,
    dropout: float = 0.5,
) -> AlexNet:
    """AlexNet (2012), torchvision layout: 5 convs, 3 FC layers; 61,100,840 params at defaults."""
    return AlexNet(num_classes, in_channels, image_size, hidden=hidden, dropout=dropout)


def _vgg(
    config: str,
    num_classes: int,
    in_channels: int,
    image_size: IntOrPair,
    batch_norm: bool,
    width: int,
    hidden: int,
    dropout: float,
) -> VGG:
    """The body of the ``vgg11`` / ``vgg16`` entries (arguments in their signature's order), which differ only
    in the ``VGG_CONFIGS`` row; each entry stays its own function, as the registry reads its signature."""
    return VGG(
        VGG_CONFIGS[config],
        num_classes,
        in_channels,
        image_size,
        batch_norm=batch_norm,
        width=width,
        hidden=hidden,
        dropout=dropout,
    )


@register_model("vgg11", family="image", input_shape=(3, 224, 224))
def vgg11(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: IntOrPair = 224,
    batch_norm: bool = False,
    width: int = 64,
    hidden: int = 4096,
    dropout: float = 0.5,
) -> VGG:
    """VGG-11 (config A), torchvision layout: 8 3×3 convs, 3 FC layers; 132,863,336 params at defaults."""
    return _vgg("vgg11", num_classes, in_channels, image_size, batch_norm, width, hidden, dropout)


@register_model("vgg16", family="image", input_shape=(3, 224, 224))
def vgg16(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: IntOrPair = 224,
    batch_norm: bool = False,
    width: int = 64,
    hidden: int = 4096,
    dropout: float = 0.5,
) -> VGG:
    """VGG-16 (config D), torchvision layout: 13 3×3 convs, 3 FC layers; 138,357,544 params at defaults."""
    return _vgg("vgg16", num_classes, in_channels, image_size, batch_norm, width, hidden, dropout)
