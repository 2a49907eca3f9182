"""MobileNetV2 (Sandler et al., 2018) in torchvision's layout: 3,504,872 parameters at 1000 classes.

Stem 3×3/2 conv (32 channels) → 17 :class:`~aicompute.nn.light_blocks.InvertedResidual` blocks from the
paper's table (t expansion, c channels, n repeats, s first stride) → 1×1 conv to 1280 → global average
pool → dropout → linear. All convs are followed by BatchNorm and ReLU6, except the linear projections.
Module names are torchvision's (``features``, ``classifier``), so its state dicts have the same keys.
"""

from __future__ import annotations

import torch
from torch import nn

from aicompute.checks import positive_number
from aicompute.models.registry import register_model
from aicompute.nn.light_blocks import ConvNormAct, InvertedResidual, init_conv_norm_, make_divisible
from aicompute.nn.shapes import as_hw, check_classifier_args, check_image_batch

__all__ = ["MobileNetV2", "mobilenet_v2", "MOBILENET_V2_SETTING"]

MOBILENET_V2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    # t (expansion), c (output channels), n (blocks), s (stride of the first block)
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier; ``width_mult`` scales every width, rounded to a multiple of 8.

    The last conv keeps 1280 channels for ``width_mult <= 1`` (the paper's rule) and grows above it. Any
    input of at least 1×1 pixels works (the network reduces H and W by 32 before global pooling);
    ``image_size`` records the resolution the model is meant for.
    """

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
        channels = make_divisible(32 * width_mult, 8)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), 8)
        features: list[nn.Module] = [ConvNormAct(in_channels, channels, 3, 2, activation=nn.ReLU6)]
        for t, c, n, s in MOBILENET_V2_SETTING:
            out = make_divisible(c * width_mult, 8)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        features.append(ConvNormAct(channels, self.last_channel, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))

        init_conv_norm_(self)
        head = self.classifier[1]
        nn.init.normal_(head.weight, 0.0, 0.01)
        nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, "mobilenet_v2")
        x = self.features(x)  # (N, last_channel, H/32, W/32)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)  # (N, last_channel)
        return self.classifier(x)


@register_model("mobilenet_v2", family="image", input_shape=(3, 224, 224))
def mobilenet_v2(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: int | tuple[int, int] = 224,
    *,
    width_mult: float = 1.0,
    dropout: float = 0.2,
) -> MobileNetV2:
    """MobileNetV2 (inverted residuals, linear bottlenecks); 3.5M params, torchvision layout."""
    return MobileNetV2(num_classes, in_channels, image_size, width_mult=width_mult, dropout=dropout)
