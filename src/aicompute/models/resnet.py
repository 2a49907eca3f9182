"""ResNet-18 and ResNet-50 in torchvision's layout ("v1.5": the bottleneck's stride is on its 3×3).

Stem (7×7/2 conv → BN → ReLU → 3×3/2 max-pool) → four stages of residual blocks (``layer1``…``layer4``,
the first block of stages 2-4 halves H×W) → global average pool → ``fc``. Module names match
torchvision's, so its state dicts load. Parameters at 3×224×224 and 1000 classes: resnet18 11,689,512,
resnet50 25,557,032.

The network is size-agnostic (``AdaptiveAvgPool2d(1)`` head; every conv and pool is padded so a 1×1
map stays 1×1); ``image_size`` is accepted for the zoo's calling convention and validated only.
``width`` scales every stage (``width × (1, 2, 4, 8)`` planes; 64 is the reference) for cheap variants.
"""

from __future__ import annotations

import torch
from torch import nn

from aicompute.checks import positive_int
from aicompute.models.registry import register_model
from aicompute.nn.conv_blocks import BasicBlock, Bottleneck
from aicompute.nn.shapes import IntOrPair, as_hw, check_classifier_args, check_image_batch

__all__ = ["ResNet", "resnet18", "resnet50"]

Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """A residual network of ``block``s, ``layers[i]`` of them in stage ``i``.

    Initialisation as torchvision's: Kaiming-normal (fan-out, ReLU) convs, BN γ=1 β=0, default
    ``nn.Linear`` init for ``fc``; ``zero_init_residual`` sets γ=0 in each block's last BN so every
    residual block starts as the identity (then ReLU) — it helps large-batch training.
    """

    def __init__(
        self,
        block: Block,
        layers: list[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        image_size: IntOrPair = 224,
        *,
        width: int = 64,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_channels)
        positive_int("width", width)
        for i, num_blocks in enumerate(layers):
            positive_int(f"layers[{i}]", num_blocks)
        as_hw(image_size)
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = width
        for i, num_blocks in enumerate(layers):
            stride = 1 if i == 0 else 2  # stages 2-4 halve H×W in their first block
            stage, channels = self._make_stage(block, channels, width * 2**i, num_blocks, stride)
            self.add_module(f"layer{i + 1}", stage)
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights(zero_init_residual)

    @staticmethod
    def _make_stage(
        block: Block, in_channels: int, planes: int, num_blocks: int, stride: int
    ) -> tuple[nn.Sequential, int]:
        blocks = [block(in_channels, planes, stride)]
        blocks += [block(blocks[0].out_channels, planes) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks), blocks[0].out_channels

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, "resnet")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, w, 56, 56) at 224×224
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)  # halves H×W from stage 2 on
        # (B, 8w·expansion, 7, 7) for four stages at 224×224
        x = torch.flatten(self.avgpool(x), 1)  # (B, 8w·expansion)
        return self.fc(x)


_LAYOUTS: dict[str, tuple[Block, tuple[int, ...]]] = {
    # zoo name: (block type, blocks per stage)
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def _resnet(
    name: str, num_classes: int, in_channels: int, image_size: IntOrPair, width: int, zero_init_residual: bool
) -> ResNet:
    """The body of the ``resnet18`` / ``resnet50`` entries (arguments in their signature's order), which differ
    only in their ``_LAYOUTS`` row; each entry stays its own function, as the registry reads its signature."""
    block, layers = _LAYOUTS[name]
    return ResNet(
        block, list(layers), num_classes, in_channels, image_size, width=width, zero_init_residual=zero_init_residual
    )


@register_model("resnet18", family="image", input_shape=(3, 224, 224))
def resnet18(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: IntOrPair = 224,
    width: int = 64,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-18 (2015): basic blocks [2, 2, 2, 2], torchvision layout; 11,689,512 params at defaults."""
    return _resnet("resnet18", num_classes, in_channels, image_size, width, zero_init_residual)


@register_model("resnet50", family="image", input_shape=(3, 224, 224))
def resnet50(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: IntOrPair = 224,
    width: int = 64,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-50 (2015): bottleneck blocks [3, 4, 6, 3], torchvision v1.5 layout; 25,557,032 params."""
    return _resnet("resnet50", num_classes, in_channels, image_size, width, zero_init_residual)
