"""The 1-D CNN of the MNIST-1D paper (Greydanus 2020, "ConvBase"), for 1-D signals such as mnist1d.

Three ``Conv1d`` layers of ``channels`` (25) filters — kernel 5, then 3 and 3 — each with stride 2,
padding 1 and a ReLU, then one linear layer from the flattened features to the classes. Each stride-2
convolution maps a length ``L`` to ``⌊(L + 2·1 − k) / 2⌋ + 1``; for mnist1d's ``L = 40`` that is
40 → 19 → 10 → 5, so the classifier reads ``25 · 5 = 125`` features, and the model has 5,210
parameters (150 + 1,900 + 1,900 + 1,260), as in the paper.

Input is ``(B, C, L)`` or, for one channel, ``(B, L)``; ``L`` must equal the ``length`` the model was
built for, since the classifier's width depends on it.
"""

from __future__ import annotations

import torch
from torch import nn

from aicompute.checks import positive_int
from aicompute.errors import AicomputeError
from aicompute.models.registry import register_model
from aicompute.nn.shapes import conv_output_size

__all__ = ["CNN1d", "cnn1d"]

KERNELS = (5, 3, 3)
STRIDE = 2
PADDING = 1


class CNN1d(nn.Module):
    """MNIST-1D ConvBase: 3 × (Conv1d stride 2 + ReLU), flatten, Linear."""

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, length: int = 40, channels: int = 25):
        super().__init__()
        sizes = {"num_classes": num_classes, "in_channels": in_channels, "length": length, "channels": channels}
        for name, value in sizes.items():
            positive_int(name, value)
        self.in_channels = in_channels
        self.length = length
        layers: list[nn.Module] = []
        c, n = in_channels, length
        for kernel in KERNELS:
            layers += [nn.Conv1d(c, channels, kernel, stride=STRIDE, padding=PADDING), nn.ReLU()]
            c, n = channels, conv_output_size(n, kernel, STRIDE, PADDING)
            if n < 1:
                raise AicomputeError(
                    f"signals of length {length} are too short for three stride-2 convolutions "
                    f"(kernels {KERNELS}); use length >= 3"
                )
        self.features = nn.Sequential(*layers)
        self.out_length = n
        """Length after the last convolution (5 for length 40)."""
        self.classifier = nn.Linear(channels * n, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and self.in_channels == 1:
            x = x.unsqueeze(1)  # (B, L) -> (B, 1, L)
        if x.dim() != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.length:
            one = " or (batch, length)" if self.in_channels == 1 else ""
            raise AicomputeError(
                f"this 1-D CNN reads (batch, {self.in_channels}, {self.length}){one} signals, got shape "
                f"{tuple(x.shape)}; build it with in_channels/length matching the data"
            )
        h = self.features(x)  # (B, C_in, L) -> (B, channels, out_length)
        return self.classifier(h.flatten(1))  # (B, channels·out_length) -> (B, classes)


@register_model("cnn1d", family="signal", input_shape=(40,))
def cnn1d(num_classes: int = 10, in_channels: int = 1, length: int = 40, channels: int = 25) -> CNN1d:
    """MNIST-1D paper's 1-D CNN: 3 × Conv1d(25, k=5/3/3, stride 2) + ReLU, then linear (5,210 params)."""
    return CNN1d(num_classes=num_classes, in_channels=in_channels, length=length, channels=channels)
