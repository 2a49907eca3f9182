"""Claim: the profiler's MACs agree within 1% with the figures torchvision publishes for the same
architectures at their input sizes (e.g. ResNet-50 4.09 G, VGG16 15.47 G, AlexNet 0.71 G, GoogLeNet 1.50 G,
EfficientNet-B4 4.39 G).

Usage: .venv/bin/python benchmarks/profile_published_macs.py

torchvision's model pages list "GFLOPS" per weight; the figure is the ``_ops`` field of the weight's
metadata in ``torchvision/models/<arch>.py`` (ImageNet-1K weights, 1000 classes), given to 3 decimals (4
significant digits for VGG16), and it counts one multiply-add as one operation — it is GMACs. The table
below copies those ``_ops`` values and the ``num_params`` beside them. Input sizes are the weights'
``crop_size``: 224 × 224, except EfficientNet-B4 at 380 × 380; torchvision's AlexNet is the single-tower
224 variant of "One weird trick" (64-192-384-256-256 channels), which is what the zoo's ``alexnet`` builds.

For each: our MACs (``profile(name)``, inference, batch 1, the zoo's default input), the published figure,
their ratio, whether they agree within 1% (the claim) and whether ours rounds to the published figure at its
printed precision (a much tighter check), and our parameter count against ``num_params``. GhostNet is in the
zoo but not in torchvision, so it has no published figure here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from _common import report

from aicompute.models import model_spec
from aicompute.profile.api import profile


@dataclass(frozen=True)
class Published:
    model: str
    """Zoo name."""
    weights: str
    """torchvision weights enum member the figures belong to."""
    gmacs: float
    """``_ops`` of those weights (shown as GFLOPS on pytorch.org/vision)."""
    decimals: int
    """Decimals ``gmacs`` is given to."""
    params: int
    """``num_params`` of those weights."""
    image_size: int


PUBLISHED = (
    Published("alexnet", "AlexNet_Weights.IMAGENET1K_V1", 0.714, 3, 61_100_840, 224),
    Published("vgg11", "VGG11_Weights.IMAGENET1K_V1", 7.609, 3, 132_863_336, 224),
    Published("vgg16", "VGG16_Weights.IMAGENET1K_V1", 15.47, 2, 138_357_544, 224),
    Published("googlenet", "GoogLeNet_Weights.IMAGENET1K_V1", 1.498, 3, 6_624_904, 224),
    Published("resnet18", "ResNet18_Weights.IMAGENET1K_V1", 1.814, 3, 11_689_512, 224),
    Published("resnet50", "ResNet50_Weights.IMAGENET1K_V1", 4.089, 3, 25_557_032, 224),
    Published("densenet121", "DenseNet121_Weights.IMAGENET1K_V1", 2.834, 3, 7_978_856, 224),
    Published("mobilenet_v2", "MobileNet_V2_Weights.IMAGENET1K_V1", 0.301, 3, 3_504_872, 224),
    Published("efficientnet_b0", "EfficientNet_B0_Weights.IMAGENET1K_V1", 0.386, 3, 5_288_548, 224),
    Published("efficientnet_b4", "EfficientNet_B4_Weights.IMAGENET1K_V1", 4.394, 3, 19_341_616, 380),
)
TOLERANCE = 0.01


def main() -> None:
    os.environ.setdefault("COLUMNS", "170")  # rich takes the table width from here when piped
    started = time.perf_counter()
    rows = []
    for pub in PUBLISHED:
        shape = model_spec(pub.model).input_shape
        if shape != (3, pub.image_size, pub.image_size):
            raise SystemExit(f"{pub.model}: the zoo's default input is {shape}, torchvision's figure is for "
                             f"3×{pub.image_size}×{pub.image_size}; the comparison would not be like for like")
        result = profile(pub.model, mode="inference")
        ours = result.macs / 1e9
        ratio = ours / pub.gmacs
        rows.append((pub.model, pub.weights, f"{pub.image_size}²", f"{ours:.6f}", f"{pub.gmacs:g}", f"{ratio:.5f}",
                     "pass" if abs(ratio - 1) <= TOLERANCE else "FAIL",
                     "yes" if round(ours, pub.decimals) == pub.gmacs else "no",
                     f"{result.params:,}", f"{pub.params:,}", "pass" if result.params == pub.params else "FAIL"))
    seconds = time.perf_counter() - started
    report("profile_published_macs", "Our GMACs vs torchvision's published figures (batch 1, inference)",
           ["model", "torchvision weights", "input", "ours GMACs", "published", "ratio", "within 1%",
            "rounds to it", "ours params", "num_params", "params"], rows,
           source="torchvision/models/*.py weights meta '_ops' and 'num_params' "
                  "(pytorch.org/vision/stable/models: 'GFLOPS' column)",
           seconds=seconds)
    print(f"{len(rows)} models, {seconds:.1f} s")


if __name__ == "__main__":
    main()
