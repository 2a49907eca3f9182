"""Classic convolution blocks: residual, Inception, dense, factorized, stacked-small-kernel and group conv.

These are the blocks the seed text uses to explain how CNN families grew and how a layer is made cheaper
without changing what it sees: a residual shortcut (ResNet), parallel multi-scale branches with 1×1
reductions (GoogLeNet), dense feature reuse (DenseNet), stacked 3×3s in place of one large kernel (VGG),
1×n followed by n×1 (Inception v3) and grouped convolution.

Conventions:

* Tensors are NCHW. Every block exposes ``in_channels`` and ``out_channels`` attributes, so a network
  can be assembled by chaining ``block.out_channels`` into the next block.
* Parameter counts follow ``nn.Conv2d``: a ``k_h×k_w`` convolution from ``M`` to ``N`` channels in ``g``
  groups holds ``k_h·k_w·(M/g)·N`` weights plus ``N`` biases (biases only without batch norm, whose
  shift makes a bias redundant). Batch norm adds ``2·N`` (γ, β); its running statistics are buffers.
* "Same" padding is the default: ``(k - 1) // 2`` per spatial dimension
  (:func:`aicompute.nn.shapes.same_padding`), so stride 1 keeps H×W.
* Module and attribute names follow torchvision's (``conv1``/``bn1``/``downsample`` in residual blocks,
  ``branch1``…``branch4`` in Inception, ``denselayerN`` / ``norm1``… in DenseNet), so state dicts line up.
* Weights get PyTorch's default initialisation here; a network applies its own scheme
  (see ``aicompute.models``).

Networks size these blocks' feature maps with the helpers in :mod:`aicompute.nn.shapes`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.nn.shapes import IntOrPair, same_padding

__all__ = [
    "ConvBlock", "GroupConv", "BasicBlock", "Bottleneck", "InceptionNaive", "Inception",
    "DenseLayer", "DenseBlock", "Transition", "FactorizedConv", "StackedConv", "ReducedConv",
]  # fmt: skip


# --- Conv → (BN) → ReLU, and grouped convolution -------------------------------------------------


class ConvBlock(nn.Sequential):
    """Convolution, then batch norm (optional), then ReLU: children ``conv``, ``bn``, ``relu``.

    With ``batch_norm=True`` the convolution has no bias (BN's β replaces it): params
    ``k_h·k_w·(M/g)·N + 2N``; without, ``k_h·k_w·(M/g)·N + N``. ``relu=False`` drops the activation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 3,
        stride: IntOrPair = 1,
        padding: IntOrPair | None = None,
        groups: int = 1,
        *,
        batch_norm: bool = True,
        relu: bool = True,
        bn_eps: float = 1e-5,
    ) -> None:
        if in_channels % groups or out_channels % groups:
            raise AicomputeError(
                f"a grouped convolution needs in_channels ({in_channels}) and out_channels ({out_channels}) "
                f"divisible by groups ({groups}); pick groups among their common divisors"
            )
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=same_padding(kernel_size) if padding is None else padding,
                groups=groups,
                bias=not batch_norm,
            )
        }
        if batch_norm:
            layers["bn"] = nn.BatchNorm2d(out_channels, eps=bn_eps)
        if relu:
            layers["relu"] = nn.ReLU()
        super().__init__(OrderedDict(layers))
        self.in_channels = in_channels
        self.out_channels = out_channels


class GroupConv(ConvBlock):
    """Grouped convolution block (AlexNet's two-GPU split, ResNeXt): ``groups`` independent convolutions.

    The ``M`` input channels are split into ``g`` groups of ``M/g``; each group is convolved only with
    its own ``N/g`` filters, and the results are concatenated. The weight count is that of the standard
    convolution divided by ``g``: ``k²·M·N / g``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 3,
        groups: int = 2,
        stride: IntOrPair = 1,
        *,
        batch_norm: bool = True,
        relu: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, groups=groups, batch_norm=batch_norm, relu=relu
        )
        self.groups = groups


# --- Residual blocks (ResNet) --------------------------------------------------------------------


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """The shortcut's 1×1 conv + BN when the residual branch changes shape, else ``None`` (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class BasicBlock(nn.Module):
    """ResNet-18/34 residual block: ``ReLU(BN(conv3×3(ReLU(BN(conv3×3(x))))) + shortcut(x))``.

    ``out_channels = planes`` (expansion 1). The first 3×3 carries ``stride``; the shortcut is the
    identity when the shape is kept, otherwise a strided 1×1 conv + BN (``downsample``).
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _projection(in_channels, self.out_channels, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet-50+ bottleneck: 1×1 reduce → 3×3 → 1×1 expand (×4), plus the shortcut; ReLU after the sum.

    torchvision's "ResNet v1.5" layout: the stride sits on the 3×3 (the original paper put it on the
    first 1×1). ``width = planes · base_width/64 · groups`` is the inner width (``groups > 1`` gives
    ResNeXt); ``out_channels = planes · 4``.
    """

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, *, groups: int = 1, base_width: int = 64
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.in_channels, self.out_channels = in_channels, planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, self.out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.out_channels)
        self.relu = nn.ReLU()
        self.downsample = _projection(in_channels, self.out_channels, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# --- Inception (GoogLeNet) -----------------------------------------------------------------------


class InceptionNaive(nn.Module):
    """Inception v1, naive form: parallel 1×1, 3×3, 5×5 convs and a 3×3 max-pool, concatenated.

    Every branch keeps H×W (stride 1, same padding), so they stack along channels:
    ``out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels`` (the pool passes all input channels through,
    which is what makes this form grow so fast). Convs have a bias and ReLU, no BN (as in 2014).
    """

    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int, *, batch_norm: bool = False
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels
        self.branch1 = ConvBlock(in_channels, ch1x1, 1, batch_norm=batch_norm)
        self.branch2 = ConvBlock(in_channels, ch3x3, 3, batch_norm=batch_norm)
        self.branch3 = ConvBlock(in_channels, ch5x5, 5, batch_norm=batch_norm)
        self.branch4 = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([b(x) for b in branches], dim=1)  # (B, out_channels, H, W)


class Inception(nn.Module):
    """GoogLeNet's Inception module: 1×1 reductions before the 3×3 and 5×5, a 1×1 projection after the pool.

    ``out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj``. Each conv is ``ConvBlock`` (conv without
    bias → BN → ReLU, BN ε = 1e-3 as torchvision's GoogLeNet). ``branch3_kernel_size`` is the large
    kernel of the third branch: 5 in the paper; torchvision's GoogLeNet uses 3 there (a known quirk
    kept for its pretrained weights), which is what its published parameter count assumes.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        branch3_kernel_size: int = 5,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        if branch3_kernel_size < 1 or branch3_kernel_size % 2 == 0:
            raise AicomputeError(
                f"branch3_kernel_size must be odd (5 as in the paper, 3 as torchvision), got {branch3_kernel_size}"
            )
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = ConvBlock(in_channels, ch1x1, 1, bn_eps=bn_eps)
        self.branch2 = nn.Sequential(
            ConvBlock(in_channels, ch3x3red, 1, bn_eps=bn_eps), ConvBlock(ch3x3red, ch3x3, 3, bn_eps=bn_eps)
        )
        self.branch3 = nn.Sequential(
            ConvBlock(in_channels, ch5x5red, 1, bn_eps=bn_eps),
            ConvBlock(ch5x5red, ch5x5, branch3_kernel_size, bn_eps=bn_eps),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            ConvBlock(in_channels, pool_proj, 1, bn_eps=bn_eps),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([b(x) for b in branches], dim=1)  # (B, out_channels, H, W)


# --- Dense connectivity (DenseNet) ---------------------------------------------------------------


class DenseLayer(nn.Module):
    """DenseNet-B layer: BN → ReLU → 1×1 conv (``bn_size·k``) → BN → ReLU → 3×3 conv (``k = growth_rate``).

    Takes the concatenation of all earlier feature maps and returns only the ``growth_rate`` new ones.
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0) -> None:
        super().__init__()
        inner = bn_size * growth_rate
        self.in_channels, self.out_channels = in_channels, growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(inner, growth_rate, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))
        out = self.conv2(self.relu2(self.norm2(out)))
        return self.dropout(out)  # (B, growth_rate, H, W)


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers, each fed the concatenation of the block input and all earlier outputs.

    ``out_channels = in_channels + num_layers · growth_rate``; the first ``in_channels`` output
    channels are the input itself (feature reuse). Children are named ``denselayer1``….
    """

    def __init__(
        self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)
        self.in_channels = in_channels
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features, dim=1)  # (B, in_channels + num_layers·growth_rate, H, W)


class Transition(nn.Sequential):
    """Between dense blocks: BN → ReLU → 1×1 conv (compresses channels) → 2×2 average pool (halves H×W).

    ``pool=False`` keeps the spatial size (used when the map is already 1×1 on a small input).
    """

    def __init__(self, in_channels: int, out_channels: int, *, pool: bool = True) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_channels))
        self.add_module("relu", nn.ReLU())
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(2, stride=2) if pool else nn.Identity())
        self.in_channels, self.out_channels = in_channels, out_channels


# --- Cheaper equivalents of one large convolution ------------------------------------------------


class FactorizedConv(nn.Sequential):
    """A ``1×n`` conv followed by an ``n×1`` conv (Inception v3): the same n×n receptive field.

    Weights: ``n·M·K + n·K·N`` (``K = mid_channels``, default ``N``) instead of ``n²·M·N``; with
    ``M = K = N`` that is ``2n`` against ``n²`` per channel pair. Each conv is a :class:`ConvBlock`
    (ReLU after each; BN optional).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        mid_channels: int | None = None,
        batch_norm: bool = False,
    ) -> None:
        mid = out_channels if mid_channels is None else mid_channels
        super().__init__(
            ConvBlock(in_channels, mid, (1, kernel_size), batch_norm=batch_norm),
            ConvBlock(mid, out_channels, (kernel_size, 1), batch_norm=batch_norm),
        )
        self.in_channels, self.out_channels = in_channels, out_channels


class StackedConv(nn.Sequential):
    """``(receptive_field − 1) / 2`` stacked 3×3 convs (VGG): two for a 5×5 view, three for 7×7.

    Each 3×3 widens the view by 2, so ``L`` layers see ``(2L + 1)×(2L + 1)`` input pixels. The first
    conv maps ``M → N`` channels, the rest ``N → N``; with bias, ``(9M + 1)·N + (L − 1)·(9N + 1)·N``
    parameters against ``(r²·M + 1)·N`` for one ``r×r`` conv.
    """

    def __init__(
        self, in_channels: int, out_channels: int, receptive_field: int = 5, *, batch_norm: bool = False
    ) -> None:
        if receptive_field < 3 or receptive_field % 2 == 0:
            raise AicomputeError(
                f"receptive_field must be an odd number ≥ 3 (3×3 convs grow the view 3, 5, 7, …), "
                f"got {receptive_field}"
            )
        num_layers = (receptive_field - 1) // 2
        channels = [in_channels] + [out_channels] * num_layers
        super().__init__(
            *[ConvBlock(channels[i], channels[i + 1], 3, batch_norm=batch_norm) for i in range(num_layers)]
        )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.receptive_field = receptive_field


class ReducedConv(nn.Sequential):
    """A 1×1 conv down to ``reduce_channels`` (K < M) before the ``k×k`` conv (GoogLeNet's reduction).

    Weights: ``1·1·M·K + k²·K·N`` against ``k²·M·N`` for the k×k alone. The seed text writes the
    totals as ``(1×1+1)·M·K + (3×3+1)·K·N``, one bias per kernel; ``nn.Conv2d`` has one bias per
    output channel, so the exact totals here are ``(M + 1)·K + (k²·K + 1)·N`` against ``(k²·M + 1)·N``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        reduce_channels: int,
        kernel_size: int = 3,
        *,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(
            ConvBlock(in_channels, reduce_channels, 1, batch_norm=batch_norm),
            ConvBlock(reduce_channels, out_channels, kernel_size, batch_norm=batch_norm),
        )
        self.in_channels, self.out_channels = in_channels, out_channels
