"""Binarized layers: BNN (sign + straight-through estimator) and XNOR-Net scaling.

Conventions:

* **sign(0) = +1.** :func:`sign_ste` maps ``x ≥ 0`` to +1 and ``x < 0`` to −1 (a true 1-bit code has no 0);
  NaN stays NaN so a broken input is not hidden.
* **Straight-through estimator** (BNN, Courbariaux, Hubara et al. 2016): sign has zero gradient almost
  everywhere, so the backward pass treats it as ``hardtanh``: ``∂L/∂x = ∂L/∂y · 1{|x| ≤ 1}``. The same STE
  binarizes weights and activations. The real-valued ("latent") weights are what the optimizer updates;
  :func:`clip_binary_weights_` clips them to [−1, 1] after a step, as the BNN paper does, since outside that
  interval the STE passes no gradient.
* **XNOR-Net scaling** (Rastegari et al. 2016), ``xnor=True``: each output channel's binary filter is scaled
  by ``α_c = mean |W_c|`` (over in-channels × kernel, or over in-features), the value that minimises
  ``‖W_c − α_c·sign(W_c)‖²``. The layer computes with ``α_c·sign(W_c)``. α stays in the autograd graph, so
  the weight gradient is the exact chain rule of ``α·sign_ste(W)``; the paper's per-element formula
  ``g·(1/n + α·1{|W| ≤ 1})`` is an approximation of the same expression. ``xnor`` with a float input is
  the paper's Binary-Weight-Network; with ``binarize_input`` as well it is XNOR-Net.
* **Activation scale K** (XNOR-Net's full "XNOR" layer), ``input_scale=True`` (needs ``binarize_input``):
  ``A = mean_c |I|`` over the input channels (of each group), ``K = A ⊛ k`` with ``k`` the ``kh×kw`` box filter
  ``1/(kh·kw)``, slid with the layer's stride, padding and dilation; the output is
  ``(sign(I) ⊛ sign(W)) ⊙ K ⊙ α + bias``. For a linear layer K is one number per sample, ``β = mean |x|``.
* **Padding** of a binarized input adds zeros (a third value), as most BNN code does; the bias is float.

:func:`binarize_model` copies a model and swaps its inner ``nn.Linear`` / ``nn.Conv2d`` layers for the binary
ones. As is customary (BNN, XNOR-Net), the first and last such layers stay in full precision: the first sees
raw pixels and the last produces the logits; both hold few of the weights and binarizing them costs the most
accuracy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aicompute.errors import AicomputeError

__all__ = [
    "sign_ste",
    "BinaryActivation",
    "BinaryLinear",
    "BinaryConv2d",
    "BinarizedModel",
    "binarize_model",
    "clip_binary_weights_",
]


class _SignSTE(torch.autograd.Function):
    """``sign`` with sign(0) = +1 forward; hardtanh straight-through backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        one = torch.ones((), dtype=x.dtype, device=x.device)
        return torch.where(x < 0, -one, torch.where(x >= 0, one, x))  # NaN fails both tests: stays NaN

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad_out * (x.abs() <= 1).to(grad_out.dtype)


def sign_ste(x: Tensor) -> Tensor:
    """±1 with sign(0) = +1; gradient ``grad · 1{|x| ≤ 1}`` (the BNN straight-through estimator)."""
    return _SignSTE.apply(x)


class BinaryActivation(nn.Module):
    """``sign_ste`` as a module: the binary activation of a BNN (outputs ±1)."""

    def forward(self, x: Tensor) -> Tensor:
        return sign_ste(x)


def _check_options(binarize_input: bool, input_scale: bool) -> None:
    if input_scale and not binarize_input:
        raise AicomputeError(
            "input_scale=True scales a binarized input by its mean |x| (XNOR-Net's K); it needs "
            "binarize_input=True, or leave input_scale=False"
        )


def _binary_weight(weight: Tensor, xnor: bool) -> Tensor:
    """``sign(W)``, or ``α_c·sign(W_c)`` with ``α_c = mean |W_c|`` per output channel (dim 0) when ``xnor``."""
    signs = sign_ste(weight)
    if not xnor:
        return signs
    alpha = weight.abs().flatten(1).mean(dim=1)  # (C_out,)
    return signs * alpha.reshape(-1, *([1] * (weight.dim() - 1)))


def _options_repr(binarize_input: bool, xnor: bool, input_scale: bool) -> str:
    return f"binarize_input={binarize_input}, xnor={xnor}, input_scale={input_scale}"


class BinaryLinear(nn.Linear):
    """``nn.Linear`` with binarized weights: ``y = x̂ · Ŵᵀ + b``.

    ``Ŵ = sign(W)`` (BNN) or ``α_c·sign(W_c)`` (``xnor=True``); ``x̂ = x`` or ``sign(x)`` (``binarize_input``),
    times ``β = mean |x|`` per sample when ``input_scale``. Parameters (names, shapes) are those of
    ``nn.Linear``, so a float state dict loads as is.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        binarize_input: bool = False,
        xnor: bool = False,
        input_scale: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_options(binarize_input, input_scale)
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.binarize_input, self.xnor, self.input_scale = binarize_input, xnor, input_scale

    @classmethod
    def from_float(cls, linear: nn.Linear, **options: bool) -> BinaryLinear:
        """A binary copy of ``linear`` (weights and bias copied) with the given options."""
        w = linear.weight
        new = cls(linear.in_features, linear.out_features, linear.bias is not None, device=w.device,
                  dtype=w.dtype, **options)  # fmt: skip
        _copy_parameters(linear, new)
        return new

    def binary_weight(self) -> Tensor:
        """The weight the layer computes with: ``sign(W)`` or ``α·sign(W)``."""
        return _binary_weight(self.weight, self.xnor)

    def forward(self, x: Tensor) -> Tensor:
        if not self.binarize_input:
            return F.linear(x, self.binary_weight(), self.bias)
        y = F.linear(sign_ste(x), self.binary_weight())
        if self.input_scale:
            y = y * x.abs().mean(dim=-1, keepdim=True)  # β per sample: (..., 1)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {_options_repr(self.binarize_input, self.xnor, self.input_scale)}"


class BinaryConv2d(nn.Conv2d):
    """``nn.Conv2d`` with binarized weights: ``y = x̂ ⊛ Ŵ + b`` (see the module docstring for the options).

    Every ``nn.Conv2d`` argument (stride, padding incl. ``"same"``, dilation, groups, padding_mode) works as
    in torch, and the parameters are those of ``nn.Conv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        binarize_input: bool = False,
        xnor: bool = False,
        input_scale: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_options(binarize_input, input_scale)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)  # fmt: skip
        self.binarize_input, self.xnor, self.input_scale = binarize_input, xnor, input_scale

    @classmethod
    def from_float(cls, conv: nn.Conv2d, **options: bool) -> BinaryConv2d:
        """A binary copy of ``conv`` (same geometry; weights and bias copied) with the given options."""
        w = conv.weight
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                  conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode, device=w.device,
                  dtype=w.dtype, **options)  # fmt: skip
        _copy_parameters(conv, new)
        return new

    def binary_weight(self) -> Tensor:
        """The weight the layer computes with: ``sign(W)`` or ``α_c·sign(W_c)``."""
        return _binary_weight(self.weight, self.xnor)

    def activation_scale(self, x: Tensor) -> Tensor:
        """XNOR-Net's ``K``: the per-group channel mean of |x| box-filtered over each window, ``(N, C_out, H', W')``."""
        n, c, h, w = x.shape
        g = self.groups
        a = x.abs().reshape(n, g, c // g, h, w).mean(dim=2)  # A per group: (N, G, H, W)
        kh, kw = self.kernel_size
        box = torch.full((g, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
        k = self._conv_forward(a, box, None)  # same padding / stride / dilation, groups=G: (N, G, H', W')
        return k.repeat_interleave(self.out_channels // g, dim=1)  # group g → its output channels

    def forward(self, x: Tensor) -> Tensor:
        if not self.binarize_input:
            return self._conv_forward(x, self.binary_weight(), self.bias)
        y = self._conv_forward(sign_ste(x), self.binary_weight(), None)
        if self.input_scale:
            y = y * self.activation_scale(x)
        return y if self.bias is None else y + self.bias.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {_options_repr(self.binarize_input, self.xnor, self.input_scale)}"


def _copy_parameters(src: nn.Module, dst: nn.Module) -> None:
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        if src.bias is not None:
            dst.bias.copy_(src.bias)
    dst.train(src.training)


@dataclass(frozen=True, eq=False)
class BinarizedModel:
    """What :func:`binarize_model` did: the new model and which layers it binarized or kept in float."""

    model: nn.Module
    binarized: list[str]
    """Qualified names of the layers swapped for binary ones, in registration order."""
    kept_float: list[str]
    """Qualified names of the ``Linear`` / ``Conv2d`` layers left in full precision (first and last)."""
    options: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record (without the model)."""
        return {"binarized": list(self.binarized), "kept_float": list(self.kept_float), "options": dict(self.options)}


_FLOAT_TO_BINARY: dict[type[nn.Module], Any] = {nn.Linear: BinaryLinear, nn.Conv2d: BinaryConv2d}


def binarize_model(
    model: nn.Module,
    keep_first_last: bool = True,
    *,
    binarize_input: bool = False,
    xnor: bool = False,
    input_scale: bool = False,
) -> BinarizedModel:
    """A copy of ``model`` whose ``nn.Linear`` / ``nn.Conv2d`` layers compute with binary weights.

    Layers are taken in registration order (the order ``named_modules`` lists them, which is the forward
    order in the zoo's models); with ``keep_first_last`` the first and last stay float. Only modules of
    exactly those two types are swapped: subclasses (already-binary layers, the output projection inside
    ``nn.MultiheadAttention``, which that module never calls) are left alone. A layer registered under two
    names is swapped under both. ``model`` itself is not changed.

    ``binarize_input`` needs inputs that take both signs: after a ReLU every value is ≥ 0 and binarizes to
    +1, so the layer learns nothing. BNNs put ``BatchNorm → Hardtanh`` (or :class:`BinaryActivation`) before
    each binary layer instead; on a ReLU network binarize the weights only (``xnor=True`` helps there).
    """
    _check_options(binarize_input, input_scale)
    options = {"binarize_input": binarize_input, "xnor": xnor, "input_scale": input_scale}
    new_model = copy.deepcopy(model)
    layers = [(name, m) for name, m in new_model.named_modules() if type(m) in _FLOAT_TO_BINARY]
    if not layers:
        raise AicomputeError(f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer to binarize")
    if keep_first_last and len(layers) <= 2:
        raise AicomputeError(
            f"{type(model).__name__} has only {len(layers)} Linear/Conv2d layer(s), all of which keep_first_last "
            "would leave in float; pass keep_first_last=False to binarize them all"
        )
    chosen = layers[1:-1] if keep_first_last else layers
    kept = [layers[0][0], layers[-1][0]] if keep_first_last else []
    swap = {id(m): _FLOAT_TO_BINARY[type(m)].from_float(m, **options) for _, m in chosen}
    for parent in list(new_model.modules()):
        for child_name, child in list(parent._modules.items()):  # named_children() would skip repeats
            if id(child) in swap:
                setattr(parent, child_name, swap[id(child)])
    return BinarizedModel(new_model, [name for name, _ in chosen], kept, options)


@torch.no_grad()
def clip_binary_weights_(model: nn.Module, bound: float = 1.0) -> int:
    """Clip the latent weights of every binary layer in ``model`` to ``[−bound, bound]``, in place.

    Call it after each optimizer step when training a BNN (Courbariaux et al.); returns how many layers
    were clipped.
    """
    if not bound > 0:
        raise AicomputeError(f"bound must be > 0, got {bound!r}")
    layers = [m for m in model.modules() if isinstance(m, (BinaryLinear, BinaryConv2d))]
    for m in layers:
        m.weight.clamp_(-bound, bound)
    return len(layers)
