"""DenseNet-121 in torchvision's layout (DenseNet-BC: bottleneck layers, compression 0.5).

``features``: stem (7×7/2 conv ``conv0`` → ``norm0`` → ``relu0`` → 3×3/2 max-pool ``pool0``) → four
dense blocks of 6, 12, 24, 16 layers with a transition (BN → ReLU → 1×1 conv halving the channels →
2×2 average pool) between them → a final BN ``norm5``; then ReLU → global average pool →
``classifier``. Module names match torchvision's, so its state dicts load. Parameters at 3×224×224 and
1000 classes: 7,978,856.

Channel arithmetic (growth k = 32, stem 64): each block adds ``layers·k`` channels, each transition
halves them: 64 → 256 → 128 → 512 → 256 → 1024 → 512 → 1024.

Any input size works: the head is adaptive, and a transition whose map is already 1×1 keeps it
(``pool_or_identity``; weights unchanged).
"""

from __future__ import annotations

import torch
from torch import nn

from aicompute.checks import positive_int, probability
from aicompute.errors import AicomputeError
from aicompute.models.registry import register_model
from aicompute.nn.conv_blocks import DenseBlock, Transition
from aicompute.nn.shapes import (
    IntOrPair,
    as_hw,
    check_classifier_args,
    check_image_batch,
    conv_output_size,
    pool_or_identity,
)

__all__ = ["DenseNet", "densenet121"]


class DenseNet(nn.Module):
    """A DenseNet-BC of ``block_config`` dense blocks.

    Initialisation as torchvision's: Kaiming-normal (fan-in) convs, BN γ=1 β=0, zero classifier bias.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        image_size: IntOrPair = 224,
        *,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_channels)
        positive_int("growth_rate", growth_rate)
        positive_int("num_init_features", num_init_features)
        positive_int("bn_size", bn_size)
        probability("drop_rate", drop_rate)
        if not block_config:
            raise AicomputeError("densenet needs at least one dense block; block_config=(6, 12, 24, 16) is 121's")
        for i, num_layers in enumerate(block_config):
            positive_int(f"block_config[{i}]", num_layers)
        h, w = as_hw(image_size)
        self.in_channels = in_channels
        size = (conv_output_size(h, 7, 2, 3), conv_output_size(w, 7, 2, 3))
        pool0, size = pool_or_identity(nn.MaxPool2d(3, stride=2, padding=1), size)
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(in_channels, num_init_features, 7, 2, 3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU())
        self.features.add_module("pool0", pool0)

        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels = block.out_channels
            if i != len(block_config) - 1:
                pool, size = pool_or_identity(nn.AvgPool2d(2, stride=2), size)
                transition = Transition(channels, channels // 2, pool=not isinstance(pool, nn.Identity))
                self.features.add_module(f"transition{i + 1}", transition)
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, "densenet")
        x = self.relu(self.features(x))  # (B, 1024, 7, 7) for densenet121 at 224×224
        x = torch.flatten(self.avgpool(x), 1)  # (B, 1024)
        return self.classifier(x)


@register_model("densenet121", family="image", input_shape=(3, 224, 224))
def densenet121(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: IntOrPair = 224,
    growth_rate: int = 32,
    num_init_features: int = 64,
    bn_size: int = 4,
    drop_rate: float = 0.0,
) -> DenseNet:
    """DenseNet-121 (2017): dense blocks [6, 12, 24, 16], growth 32; 7,978,856 params at defaults."""
    return DenseNet(
        num_classes,
        in_channels,
        image_size,
        growth_rate=growth_rate,
        block_config=(6, 12, 24, 16),
        num_init_features=num_init_features,
        bn_size=bn_size,
        drop_rate=drop_rate,
    )
