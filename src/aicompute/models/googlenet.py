"""GoogLeNet (Inception v1) in torchvision's layout, without the auxiliary classifiers.

Stem (7×7/2 conv, pool, 1×1 conv, 3×3 conv, pool) → nine Inception modules in three stages
(3a-3b, 4a-4e, 5a-5b) with max-pools between → global average pool → dropout → one linear layer.
Every conv is conv (no bias) → BN (ε = 1e-3) → ReLU, as torchvision's ``BasicConv2d``. Module names
match torchvision's (``conv1.conv``, ``inception3a.branch2.1.bn``, ``fc``…), so its state dict loads.

Parameters at 3×224×224 and 1000 classes: 6,624,904. That figure, like torchvision's pretrained model,
has a 3×3 kernel in the "5×5" branch of every Inception module (a torchvision quirk, pytorch/vision
issue 906); ``branch3_kernel_size=5`` builds the paper's 5×5 instead (more parameters).

Any input size works: the head is ``AdaptiveAvgPool2d(1)``, and a pool that would shrink a small
map below 1×1 is left out (weights unchanged).
"""

from __future__ import annotations

import torch
from torch import nn

from aicompute.models.registry import register_model
from aicompute.nn.conv_blocks import ConvBlock, Inception
from aicompute.nn.shapes import (
    IntOrPair,
    as_hw,
    check_classifier_args,
    check_image_batch,
    conv_output_size,
    pool_or_identity,
)

__all__ = ["GoogLeNet", "INCEPTION_V1_STAGES", "googlenet"]

# (name, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) per stage, from the GoogLeNet paper's table 1;
# a max-pool (3×3/2, then 2×2/2 before stage 5) separates the stages.
INCEPTION_V1_STAGES: list[list[tuple[str, int, int, int, int, int, int]]] = [
    [("inception3a", 64, 96, 128, 16, 32, 32), ("inception3b", 128, 128, 192, 32, 96, 64)],
    [
        ("inception4a", 192, 96, 208, 16, 48, 64),
        ("inception4b", 160, 112, 224, 24, 64, 64),
        ("inception4c", 128, 128, 256, 24, 64, 64),
        ("inception4d", 112, 144, 288, 32, 64, 64),
        ("inception4e", 256, 160, 320, 32, 128, 128),
    ],
    [("inception5a", 256, 160, 320, 32, 128, 128), ("inception5b", 384, 192, 384, 48, 128, 128)],
]


class GoogLeNet(nn.Module):
    """GoogLeNet without auxiliary heads; weights initialised as torchvision's (truncated N(0, 0.01²)
    in [−2, 2] for convs and the classifier, BN γ=1 β=0)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        image_size: IntOrPair = 224,
        *,
        branch3_kernel_size: int = 3,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_channels, dropout)
        h, w = as_hw(image_size)
        size = (conv_output_size(h, 7, 2, 3), conv_output_size(w, 7, 2, 3))
        self.in_channels = in_channels
        self.conv1 = ConvBlock(in_channels, 64, 7, stride=2, padding=3, bn_eps=1e-3)
        self.maxpool1, size = pool_or_identity(nn.MaxPool2d(3, stride=2, ceil_mode=True), size)
        self.conv2 = ConvBlock(64, 64, 1, bn_eps=1e-3)
        self.conv3 = ConvBlock(64, 192, 3, bn_eps=1e-3)
        self.maxpool2, size = pool_or_identity(nn.MaxPool2d(3, stride=2, ceil_mode=True), size)

        channels = 192
        stage_pools = [nn.MaxPool2d(3, stride=2, ceil_mode=True), nn.MaxPool2d(2, stride=2, ceil_mode=True)]
        for stage, modules in enumerate(INCEPTION_V1_STAGES):
            for name, *widths in modules:
                block = Inception(channels, *widths, branch3_kernel_size=branch3_kernel_size)
                self.add_module(name, block)
                channels = block.out_channels
            if stage < len(stage_pools):  # maxpool3 after stage 3, maxpool4 after stage 4
                pool, size = pool_or_identity(stage_pools[stage], size)
                self.add_module(f"maxpool{stage + 3}", pool)

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2.0, b=2.0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, "googlenet")
        x = self.maxpool1(self.conv1(x))  # (B, 64, 56, 56) at 224×224
        x = self.maxpool2(self.conv3(self.conv2(x)))  # (B, 192, 28, 28)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))  # (B, 480, 14, 14)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            x = getattr(self, name)(x)
        x = self.maxpool4(x)  # (B, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))  # (B, 1024, 7, 7)
        x = torch.flatten(self.avgpool(x), 1)  # (B, 1024)
        return self.fc(self.dropout(x))


@register_model("googlenet", family="image", input_shape=(3, 224, 224))
def googlenet(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: IntOrPair = 224,
    branch3_kernel_size: int = 3,
    dropout: float = 0.2,
) -> GoogLeNet:
    """GoogLeNet / Inception v1 (2014), torchvision layout, no aux heads; 6,624,904 params at defaults."""
    return GoogLeNet(
        num_classes, in_channels, image_size, branch3_kernel_size=branch3_kernel_size, dropout=dropout
    )
