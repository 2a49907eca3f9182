"""Shape arithmetic and input checks shared by the zoo's CNNs.

A network computes its feature-map sizes from ``image_size`` at construction time with these helpers,
without a dummy forward, so construction also works under ``torch.device("meta")``.

Conventions:

* Tensors are NCHW; sizes are ``(H, W)`` tuples of ints. An ``int`` size means a square.
* :func:`conv_output_size` follows PyTorch's own formula for convolution and pooling, including its
  ``ceil_mode`` rule, and may return a value ≤ 0 (the layer does not fit); callers decide what to do.
* User mistakes (a bad ``image_size``, a batch of the wrong shape, a bad ``num_classes`` / ``in_channels`` /
  ``dropout``) raise ``AicomputeError``.
"""

from __future__ import annotations

import torch
from torch import nn

from aicompute.checks import positive_int, probability
from aicompute.errors import AicomputeError

__all__ = [
    "IntOrPair", "as_hw", "check_classifier_args", "check_image_batch", "conv_output_size", "pair",
    "pool_or_identity", "same_padding",
]  # fmt: skip

IntOrPair = int | tuple[int, int]


def as_hw(image_size: IntOrPair, *, name: str = "image_size") -> tuple[int, int]:
    """``image_size`` as ``(H, W)``: an int means a square image. Non-positive sizes are a user error."""
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        hw = (image_size, image_size)
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in image_size)
    ):
        hw = (image_size[0], image_size[1])
    else:
        raise AicomputeError(f"{name} must be an int or a pair (H, W) of ints, got {image_size!r}")
    if min(hw) < 1:
        raise AicomputeError(f"{name} must be positive, got {image_size!r}")
    return hw


def conv_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    *,
    ceil_mode: bool = False,
) -> int:
    """Output length of a convolution or pooling along one dimension, as PyTorch computes it.

    ``floor((size + 2·padding − dilation·(kernel_size − 1) − 1) / stride) + 1``; with ``ceil_mode`` the
    division rounds up, but a last window that would start in the right padding is dropped (PyTorch's
    rule for pooling). The result may be ≤ 0: the layer does not fit on an input that small.
    """
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    numerator = span + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1  # floor division, also right for a negative span
    if ceil_mode and out > 0 and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pair(value: IntOrPair) -> tuple[int, int]:
    """``value`` as ``(H, W)``: an int means the same along both dimensions (kernel, stride, padding)."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def same_padding(kernel_size: IntOrPair) -> tuple[int, int]:
    """``((k_h − 1) // 2, (k_w − 1) // 2)``: the padding with which a stride-1 conv keeps H×W (odd kernels).

    With stride 2 the output is ``ceil(H / 2)``. An even kernel cannot keep the size with symmetric padding;
    it gets ``(k − 2) / 2`` and loses one pixel, as torchvision's blocks do.
    """
    kh, kw = pair(kernel_size)
    return (kh - 1) // 2, (kw - 1) // 2


def pool_or_identity(
    pool: nn.MaxPool2d | nn.AvgPool2d, size: tuple[int, int]
) -> tuple[nn.Module, tuple[int, int]]:
    """``(pool, its output size)`` if ``pool`` fits on a ``size`` map, else ``(nn.Identity(), size)``.

    Classic networks were sized for 224×224; on a small image (e.g. 32×32) their later down-sampling
    pools would shrink the map below one pixel. Leaving such a pool out keeps every weight (pools have
    none), so parameter counts match the reference at any input size.
    """
    k, s, p = pair(pool.kernel_size), pair(pool.stride), pair(pool.padding)
    out = [conv_output_size(size[i], k[i], s[i], p[i], ceil_mode=pool.ceil_mode) for i in range(2)]
    if min(out) < 1:
        return nn.Identity(), size
    return pool, (out[0], out[1])


def check_image_batch(x: torch.Tensor, in_channels: int, model: str) -> None:
    """Raise ``AicomputeError`` unless ``x`` is an (N, in_channels, H, W) batch."""
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise AicomputeError(
            f"{model} expects a batch of images shaped (N, {in_channels}, H, W), got {tuple(x.shape)}; "
            f"build it with in_channels={x.shape[1] if x.ndim == 4 else '<C>'} or reshape the input"
        )


def check_classifier_args(num_classes: int, in_channels: int, dropout: float | None = None) -> None:
    """The constructor checks the zoo's image classifiers share, in this order: ``num_classes`` and
    ``in_channels`` positive integers, then ``dropout``, when given, a probability in [0, 1).

    Each failure is an ``AicomputeError`` naming the argument (see :mod:`aicompute.checks`). A model whose
    own checks come between these (AlexNet's ``hidden``) leaves ``dropout`` out and checks it itself.
    """
    positive_int("num_classes", num_classes)
    positive_int("in_channels", in_channels)
    if dropout is not None:
        probability("dropout", dropout)
