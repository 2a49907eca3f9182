"""AdderNet's adder convolution: filters compared to windows by L1 distance instead of cross-correlation.

AdderNet (Chen, Wang, Xu et al., CVPR 2020) replaces the multiplications of a convolution by additions::

    Y[n, o, i, j] = −Σ_{c, u, v} | X[n, c, i·s + u·d − p, j·s + v·d − p] − W[o, c, u, v] |

i.e. minus the L1 distance between each filter and each input window (zero padding included). The output
is never positive and its spread is large, so an adder layer is followed by batch normalisation, as in the
paper.

Gradients (the paper's, not the exact ones): the exact partial derivatives are signs, which the paper finds
too crude to train with, so

* ``∂Y/∂W = X − W`` — the full-precision difference instead of ``sign(X − W)`` (the gradient of the L2
  distance);
* ``∂Y/∂X = HardTanh(W − X)`` — the difference clipped to [−1, 1] instead of ``sign(W − X)``, so that the
  error reaching earlier layers stays bounded.

Adaptive learning rate: the paper scales each layer's filter gradient to a fixed norm,
``ΔW ← η·√k / ‖ΔW‖₂ · ΔW`` with ``k`` the number of elements of W, so that every adder layer learns at the
same pace whatever its gradient magnitude. :func:`adaptive_grad_scale` is that map; ``AdderConv2d(eta=η)``
applies it inside the layer's backward pass (as the authors' code does, with η = 0.2 there), so any optimizer
then sees the scaled gradient. Leave ``eta=None`` to get the paper's plain gradients above.

Conventions: NCHW tensors; groups are not supported (AdderNet has none); the forward pass unfolds the input
into windows (``F.unfold``) and takes L1 distances with ``torch.cdist(p=1)``; the input gradient needs a
``(n, C_out, C_in·kh·kw, H'·W')`` temporary, computed a few samples at a time to bound its memory.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from aicompute.checks import positive_int, positive_number
from aicompute.errors import AicomputeError
from aicompute.nn.shapes import IntOrPair, check_image_batch, conv_output_size, pair

__all__ = ["AdderConv2d", "adder_conv2d", "adaptive_grad_scale"]

_CHUNK_ELEMENTS = 1 << 24
"""Largest ``(n, C_out, K, L)`` temporary of the input gradient, in elements (64 MiB in float32)."""


def adaptive_grad_scale(grad: Tensor, eta: float) -> Tensor:
    """AdderNet's adaptive learning-rate scaling: ``grad · η·√k / ‖grad‖₂`` (``k = grad.numel()``).

    The result has L2 norm ``η·√k`` (an all-zero gradient stays zero).
    """
    positive_number("eta", eta)
    return grad * (eta * math.sqrt(grad.numel()) / grad.norm().clamp_min(1e-12))


class _Adder2d(torch.autograd.Function):
    """Adder convolution with the AdderNet paper's gradients (see the module docstring)."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, stride: tuple[int, int], padding: tuple[int, int],
        dilation: tuple[int, int], out_hw: tuple[int, int], eta: float | None,
    ) -> Tensor:  # fmt: skip
        n, _, h, w = x.shape
        c_out = weight.shape[0]
        kernel = (weight.shape[2], weight.shape[3])
        cols = F.unfold(x, kernel, dilation, padding, stride)  # (N, K, L), K = C_in·kh·kw, L = H'·W'
        w_rows = weight.reshape(c_out, -1)  # (C_out, K)
        k, length = cols.shape[1], cols.shape[2]
        dist = torch.cdist(cols.transpose(1, 2).reshape(n * length, k), w_rows, p=1)  # (N·L, C_out)
        y = -dist.reshape(n, length, c_out).transpose(1, 2)  # (N, C_out, L)
        ctx.save_for_backward(cols, w_rows)
        ctx.geometry = ((h, w), kernel, stride, padding, dilation)
        ctx.eta = eta
        return y.reshape(n, c_out, *out_hw)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        cols, w_rows = ctx.saved_tensors
        in_hw, kernel, stride, padding, dilation = ctx.geometry
        g = grad_y.reshape(grad_y.shape[0], grad_y.shape[1], -1)  # (N, C_out, L)
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            # Σ_{n,l} g[n,o,l]·(X[n,k,l] − W[o,k]) = Σ_n g_n·X_nᵀ − W·Σ_{n,l} g
            grad_w = torch.einsum("nol,nkl->ok", g, cols) - w_rows * g.sum(dim=(0, 2)).unsqueeze(1)
            if ctx.eta is not None:
                grad_w = adaptive_grad_scale(grad_w, ctx.eta)
            grad_w = grad_w.reshape(w_rows.shape[0], -1, *kernel)  # (C_out, C_in, kh, kw)
        if ctx.needs_input_grad[0]:
            grad_x = F.fold(_grad_cols(g, cols, w_rows), in_hw, kernel, dilation, padding, stride)
        return grad_x, grad_w, None, None, None, None, None


def _grad_cols(g: Tensor, cols: Tensor, w_rows: Tensor) -> Tensor:
    """``Σ_o g[n,o,l]·HardTanh(W[o,k] − X[n,k,l])`` as ``(N, K, L)``, a few samples at a time."""
    n, c_out, length = g.shape
    per_sample = c_out * cols.shape[1] * length
    step = max(1, _CHUNK_ELEMENTS // max(per_sample, 1))
    out = torch.empty_like(cols)
    for start in range(0, n, step):
        part = slice(start, start + step)
        diff = w_rows[None, :, :, None] - cols[part, None, :, :]  # (n, C_out, K, L)
        out[part] = (g[part, :, None, :] * diff.clamp_(-1.0, 1.0)).sum(dim=1)  # (n, K, L)
    return out


def adder_conv2d(
    x: Tensor,
    weight: Tensor,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    *,
    eta: float | None = None,
) -> Tensor:
    """Functional adder convolution: ``x`` (N, C_in, H, W), ``weight`` (C_out, C_in, kh, kw) → (N, C_out, H', W').

    ``H'`` and ``W'`` follow ``nn.Conv2d``'s formula. ``eta`` turns on the adaptive gradient scaling.
    """
    if weight.dim() != 4:
        raise AicomputeError(f"adder weight must be (C_out, C_in, kh, kw), got shape {tuple(weight.shape)}")
    check_image_batch(x, weight.shape[1], "AdderConv2d")
    if eta is not None:
        positive_number("eta", eta)
    stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
    out_hw = tuple(
        conv_output_size(x.shape[2 + i], weight.shape[2 + i], stride[i], padding[i], dilation[i]) for i in range(2)
    )
    if min(out_hw) < 1:
        raise AicomputeError(
            f"a {tuple(weight.shape[2:])} adder kernel (padding {padding}, dilation {dilation}) does not fit "
            f"an input of size {tuple(x.shape[2:])}; use a larger input or more padding"
        )
    return _Adder2d.apply(x, weight, stride, padding, dilation, out_hw, eta)


class AdderConv2d(nn.Module):
    """Adder convolution layer: ``Y = −Σ|X − W|`` over each window and all input channels, plus an optional bias.

    Weights are ``(C_out, C_in, kh, kw)`` like ``nn.Conv2d``'s, initialised N(0, 1) as in the authors' code
    (the batch norm that follows absorbs the scale). ``bias`` defaults to False because a batch norm follows.
    ``eta`` (e.g. 0.2) turns on the paper's adaptive learning-rate scaling of the weight gradient.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        bias: bool = False,
        *,
        eta: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        positive_int("in_channels", in_channels)
        positive_int("out_channels", out_channels)
        for name, value, low in (("kernel_size", kernel_size, 1), ("stride", stride, 1), ("dilation", dilation, 1),
                                 ("padding", padding, 0)):  # fmt: skip
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in pair(value)):
                raise AicomputeError(f"{name} must be an int ≥ {low} or a pair of them, got {value!r}")
        if eta is not None:
            positive_number("eta", eta)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = pair(kernel_size), pair(stride)
        self.padding, self.dilation = pair(padding), pair(dilation)
        self.eta = eta
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        y = adder_conv2d(x, self.weight, self.stride, self.padding, self.dilation, eta=self.eta)
        return y if self.bias is None else y + self.bias.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}")  # fmt: skip
        return s if self.eta is None else f"{s}, eta={self.eta}"
