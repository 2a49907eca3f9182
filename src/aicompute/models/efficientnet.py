"""EfficientNet B0–B7 (Tan & Le, 2019) in torchvision's layout; ``efficientnet_b0`` and ``efficientnet_b4``
are registered (5,288,548 and 19,341,616 parameters at 1000 classes).

The B0 network — stem 3×3/2 conv (32) → seven stages of :class:`~aicompute.nn.light_blocks.MBConv` →
1×1 conv to 4× the last width → global average pool → dropout → linear, all with BatchNorm and SiLU — is
scaled by *compound scaling*: widths × ``width_mult`` (rounded to multiples of 8 by ``make_divisible``),
block counts × ``depth_mult`` (rounded up), and the input resolution. Stochastic depth grows linearly
with block index, from 0 at the first block to ``stochastic_depth_prob · (L − 1) / L`` at the last.
Module names are torchvision's (``features``, ``classifier``), so its state dicts have the same keys.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from aicompute.checks import positive_number, probability
from aicompute.errors import AicomputeError
from aicompute.models.registry import register_model
from aicompute.nn.light_blocks import ConvNormAct, MBConv, init_conv_norm_, make_divisible
from aicompute.nn.shapes import as_hw, check_classifier_args, check_image_batch

__all__ = [
    "EfficientNet",
    "Stage",
    "B0_STAGES",
    "VARIANTS",
    "Variant",
    "scale_stages",
    "efficientnet",
    "efficientnet_b0",
    "efficientnet_b4",
]


class Stage(NamedTuple):
    """One row of the paper's Table 1 (a stage of identical MBConv blocks)."""

    expand_ratio: int
    kernel_size: int
    stride: int
    """Stride of the stage's first block; the others use 1."""
    in_channels: int
    out_channels: int
    num_layers: int


B0_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 32, 16, 1),
    Stage(6, 3, 2, 16, 24, 2),
    Stage(6, 5, 2, 24, 40, 2),
    Stage(6, 3, 2, 40, 80, 3),
    Stage(6, 5, 1, 80, 112, 3),
    Stage(6, 5, 2, 112, 192, 4),
    Stage(6, 3, 1, 192, 320, 1),
)


class Variant(NamedTuple):
    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float


VARIANTS: dict[str, Variant] = {
    "b0": Variant(1.0, 1.0, 224, 0.2),
    "b1": Variant(1.0, 1.1, 240, 0.2),
    "b2": Variant(1.1, 1.2, 260, 0.3),
    "b3": Variant(1.2, 1.4, 300, 0.3),
    "b4": Variant(1.4, 1.8, 380, 0.4),
    "b5": Variant(1.6, 2.2, 456, 0.4),
    "b6": Variant(1.8, 2.6, 528, 0.5),
    "b7": Variant(2.0, 3.1, 600, 0.5),
}


def scale_stages(width_mult: float, depth_mult: float, stages: tuple[Stage, ...] = B0_STAGES) -> list[Stage]:
    """Compound scaling of a stage table: ``make_divisible(c · width_mult, 8)``, ``ceil(n · depth_mult)``."""
    positive_number("width_mult", width_mult)
    positive_number("depth_mult", depth_mult)
    return [
        s._replace(
            in_channels=make_divisible(s.in_channels * width_mult, 8),
            out_channels=make_divisible(s.out_channels * width_mult, 8),
            num_layers=int(math.ceil(s.num_layers * depth_mult)),
        )
        for s in stages
    ]


class EfficientNet(nn.Module):
    """An EfficientNet built from a (scaled) stage table; any input of at least 1×1 pixels works."""

    def __init__(
        self,
        stages: list[Stage],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        image_size: int | tuple[int, int] = 224,
        dropout: float = 0.2,
        stochastic_depth_prob: float = 0.2,
        norm_layer: type[nn.Module] | partial[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if not stages:
            raise AicomputeError("EfficientNet needs at least one stage")
        check_classifier_args(num_classes, in_channels, dropout)
        probability("stochastic_depth_prob", stochastic_depth_prob, allow_one=True)
        self.image_size = as_hw(image_size)
        self.in_channels = in_channels
        features: list[nn.Module] = [
            ConvNormAct(in_channels, stages[0].in_channels, 3, 2, activation=nn.SiLU, norm_layer=norm_layer)
        ]
        total_blocks = sum(s.num_layers for s in stages)
        block_id = 0
        for s in stages:
            blocks: list[nn.Module] = []
            for i in range(s.num_layers):
                blocks.append(
                    MBConv(
                        s.in_channels if i == 0 else s.out_channels,
                        s.out_channels,
                        s.kernel_size,
                        s.stride if i == 0 else 1,
                        s.expand_ratio,
                        stochastic_depth_prob=stochastic_depth_prob * block_id / total_blocks,
                        norm_layer=norm_layer,
                    )
                )
                block_id += 1
            features.append(nn.Sequential(*blocks))
        last_in = stages[-1].out_channels
        self.last_channel = 4 * last_in
        features.append(ConvNormAct(last_in, self.last_channel, 1, activation=nn.SiLU, norm_layer=norm_layer))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))

        init_conv_norm_(self)
        head = self.classifier[1]
        bound = 1.0 / math.sqrt(head.out_features)
        nn.init.uniform_(head.weight, -bound, bound)
        nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, "efficientnet")
        x = self.features(x)  # (N, last_channel, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)  # (N, last_channel)
        return self.classifier(x)


def efficientnet(
    variant: str = "b0",
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: int | tuple[int, int] | None = None,
    dropout: float | None = None,
    stochastic_depth_prob: float = 0.2,
) -> EfficientNet:
    """EfficientNet-``variant`` (b0…b7); ``image_size`` and ``dropout`` default to the variant's.

    As in torchvision, B5–B7 use BatchNorm with ``eps=1e-3, momentum=0.01`` (their weights come from
    TensorFlow); B0–B4 use PyTorch's defaults.
    """
    if variant not in VARIANTS:
        raise AicomputeError(f"unknown EfficientNet variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    v = VARIANTS[variant]
    norm: type[nn.Module] | partial[nn.Module] = nn.BatchNorm2d
    if variant in ("b5", "b6", "b7"):
        norm = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)
    return EfficientNet(
        scale_stages(v.width_mult, v.depth_mult),
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=v.resolution if image_size is None else image_size,
        dropout=v.dropout if dropout is None else dropout,
        stochastic_depth_prob=stochastic_depth_prob,
        norm_layer=norm,
    )


@register_model("efficientnet_b0", family="image", input_shape=(3, 224, 224))
def efficientnet_b0(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: int | tuple[int, int] = 224,
    *,
    dropout: float = 0.2,
    stochastic_depth_prob: float = 0.2,
) -> EfficientNet:
    """EfficientNet-B0 (MBConv + SE, compound-scaling base); 5.3M params, torchvision layout."""
    return efficientnet(
        "b0",
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        dropout=dropout,
        stochastic_depth_prob=stochastic_depth_prob,
    )


@register_model("efficientnet_b4", family="image", input_shape=(3, 380, 380))
def efficientnet_b4(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: int | tuple[int, int] = 380,
    *,
    dropout: float = 0.4,
    stochastic_depth_prob: float = 0.2,
) -> EfficientNet:
    """EfficientNet-B4 (width 1.4, depth 1.8, 380×380); 19.3M params, torchvision layout."""
    return efficientnet(
        "b4",
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        dropout=dropout,
        stochastic_depth_prob=stochastic_depth_prob,
    )
