"""Lightweight convolution blocks: the designs behind MobileNet, EfficientNet and GhostNet.

Each block trades a dense k×k convolution for cheaper pieces:

* :class:`DepthwiseSeparableConv` — a depthwise k×k conv (``groups=C_in``: one filter per channel) then a
  pointwise 1×1 conv. Weights ``k²·C_in + C_in·C_out`` instead of ``k²·C_in·C_out``; the cost ratio (params
  and MACs alike) is ``1/C_out + 1/k²``.
* :class:`InvertedResidual` — MobileNetV2: expand 1×1 (×t), depthwise 3×3, *linear* 1×1 projection (no
  activation after it), with an identity shortcut when stride is 1 and ``C_in == C_out``.
* :class:`SqueezeExcitation` — global average pool, 1×1 reduce, activation, 1×1 expand, gate in (0, 1);
  the input is rescaled channel by channel: ``y = x · gate(x)``.
* :class:`MBConv` — EfficientNet: an inverted residual with SiLU, squeeze-and-excitation and
  :class:`StochasticDepth` on the residual branch.
* :class:`GhostModule` — GhostNet: a primary conv makes ``m = ceil(C_out / s)`` "intrinsic" maps, a cheap
  depthwise d×d conv makes ``(s − 1)·m`` "ghost" maps from them, the two are concatenated and cut to
  ``C_out``. For ratio ``s`` it holds about ``1/s`` of a standard conv's weights.
* :class:`GhostBottleneck` — two ghost modules (expand, then linear project) around an optional stride-2
  depthwise conv and SE, with an identity or depthwise-separable shortcut.

Conventions: tensors are NCHW; every block has ``in_channels`` / ``out_channels`` attributes; convolutions
followed by a norm layer carry no bias; "same" padding ``(k − 1) // 2`` (:func:`aicompute.nn.shapes.same_padding`)
so stride 1 keeps H×W and stride 2 gives ``ceil(H / 2)``. Activations are not in-place, so forward hooks
(profiling, quantization observers) see each module's real output. Module names follow torchvision's
(``conv``, ``block``, ``fc1``/``fc2``) and the official GhostNet code's (``primary_conv``, ``cheap_operation``,
``ghost1``/``ghost2``, ``shortcut``) so that layouts can be compared key by key.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from aicompute.checks import positive_int, probability
from aicompute.errors import AicomputeError
from aicompute.nn.shapes import same_padding

__all__ = [
    "make_divisible",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "InvertedResidual",
    "SqueezeExcitation",
    "stochastic_depth",
    "StochasticDepth",
    "MBConv",
    "GhostModule",
    "GhostBottleneck",
    "init_conv_norm_",
]

ModuleFactory = Callable[..., nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never dropping more than 10 %.

    The rule of the TensorFlow MobileNet code, shared by torchvision and the official GhostNet code:
    round half up to a multiple of ``divisor`` (at least ``min_value``, default ``divisor``); if that lost
    more than 10 % of ``value``, add one more ``divisor``.
    """
    positive_int("divisor", divisor)
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _check_stride(stride: int, block: str) -> None:
    if stride not in (1, 2):
        raise AicomputeError(f"{block} takes stride 1 or 2, got {stride}")


def _depthwise_conv(channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    """A bare depthwise k×k conv: one filter per channel (``groups=channels``), "same" padding, no bias."""
    return nn.Conv2d(channels, channels, kernel_size, stride, same_padding(kernel_size), groups=channels, bias=False)


class ConvNormAct(nn.Sequential):
    """``Conv2d`` (no bias, "same" padding) → norm → optional activation; torchvision's Conv2dNormActivation.

    Children are ``0`` (conv), ``1`` (norm) and, when ``activation`` is given, ``2`` — numbered, unlike
    :class:`aicompute.nn.conv_blocks.ConvBlock`'s named children, so the mobile nets' state-dict keys are
    torchvision's. The activation is any module factory (ReLU6, SiLU, ...).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        groups: int = 1,
        activation: ModuleFactory | None = nn.ReLU,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, same_padding(kernel_size), groups=groups, bias=False
            ),
            norm_layer(out_channels),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels


class DepthwiseSeparableConv(nn.Module):
    """A k×k convolution factored into depthwise k×k (``groups=C_in``) and pointwise 1×1.

    ``norm_act=True`` puts BatchNorm + ``activation`` after each of the two convs (the MobileNetV1 block);
    ``norm_act=False`` keeps only the two bias-free convs — the bare factorization, whose weights are exactly
    ``k²·C_in + C_in·C_out`` and whose MACs per output pixel are ``k²·C_in + C_in·C_out``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        norm_act: bool = True,
        activation: ModuleFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        _check_stride(stride, "DepthwiseSeparableConv")
        self.in_channels, self.out_channels = in_channels, out_channels
        if norm_act:
            self.depthwise = ConvNormAct(
                in_channels, in_channels, kernel_size, stride, groups=in_channels, activation=activation
            )
            self.pointwise = ConvNormAct(in_channels, out_channels, 1, activation=activation)
        else:
            self.depthwise = _depthwise_conv(in_channels, kernel_size, stride)
            self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand to ``round(C_in·t)`` (skipped when t = 1), depthwise k×k, linear 1×1.

    The projection has no activation ("linear bottleneck": ReLU on a thin tensor destroys information). The
    identity shortcut is used when ``stride == 1 and in_channels == out_channels``. ``self.conv`` is laid out
    as torchvision's, so its state-dict keys match.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        *,
        kernel_size: int = 3,
        activation: ModuleFactory = nn.ReLU6,
    ) -> None:
        super().__init__()
        _check_stride(stride, "InvertedResidual")
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_channels, hidden, 1, activation=activation))
        layers += [
            ConvNormAct(hidden, hidden, kernel_size, stride, groups=hidden, activation=activation),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class SqueezeExcitation(nn.Module):
    """Channel attention: ``y = x · gate(fc2(act(fc1(avgpool(x)))))``, one gate value per (sample, channel).

    ``fc1``/``fc2`` are 1×1 convs with bias (``C → squeeze_channels → C``). The gate is ``nn.Sigmoid`` by
    default (values in (0, 1)); GhostNet uses ``nn.Hardsigmoid`` (``relu6(x + 3) / 6``, in [0, 1]).
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        *,
        activation: ModuleFactory = nn.ReLU,
        gate: ModuleFactory = nn.Sigmoid,
    ) -> None:
        super().__init__()
        positive_int("squeeze_channels", squeeze_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = activation()
        self.scale_activation = gate()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel scale, shape (N, C, 1, 1)."""
        s = self.avgpool(x)  # (N, C, 1, 1)
        return self.scale_activation(self.fc2(self.activation(self.fc1(s))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def stochastic_depth(x: torch.Tensor, p: float, *, training: bool = True) -> torch.Tensor:
    """Drop each sample's residual branch with probability ``p`` ("row" mode, Huang et al. 2016).

    In training every sample (row of the batch) is kept with probability ``1 − p`` and then scaled by
    ``1 / (1 − p)`` so the expectation is unchanged; in evaluation, or when ``p == 0``, ``x`` is returned.
    """
    probability("stochastic depth p", p, allow_one=True)
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)  # (N, 1, 1, 1)
    keep.bernoulli_(survival)
    if survival > 0.0:
        keep.div_(survival)
    return x * keep


class StochasticDepth(nn.Module):
    """Module form of :func:`stochastic_depth`; active only in training mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        probability("stochastic depth p", p, allow_one=True)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stochastic_depth(x, self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(nn.Module):
    """EfficientNet's mobile inverted bottleneck (torchvision layout).

    ``block`` = [1×1 expand to ``make_divisible(C_in·t, 8)`` (skipped when that equals C_in)], depthwise
    k×k, squeeze-and-excitation with ``max(1, int(C_in · se_ratio))`` squeeze channels (a fraction of the
    block *input*, not of the expanded width; ``se_ratio=0`` drops SE), linear 1×1 projection. All
    activations are SiLU by default. With the identity shortcut (stride 1, C_in == C_out) the branch goes
    through :class:`StochasticDepth` before the addition.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: float,
        *,
        se_ratio: float = 0.25,
        stochastic_depth_prob: float = 0.0,
        activation: ModuleFactory = nn.SiLU,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        _check_stride(stride, "MBConv")
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = make_divisible(in_channels * expand_ratio, 8)
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvNormAct(in_channels, expanded, 1, activation=activation, norm_layer=norm_layer))
        layers.append(
            ConvNormAct(
                expanded, expanded, kernel_size, stride, groups=expanded, activation=activation, norm_layer=norm_layer
            )
        )
        if se_ratio > 0:
            squeeze = max(1, int(in_channels * se_ratio))
            layers.append(SqueezeExcitation(expanded, squeeze, activation=activation))
        layers.append(ConvNormAct(expanded, out_channels, 1, activation=None, norm_layer=norm_layer))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


class GhostModule(nn.Module):
    """GhostNet's replacement for a conv: few intrinsic maps from a real conv, the rest from cheap ops.

    ``primary_conv``: k×k conv ``C_in → m`` with ``m = ceil(C_out / ratio)``; ``cheap_operation``: depthwise
    d×d conv ``m → (ratio − 1)·m`` (each intrinsic map yields ``ratio − 1`` ghosts); both with BN and, when
    ``relu``, ReLU. Output: ``cat(intrinsic, ghosts)[:, :C_out]``. Conv weights:
    ``k²·C_in·m + d²·(ratio − 1)·m`` against ``k²·C_in·C_out`` for the plain conv — about ``1/ratio``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        stride: int = 1,
        *,
        relu: bool = True,
    ) -> None:
        super().__init__()
        if ratio < 2:
            raise AicomputeError(f"GhostModule needs ratio >= 2 (1 would be a plain conv), got {ratio}")
        self.in_channels, self.out_channels = in_channels, out_channels
        intrinsic = math.ceil(out_channels / ratio)
        ghosts = intrinsic * (ratio - 1)

        def act() -> nn.Module:
            return nn.ReLU() if relu else nn.Identity()

        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_channels, intrinsic, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(intrinsic),
            act(),
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(intrinsic, ghosts, dw_size, 1, dw_size // 2, groups=intrinsic, bias=False),
            nn.BatchNorm2d(ghosts),
            act(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        intrinsic = self.primary_conv(x)  # (N, m, H', W')
        ghosts = self.cheap_operation(intrinsic)  # (N, (ratio-1)·m, H', W')
        return torch.cat([intrinsic, ghosts], dim=1)[:, : self.out_channels]  # (N, C_out, H', W')


class GhostBottleneck(nn.Module):
    """GhostNet's bottleneck (official layout).

    ``ghost1`` (expand to ``mid_channels``, ReLU) → [depthwise ``dw_kernel_size`` conv + BN when stride 2]
    → [SE with ``make_divisible(mid·se_ratio, 4)`` squeeze channels and a hard-sigmoid gate, when
    ``se_ratio > 0``] → ``ghost2`` (project to ``out_channels``, no activation); plus a shortcut: identity
    when stride 1 and ``C_in == C_out``, else depthwise k×k + BN + 1×1 + BN.
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        dw_kernel_size: int = 3,
        stride: int = 1,
        *,
        se_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        _check_stride(stride, "GhostBottleneck")
        self.ghost1 = GhostModule(in_channels, mid_channels, relu=True)
        self.conv_dw: nn.Conv2d | None = None
        self.bn_dw: nn.BatchNorm2d | None = None
        if stride > 1:
            self.conv_dw = _depthwise_conv(mid_channels, dw_kernel_size, stride)
            self.bn_dw = nn.BatchNorm2d(mid_channels)
        self.se: SqueezeExcitation | None = None
        if se_ratio > 0:
            squeeze = make_divisible(mid_channels * se_ratio, 4)
            self.se = SqueezeExcitation(mid_channels, squeeze, activation=nn.ReLU, gate=nn.Hardsigmoid)
        self.ghost2 = GhostModule(mid_channels, out_channels, relu=False)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                _depthwise_conv(in_channels, dw_kernel_size, stride),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ghost1(x)
        if self.conv_dw is not None and self.bn_dw is not None:
            out = self.bn_dw(self.conv_dw(out))
        if self.se is not None:
            out = self.se(out)
        return self.ghost2(out) + self.shortcut(x)


def init_conv_norm_(module: nn.Module) -> nn.Module:
    """torchvision's initialization of the conv and norm layers under ``module``, in place.

    Conv weights: Kaiming normal with ``mode="fan_out"``, biases zero; BatchNorm / GroupNorm: weight one,
    bias zero. Linear layers are left to the caller (MobileNetV2 and EfficientNet differ). Works on meta
    tensors (the init ops are no-ops there). Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module
