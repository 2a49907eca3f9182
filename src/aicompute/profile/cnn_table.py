"""The seed's table of classic CNNs, regenerated from the zoo and profiled now.

Each column of the seed's table (:data:`SEED_CNN_TABLE`: model, year, input size, params, MACs, as
printed there) is built from the zoo at the seed's input size and profiled on the meta device at batch 1
with :func:`aicompute.profile.api.profile`. The seed's printed figures sit beside ours, labelled as such:
they are the one place a printed figure belongs. Where the two differ for a known cause, the row's note
says why, with the figures it quotes computed now (e.g. the original two-GPU AlexNet, ResNet-50 v1).

Conventions are :mod:`aicompute.profile.design`'s: params are parameter elements, MACs the
multiply-accumulates of conv / matmul ops; ratios are ours over the seed's printed value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from aicompute.profile.api import profile
from aicompute.profile.result import CONVENTION, ProfileResult

__all__ = ["SeedCNN", "SEED_CNN_TABLE", "CNNRow", "CNNTableResult", "cnn_table"]

_SI = {"k": 1e3, "M": 1e6, "G": 1e9}


@dataclass(frozen=True)
class SeedCNN:
    """One column of the seed's classic-CNN table, as printed there, and the zoo model that implements it."""

    label: str
    zoo_name: str
    year: int
    image_size: int
    in_channels: int
    params: str
    macs: str

    @staticmethod
    def value(printed: str) -> float:
        """``"61M"`` → 61e6."""
        return float(printed[:-1]) * _SI[printed[-1]]


SEED_CNN_TABLE: tuple[SeedCNN, ...] = (
    SeedCNN("LeNet-5", "lenet5", 1998, 28, 1, "60k", "341k"),
    SeedCNN("AlexNet", "alexnet", 2012, 227, 3, "61M", "724M"),
    SeedCNN("VGG16", "vgg16", 2015, 224, 3, "138M", "15.5G"),
    SeedCNN("GoogLeNet", "googlenet", 2015, 224, 3, "7M", "1.43G"),
    SeedCNN("ResNet50", "resnet50", 2016, 224, 3, "25.5M", "3.9G"),
    SeedCNN("EfficientNet-B4", "efficientnet_b4", 2019, 380, 3, "19M", "4.4G"),
)
"""The seed text's table of classic CNNs (input size, params, MACs, year), its figures as printed."""


@dataclass(frozen=True)
class CNNRow:
    seed: SeedCNN
    input_shape: tuple[int, ...]
    params: int
    macs: int
    note: str = ""
    """Why ours and the seed's differ, where the cause is known."""
    note_figures: dict[str, int] = field(default_factory=dict)
    """The figures the note quotes, computed now (e.g. ``v1_macs`` for ResNet-50)."""

    @property
    def params_ratio(self) -> float:
        return self.params / SeedCNN.value(self.seed.params)

    @property
    def macs_ratio(self) -> float:
        return self.macs / SeedCNN.value(self.seed.macs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.seed.label, "zoo_name": self.seed.zoo_name, "year": self.seed.year,
            "input_shape": list(self.input_shape), "params": self.params, "macs": self.macs,
            "seed_params": self.seed.params, "seed_macs": self.seed.macs,
            "params_ratio": self.params_ratio, "macs_ratio": self.macs_ratio, "note": self.note,
            "note_figures": dict(self.note_figures),
        }  # fmt: skip


@dataclass(frozen=True)
class CNNTableResult:
    entries: tuple[CNNRow, ...]

    COLUMNS = ("model", "year", "input", "params", "seed says", "ours/seed", "MACs", "seed says",
               "ours/seed")  # fmt: skip

    def __getitem__(self, zoo_name: str) -> CNNRow:
        for r in self.entries:
            if r.seed.zoo_name == zoo_name:
                return r
        raise KeyError(zoo_name)

    def rows(self) -> list[tuple]:
        """One printable row per model, in :attr:`COLUMNS` order."""
        return [
            (r.seed.label, str(r.seed.year), r.input_shape[1:], r.params, r.seed.params, r.params_ratio, r.macs,
             r.seed.macs, r.macs_ratio)
            for r in self.entries
        ]  # fmt: skip

    def notes(self) -> list[str]:
        return [f"{r.seed.label}: {r.note}" for r in self.entries if r.note]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cnn-table", "convention": CONVENTION, "rows": [r.to_dict() for r in self.entries]}


# Each known cause: (the zoo's profile) -> (note, the figures it quotes, computed now).
Explanation = tuple[str, dict[str, int]]


def _lenet_note(r: ProfileResult) -> Explanation:
    figures = {f"{kind}_macs": sum(row.cost.macs for row in r.by_module(1) if row.path.startswith(kind))
               for kind in ("conv", "fc")}  # fmt: skip
    return (f"ours follows the seed's own LeNet-5 layer table (conv1 padded so 28×28 gives 6×28×28): convs "
            f"{figures['conv_macs']:,} + FC {figures['fc_macs']:,} MACs; the printed 341k does not follow "
            "from that table"), figures


def _original_alexnet() -> nn.Sequential:
    """Krizhevsky et al. (2012) as built on two GPUs: 96-256-384-384-256 filters, conv2/4/5 in two groups
    (each GPU saw only its half of the channels), no padding on the 11×11; LRN and dropout omitted (no
    params, no MACs). Input 3×227×227."""
    relu, pool = nn.ReLU, lambda: nn.MaxPool2d(3, stride=2)
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), relu(), pool(),  # (96, 55, 55) → (96, 27, 27)
        nn.Conv2d(96, 256, 5, padding=2, groups=2), relu(), pool(),  # → (256, 13, 13)
        nn.Conv2d(256, 384, 3, padding=1), relu(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), relu(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), relu(), pool(),  # → (256, 6, 6)
        nn.Flatten(), nn.Linear(256 * 6 * 6, 4096), relu(), nn.Linear(4096, 4096), relu(), nn.Linear(4096, 1000),
    )  # fmt: skip


def _alexnet_note(r: ProfileResult) -> Explanation:
    with torch.device("meta"):
        original = _original_alexnet()
    two_gpu = profile(original, input_shape=(1, 3, 227, 227))
    return (f"the zoo has torchvision's single-tower layout (64-192-384-256-256 filters); the original two-GPU "
            f"AlexNet (96-256-384-384-256, conv2/4/5 in two groups) has {two_gpu.params:,} params and "
            f"{two_gpu.macs:,} MACs, the seed's 61M / 724M"), {"two_gpu_params": two_gpu.params,
                                                               "two_gpu_macs": two_gpu.macs}


def _googlenet_note(r: ProfileResult) -> Explanation:
    paper = profile("googlenet", input_shape=r.inputs[0][0], model_kwargs={"branch3_kernel_size": 5})
    return (f"the zoo default is torchvision's layout, a 3×3 in the '5×5' branch (the figures above); with "
            f"the paper's 5×5 it has {paper.params:,} params (the seed's 7M) and {paper.macs:,} MACs; the "
            "seed's 1.43G is below both"), {"paper_params": paper.params, "paper_macs": paper.macs}


def _resnet_note(r: ProfileResult) -> Explanation:
    strided = ("layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1")
    first_1x1 = sum(row.cost.macs for row in r.by_module() if row.path in strided)
    v1 = r.macs - first_1x1 * 3 // 4
    return (f"torchvision's v1.5 strides the 3×3 of each downsampling block; the paper's v1 strides the first "
            f"1×1, which then runs on a quarter of the positions: {v1:,} MACs, the seed's 3.9G"), {"v1_macs": v1}


_NOTES: dict[str, Callable[[ProfileResult], Explanation]] = {
    "lenet5": _lenet_note, "alexnet": _alexnet_note, "googlenet": _googlenet_note, "resnet50": _resnet_note,
}  # fmt: skip


def cnn_table() -> CNNTableResult:
    """The seed's classic CNNs from the zoo at the seed's input sizes, profiled on meta (batch 1)."""
    rows = []
    for seed in SEED_CNN_TABLE:
        shape = (1, seed.in_channels, seed.image_size, seed.image_size)
        kwargs = {"image_size": seed.image_size, "in_channels": seed.in_channels}
        r = profile(seed.zoo_name, input_shape=shape, model_kwargs=kwargs)
        note, figures = _NOTES[seed.zoo_name](r) if seed.zoo_name in _NOTES else ("", {})
        rows.append(CNNRow(seed, shape, r.params, r.macs, note, figures))
    return CNNTableResult(tuple(rows))
