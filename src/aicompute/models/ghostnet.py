"""GhostNet 1.0× (Han et al., CVPR 2020), the official huawei-noah layout: 5,182,508 parameters at 1000 classes.

Stem 3×3/2 conv (16) + BN + ReLU → 16 :class:`~aicompute.nn.light_blocks.GhostBottleneck` blocks in the
paper's Table 7 grouping → 1×1 conv + BN + ReLU to 960 → global average pool → 1×1 conv to 1280 (with bias,
no BN) + ReLU → dropout → linear. SE blocks use a hard-sigmoid gate and ``make_divisible(mid / 4, 4)``
squeeze channels; ``width_mult`` scales the stem and block widths (rounded to multiples of 4), never the
1280 head. Attribute names follow the official code (``conv_stem``, ``bn1``, ``blocks``, ``conv_head``,
``classifier``); the SE convs are named ``fc1``/``fc2`` as in torchvision.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from aicompute.checks import positive_number
from aicompute.models.registry import register_model
from aicompute.nn.light_blocks import ConvNormAct, GhostBottleneck, init_conv_norm_, make_divisible
from aicompute.nn.shapes import as_hw, check_classifier_args, check_image_batch

__all__ = ["GhostNet", "ghostnet", "GhostBlock", "GHOSTNET_STAGES"]


class GhostBlock(NamedTuple):
    """One row of the paper's Table 7."""

    kernel_size: int
    """Depthwise kernel of the stride-2 conv and of the shortcut."""
    mid_channels: int
    """Expansion width ("#exp")."""
    out_channels: int
    se_ratio: float
    """0 for no SE, else the squeeze fraction of ``mid_channels``."""
    stride: int


# Grouped as in the official code (each inner tuple becomes one ``nn.Sequential`` of ``blocks``).
GHOSTNET_STAGES: tuple[tuple[GhostBlock, ...], ...] = (
    (GhostBlock(3, 16, 16, 0, 1),),
    (GhostBlock(3, 48, 24, 0, 2),),
    (GhostBlock(3, 72, 24, 0, 1),),
    (GhostBlock(5, 72, 40, 0.25, 2),),
    (GhostBlock(5, 120, 40, 0.25, 1),),
    (GhostBlock(3, 240, 80, 0, 2),),
    (
        GhostBlock(3, 200, 80, 0, 1),
        GhostBlock(3, 184, 80, 0, 1),
        GhostBlock(3, 184, 80, 0, 1),
        GhostBlock(3, 480, 112, 0.25, 1),
        GhostBlock(3, 672, 112, 0.25, 1),
    ),
    (GhostBlock(5, 672, 160, 0.25, 2),),
    (
        GhostBlock(5, 960, 160, 0, 1),
        GhostBlock(5, 960, 160, 0.25, 1),
        GhostBlock(5, 960, 160, 0, 1),
        GhostBlock(5, 960, 160, 0.25, 1),
    ),
)
HEAD_CHANNELS = 1280


class GhostNet(nn.Module):
    """GhostNet classifier; works for any input of at least 1×1 pixels (H and W shrink 32×)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        image_size: int | tuple[int, int] = 224,
        *,
        width_mult: float = 1.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_channels, dropout)
        positive_number("width_mult", width_mult)
        self.image_size = as_hw(image_size)
        self.in_channels = in_channels
        channels = make_divisible(16 * width_mult, 4)
        self.conv_stem = nn.Conv2d(in_channels, channels, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = nn.ReLU()

        stages: list[nn.Module] = []
        for stage in GHOSTNET_STAGES:
            blocks = []
            for b in stage:
                out = make_divisible(b.out_channels * width_mult, 4)
                mid = make_divisible(b.mid_channels * width_mult, 4)
                blocks.append(GhostBottleneck(channels, mid, out, b.kernel_size, b.stride, se_ratio=b.se_ratio))
                channels = out
            stages.append(nn.Sequential(*blocks))
        last = make_divisible(GHOSTNET_STAGES[-1][-1].mid_channels * width_mult, 4)
        stages.append(nn.Sequential(ConvNormAct(channels, last, 1, activation=nn.ReLU)))
        self.blocks = nn.Sequential(*stages)

        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(last, HEAD_CHANNELS, 1, bias=True)
        self.act2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

        # The official code keeps PyTorch's default init; we use torchvision's mobile-net init for the zoo.
        init_conv_norm_(self)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, "ghostnet")
        x = self.act1(self.bn1(self.conv_stem(x)))  # (N, 16, H/2, W/2)
        x = self.blocks(x)  # (N, 960, H/32, W/32)
        x = self.act2(self.conv_head(self.global_pool(x)))  # (N, 1280, 1, 1)
        return self.classifier(self.dropout(torch.flatten(x, 1)))  # (N, num_classes)


@register_model("ghostnet", family="image", input_shape=(3, 224, 224))
def ghostnet(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: int | tuple[int, int] = 224,
    *,
    width_mult: float = 1.0,
    dropout: float = 0.2,
) -> GhostNet:
    """GhostNet 1.0× (ghost modules + SE); 5.2M params, official layout."""
    return GhostNet(num_classes, in_channels, image_size, width_mult=width_mult, dropout=dropout)
