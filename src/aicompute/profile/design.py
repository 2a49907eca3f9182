"""Lightweight-design comparisons, every figure measured by the profiler.

Each comparison builds the real modules of one design choice the seed text walks through (one 7×7 vs
three stacked 3×3, a 1×1 reduction, depthwise-separable and group convs, a ghost module, dense vs
residual connections, GRU vs LSTM), on the meta device, and profiles one forward of each with
:func:`aicompute.profile.api.profile`. Beside every measured count sits the closed form of that
design evaluated at the same sizes, so a reader can check the profiler against the algebra.

Conventions:

* **Params** are parameter elements (BN's γ and β included, running statistics excluded). The seed
  counts a bias as "+1"; convolutions here carry one bias per output channel, as ``nn.Conv2d`` does.
* **MACs** are the multiply-accumulates of conv / matmul ops (no bias adds): for a stride-1 "same"
  convolution, output positions × weights without bias. Bytes moved and intensity (FLOPs/byte) are the
  profiler's, at float32, batch 1.
* Ratios are against the first variant of a comparison (the baseline). The receptive field is given
  for designs that are a plain chain of convolutions; every comparison states whether its variants
  produce the same output shape (they are built so that they do).

The seed's table of classic CNNs, profiled from the zoo, is :mod:`aicompute.profile.cnn_table`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from aicompute.checks import positive_int
from aicompute.errors import AicomputeError
from aicompute.nn import (
    GRU, LSTM, BasicBlock, ConvBlock, ConvNormAct, DenseBlock, DepthwiseSeparableConv, FactorizedConv,
    GhostModule, ReducedConv, StackedConv, same_padding,
)  # fmt: skip
from aicompute.profile.api import profile
from aicompute.profile.result import CONVENTION

__all__ = [
    "Variant", "DesignRow", "Comparison", "DesignResult", "chain_receptive_field", "compare",
    "small_kernels", "factorized_conv", "reduction_1x1", "separable_convs", "ghost_vs_conv",
    "residual_vs_dense", "lstm_vs_gru", "design_comparisons",
]  # fmt: skip

MiB = 2**20


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One design to measure: the module (built on meta) and its closed-form params and MACs."""

    name: str
    module: nn.Module
    formula: str
    """The closed form of ``params``, written with the comparison's symbols (M, N, K, k, ...)."""
    params: int
    macs: int


@dataclass(frozen=True)
class DesignRow:
    variant: str
    params: int
    macs: int
    output_shape: tuple[int, ...]
    receptive_field: tuple[int, int] | None
    moved_bytes: int
    intensity: float
    """FLOPs per byte moved."""
    params_ratio: float
    macs_ratio: float
    formula: str
    formula_params: int
    formula_macs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant, "params": self.params, "macs": self.macs,
            "output_shape": list(self.output_shape),
            "receptive_field": list(self.receptive_field) if self.receptive_field else None,
            "moved_bytes": self.moved_bytes, "intensity_flops_per_byte": self.intensity,
            "params_ratio": self.params_ratio, "macs_ratio": self.macs_ratio, "formula": self.formula,
            "formula_params": self.formula_params, "formula_macs": self.formula_macs,
        }  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    name: str
    title: str
    setting: str
    """The sizes it was measured at, e.g. ``"M = N = 64, input 1×64×56×56"``."""
    note: str
    rows: tuple[DesignRow, ...]

    @property
    def same_output(self) -> bool:
        return len({r.output_shape for r in self.rows}) == 1

    @property
    def same_receptive_field(self) -> bool | None:
        """``None`` when the variants are not plain conv chains."""
        fields = {r.receptive_field for r in self.rows}
        return None if None in fields else len(fields) == 1

    def shared(self) -> str:
        """What the variants have in common, as measured: the output shape and (conv chains) receptive field."""
        shapes = " vs ".join("×".join(map(str, s)) for s in dict.fromkeys(r.output_shape for r in self.rows))
        text = f"every variant outputs {shapes}" if self.same_output else f"outputs differ: {shapes}"
        if self.same_receptive_field:
            h, w = self.rows[0].receptive_field
            text += f" and sees a {h}×{w} input window"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "setting": self.setting, "note": self.note,
            "same_output": self.same_output, "same_receptive_field": self.same_receptive_field,
            "rows": [r.to_dict() for r in self.rows],
        }  # fmt: skip


@dataclass(frozen=True)
class DesignResult:
    comparisons: tuple[Comparison, ...]

    COLUMNS = ("design", "variant", "params formula", "params", "MACs", "closed form", "moved (MiB)",
               "FLOPs/byte", "params ×", "MACs ×")  # fmt: skip

    def __getitem__(self, name: str) -> Comparison:
        for c in self.comparisons:
            if c.name == name:
                return c
        raise KeyError(name)

    def rows(self) -> list[tuple]:
        """One printable row per variant, in :attr:`COLUMNS` order; "closed form" is ✓ when the measured
        params and MACs both equal the closed form, else the closed-form values. Output shapes and
        receptive fields are in each comparison's :meth:`Comparison.shared`."""
        return [
            (c.title if i == 0 else "", r.variant, r.formula, r.params, r.macs, _check(r),
             r.moved_bytes / MiB, r.intensity, r.params_ratio, r.macs_ratio)
            for c in self.comparisons for i, r in enumerate(c.rows)
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "design-comparisons", "convention": CONVENTION,
                "comparisons": [c.to_dict() for c in self.comparisons]}  # fmt: skip


# --- measuring ------------------------------------------------------------------------------------


def _check(r: DesignRow) -> str:
    if (r.params, r.macs) == (r.formula_params, r.formula_macs):
        return "✓"
    return f"≠ {r.formula_params:,} / {r.formula_macs:,}"


def chain_receptive_field(module: nn.Module) -> tuple[int, int]:
    """(h, w) input window seen by one output of ``module``'s ``Conv2d`` layers applied in module order.

    Each k×k conv widens the window by ``(k − 1)·dilation·jump``, ``jump`` being the product of the
    strides before it. Only meaningful when the convs form a chain (no branches).
    """
    window, jump = [1, 1], [1, 1]
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            for d in range(2):
                window[d] += (m.kernel_size[d] - 1) * m.dilation[d] * jump[d]
                jump[d] *= m.stride[d]
    return window[0], window[1]


def _output_shape(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    with torch.no_grad():
        out = module(torch.empty(input_shape, device="meta"))
    out = out[0] if isinstance(out, tuple) else out  # recurrent layers return (output, state)
    return tuple(out.shape)


def compare(name: str, title: str, setting: str, note: str, input_shape: tuple[int, ...],
            variants: Sequence[Variant], *, chain: bool = False) -> Comparison:
    """Profile every variant on ``input_shape``; the first is the baseline of the ratios."""
    measured = [(v, profile(v.module, input_shape=input_shape)) for v in variants]
    base = measured[0][1]
    rows = tuple(
        DesignRow(
            variant=v.name, params=r.params, macs=r.macs, output_shape=_output_shape(v.module, input_shape),
            receptive_field=chain_receptive_field(v.module) if chain else None,
            moved_bytes=r.total.moved, intensity=r.total.intensity,
            params_ratio=r.params / base.params, macs_ratio=r.macs / base.macs,
            formula=v.formula, formula_params=v.params, formula_macs=v.macs,
        )
        for v, r in measured
    )  # fmt: skip
    return Comparison(name, title, setting, note, rows)


def _image(channels: int, size: int) -> tuple[int, int, int, int]:
    positive_int("channels", channels)
    positive_int("size", size)
    return 1, channels, size, size


# --- the comparisons ------------------------------------------------------------------------------


def small_kernels(receptive_field: int = 7, channels: int = 64, size: int = 56) -> Comparison:
    """One r×r conv vs ``L = (r − 1)/2`` stacked 3×3 convs (VGG), M → M channels, bias and ReLU each.

    Params ``(r·r·M + 1)·M`` vs ``L·(3·3·M + 1)·M``; with M = 1 these are the seed's ``r×r + 1`` vs
    ``L×(3×3 + 1)``. MACs are H·W times the weights without bias.
    """
    r, m, (_, _, h, w) = receptive_field, channels, _image(channels, size)
    with torch.device("meta"):
        one, stacked = ConvBlock(m, m, r, batch_norm=False), StackedConv(m, m, r)
    layers = len(stacked)
    variants = [
        Variant(f"one {r}×{r}", one, f"({r}·{r}·M + 1)·M", (r * r * m + 1) * m, h * w * r * r * m * m),
        Variant(f"{layers} × 3×3", stacked, f"{layers}·(3·3·M + 1)·M", layers * (9 * m + 1) * m,
                layers * h * w * 9 * m * m),
    ]  # fmt: skip
    note = f"the stack is {layers} layers deep, with {layers} ReLUs instead of one"
    return compare(f"{r}x{r}-vs-3x3", f"{r}×{r} vs {layers} stacked 3×3", f"M = {m}, input 1×{m}×{h}×{w}", note,
                   (1, m, h, w), variants, chain=True)  # fmt: skip


def factorized_conv(kernel_size: int = 3, channels: int = 64, size: int = 56) -> Comparison:
    """One n×n conv vs 1×n then n×1 (Inception v3): params ``(n·n·M + 1)·M`` vs ``2·(n·M + 1)·M``."""
    n, m, (_, _, h, w) = kernel_size, channels, _image(channels, size)
    with torch.device("meta"):
        square, factored = ConvBlock(m, m, n, batch_norm=False), FactorizedConv(m, m, n)
    variants = [
        Variant(f"{n}×{n}", square, f"({n}·{n}·M + 1)·M", (n * n * m + 1) * m, h * w * n * n * m * m),
        Variant(f"1×{n} + {n}×1", factored, f"2·({n}·M + 1)·M", 2 * (n * m + 1) * m, 2 * h * w * n * m * m),
    ]  # fmt: skip
    note = f"Inception v3's factorization: {2 * n} weights per channel pair instead of {n * n}"
    return compare(f"{n}x{n}-factorized", f"{n}×{n} vs 1×{n} + {n}×1", f"M = {m}, input 1×{m}×{h}×{w}", note,
                   (1, m, h, w), variants, chain=True)  # fmt: skip


def reduction_1x1(in_channels: int = 128, out_channels: int = 256, reduce_channels: int = 32,
                  kernel_size: int = 5, size: int = 28, *, bias: bool = False) -> Comparison:
    """A k×k conv M → N vs a 1×1 conv M → K then the k×k conv K → N (GoogLeNet's reduction).

    ``bias=False`` (the default: the seed's example ``128×5×5×256`` vs ``128×1×1×32 + 32×5×5×256``):
    bare convs, params ``k·k·M·N`` vs ``M·K + k·k·K·N``. ``bias=True``: :class:`~aicompute.nn.ConvBlock`
    vs :class:`~aicompute.nn.ReducedConv` (bias and ReLU after each conv), ``(k·k·M + 1)·N`` vs
    ``(M + 1)·K + (k·k·K + 1)·N``.
    """
    m, n, k_red, k = in_channels, out_channels, reduce_channels, kernel_size
    _, _, h, w = _image(m, size)
    positive_int("reduce_channels", k_red)
    with torch.device("meta"):
        if bias:
            plain, reduced = ConvBlock(m, n, k, batch_norm=False), ReducedConv(m, n, k_red, k)
        else:
            plain = nn.Conv2d(m, n, k, padding=same_padding(k), bias=False)
            reduced = nn.Sequential(nn.Conv2d(m, k_red, 1, bias=False),
                                    nn.Conv2d(k_red, n, k, padding=same_padding(k), bias=False))  # fmt: skip
    b = int(bias)
    macs_plain, macs_reduced = h * w * k * k * m * n, h * w * (m * k_red + k * k * k_red * n)
    formulas = ((f"({k}·{k}·M + 1)·N", f"(M + 1)·K + ({k}·{k}·K + 1)·N") if bias
                else (f"{k}·{k}·M·N", f"M·K + {k}·{k}·K·N"))  # fmt: skip
    variants = [
        Variant(f"{k}×{k}", plain, formulas[0], (k * k * m + b) * n, macs_plain),
        Variant(f"1×1 to K + {k}×{k}", reduced, formulas[1], (m + b) * k_red + (k * k * k_red + b) * n,
                macs_reduced),
    ]  # fmt: skip
    note = ("the seed writes (k×k + 1)·M·N, one bias per kernel; a conv has one bias per output channel"
            if bias else "bare convs without bias, as the seed counts")
    return compare(f"1x1-reduction-{k}x{k}" + ("-bias" if bias else ""), f"{k}×{k} with/without 1×1 reduction",
                   f"M = {m}, N = {n}, K = {k_red}, input 1×{m}×{h}×{w}", note, (1, m, h, w), variants,
                   chain=True)  # fmt: skip


def separable_convs(in_channels: int = 64, out_channels: int = 64, kernel_size: int = 3, groups: int = 4,
                    size: int = 56) -> Comparison:
    """Standard vs depthwise-separable vs group k×k conv, all bias-free.

    Params ``k·k·M·N`` vs ``k·k·M + M·N`` (depthwise then pointwise; ratio ``1/N + 1/k²``) vs
    ``k·k·M·N / g``.
    """
    m, n, k, g = in_channels, out_channels, kernel_size, groups
    _, _, h, w = _image(m, size)
    positive_int("out_channels", n)
    positive_int("groups", g)
    if m % g or n % g:
        raise AicomputeError(f"groups ({g}) must divide in_channels ({m}) and out_channels ({n})")
    pad = same_padding(k)
    with torch.device("meta"):
        standard = nn.Conv2d(m, n, k, padding=pad, bias=False)
        separable = DepthwiseSeparableConv(m, n, k, norm_act=False)
        grouped = nn.Conv2d(m, n, k, padding=pad, groups=g, bias=False)
    variants = [
        Variant("standard", standard, f"{k}·{k}·M·N", k * k * m * n, h * w * k * k * m * n),
        Variant("depthwise-separable", separable, f"{k}·{k}·M + M·N", k * k * m + m * n,
                h * w * (k * k * m + m * n)),
        Variant(f"group (g = {g})", grouped, f"{k}·{k}·M·N / g", k * k * m * n // g, h * w * k * k * m * n // g),
    ]  # fmt: skip
    note = "depthwise-separable / standard = 1/N + 1/k²; group / standard = 1/g"
    return compare("separable-group", f"standard vs DW-separable vs group {k}×{k}",
                   f"M = {m}, N = {n}, g = {g}, input 1×{m}×{h}×{w}", note, (1, m, h, w), variants,
                   chain=True)  # fmt: skip


def ghost_vs_conv(in_channels: int = 64, out_channels: int = 64, kernel_size: int = 1, ratio: int = 2,
                  dw_size: int = 3, size: int = 56) -> Comparison:
    """A k×k conv + BN + ReLU vs a ghost module (k×k conv to ``m = ⌈N/s⌉`` maps, depthwise d×d to the rest).

    Params ``k·k·M·N + 2N`` vs ``k·k·M·m + 2m + d·d·(s − 1)·m + 2(s − 1)·m``; the defaults are the ghost
    module as GhostNet's bottlenecks use it (1×1 primary conv, 3×3 cheap operation, s = 2).
    """
    m, n, k, s, d = in_channels, out_channels, kernel_size, ratio, dw_size
    _, _, h, w = _image(m, size)
    positive_int("out_channels", n)
    intrinsic = math.ceil(n / s)
    ghosts = (s - 1) * intrinsic
    with torch.device("meta"):
        conv, ghost = ConvNormAct(m, n, k), GhostModule(m, n, k, s, d)
    variants = [
        Variant(f"{k}×{k} conv", conv, f"{k}·{k}·M·N + 2N", k * k * m * n + 2 * n, h * w * k * k * m * n),
        Variant(f"ghost (s = {s}, d = {d})", ghost, f"{k}·{k}·M·m + {d}·{d}·(s−1)·m + 2s·m",
                k * k * m * intrinsic + d * d * ghosts + 2 * (intrinsic + ghosts),
                h * w * (k * k * m * intrinsic + d * d * ghosts)),
    ]  # fmt: skip
    note = (f"m = ⌈N/s⌉ = {intrinsic} intrinsic maps from the conv, {ghosts} ghost maps from a depthwise "
            f"{d}×{d}; both end in BN + ReLU")
    return compare("ghost", "conv vs ghost module", f"M = {m}, N = {n}, input 1×{m}×{h}×{w}", note,
                   (1, m, h, w), variants)  # fmt: skip


def _basic_block_weights(c_in: int, c_out: int) -> tuple[int, int]:
    """(params, conv weights) of a stride-1 BasicBlock: two 3×3 convs + 2 BNs (+ 1×1 projection + BN)."""
    weights = 9 * c_in * c_out + 9 * c_out * c_out + (c_in * c_out if c_in != c_out else 0)
    norms = 4 * c_out + (2 * c_out if c_in != c_out else 0)
    return weights + norms, weights


def residual_vs_dense(in_channels: int = 64, out_channels: int = 192, num_layers: int = 4,
                      size: int = 56) -> Comparison:
    """Residual blocks vs a dense block with the same input, output width and number of 3×3 convs.

    Residual: ``L/2`` ResNet basic blocks (the first ``C0 → C``, then ``C → C``), each
    ``9·Cin·C + 9·C² + 4C`` (+ ``Cin·C + 2C`` for the projection shortcut). Dense: ``L`` DenseNet-B layers of
    growth ``k = (C − C0)/L``, layer i reading ``c_i = C0 + i·k`` maps: ``(4k + 2)·c_i + 8k + 36k²``.
    """
    c0, c, layers = in_channels, out_channels, num_layers
    _, _, h, w = _image(c0, size)
    positive_int("num_layers", layers)
    if layers % 2 or c <= c0 or (c - c0) % layers:
        raise AicomputeError(
            f"residual_vs_dense needs an even num_layers (two 3×3 convs per residual block) and "
            f"out_channels − in_channels ({c} − {c0}) a positive multiple of num_layers ({layers})"
        )
    k = (c - c0) // layers
    with torch.device("meta"):
        residual = nn.Sequential(*[BasicBlock(c0 if i == 0 else c, c) for i in range(layers // 2)])
        dense = DenseBlock(layers, c0, k)
    res = [_basic_block_weights(c0 if i == 0 else c, c) for i in range(layers // 2)]
    inputs = [c0 + i * k for i in range(layers)]
    dense_weights = sum(4 * k * ci + 36 * k * k for ci in inputs)
    variants = [
        Variant(f"{layers // 2} residual blocks", residual, "Σ 9·Cin·C + 9·C² + 4C (+ Cin·C + 2C)",
                sum(p for p, _ in res), h * w * sum(wt for _, wt in res)),
        Variant(f"dense block (k = {k})", dense, "Σ (4k + 2)·c_i + 8k + 36k²",
                dense_weights + sum(2 * ci + 8 * k for ci in inputs), h * w * dense_weights),
    ]  # fmt: skip
    note = (f"same input, output width and number of 3×3 convs ({layers}); each dense layer adds only "
            f"k = {k} maps and reuses all earlier ones instead of recomputing {c}-wide features")
    return compare("residual-dense", "residual vs dense", f"C0 = {c0}, C = {c}, input 1×{c0}×{h}×{w}", note,
                   (1, c0, h, w), variants)  # fmt: skip


def lstm_vs_gru(input_size: int = 128, hidden_size: int = 128, seq_len: int = 16,
                batch_size: int = 1) -> Comparison:
    """One LSTM layer vs one GRU layer (the seed's cells, one bias per gate).

    Params ``4·(H·(H + X) + H)`` vs ``3·(H·(H + X) + H)``; MACs ``T·B·4H·(X + H)`` vs ``T·B·3H·(X + H)``.
    """
    x, hid, t, b = input_size, hidden_size, seq_len, batch_size
    for name, value in (("input_size", x), ("hidden_size", hid), ("seq_len", t), ("batch_size", b)):
        positive_int(name, value)
    with torch.device("meta"):
        lstm, gru = LSTM(x, hid), GRU(x, hid)
    per_gate = hid * (hid + x) + hid
    variants = [
        Variant("LSTM", lstm, "4·(H·(H + X) + H)", 4 * per_gate, t * b * 4 * hid * (x + hid)),
        Variant("GRU", gru, "3·(H·(H + X) + H)", 3 * per_gate, t * b * 3 * hid * (x + hid)),
    ]
    note = ("the GRU's reset and update gates replace the LSTM's three gates and cell state: 3 gate blocks "
            "instead of 4 (torch's nn.LSTM / nn.GRU keep two biases per gate: +4H / +3H)")
    return compare("lstm-gru", "LSTM vs GRU", f"X = {x}, H = {hid}, T = {t}, input {t}×{b}×{x}", note,
                   (t, b, x), variants)  # fmt: skip


def design_comparisons(channels: int = 64, size: int = 56) -> DesignResult:
    """Every comparison, the conv ones at ``channels`` on ``size × size`` maps (the 1×1 reduction also at
    the seed's GoogLeNet example: 128 → 256 channels, K = 32, 5×5, on 28×28). ``channels`` must be a
    multiple of 4 (the group conv has g = 4, the 1×1 reduction K = channels / 4)."""
    if positive_int("channels", channels) % 4:
        raise AicomputeError(f"design_comparisons needs channels divisible by 4 (group conv g = 4), got {channels}")
    return DesignResult((
        small_kernels(7, channels, size),
        small_kernels(5, channels, size),
        factorized_conv(3, channels, size),
        reduction_1x1(channels, channels, channels // 4, 3, size, bias=True),
        reduction_1x1(),
        separable_convs(channels, channels, 3, 4, size),
        ghost_vs_conv(channels, channels, size=size),
        residual_vs_dense(channels, 3 * channels, 4, size),
        lstm_vs_gru(),
    ))  # fmt: skip
