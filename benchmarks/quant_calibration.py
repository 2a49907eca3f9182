"""Claim (issue 6): a calibration comparison table — minmax / percentile / entropy / mse at 8 and 6 bits, with
accuracy and weight / activation quantization MSE — for LeNet-5 and the small ResNet-18 on `mnist`.

Usage: .venv/bin/python benchmarks/quant_calibration.py [--seed 0] [--threads 1]

The float models are those of `quant_accuracy.py` (same recipes, data slices and seed: trained on the
3,500-image fit slice of the training split). For each bit width b ∈ {8, 6} and calibrator, two PTQ
configurations, both WbAb and calibrated on the same 16 batches of 64 fit images:

* **act**: the calibrator picks each layer's input (activation) range; weights use the library default,
  symmetric per output channel with their min/max range (the distribution calibrators pick one range per
  tensor, so they cannot serve per-channel weights).
* **act + W/tensor**: the calibrator also picks the weight ranges, one per weight tensor (symmetric).

Measured, on the 1,000-image test split (held out from training and calibration; nothing is chosen here):

* accuracy and drop (float minus quantized, percentage points; 0.1 pt = one image);
* **act MSE**: each quantized layer's input, taken from the float (BatchNorm-folded) network on the test
  images, against its fake-quantized value with that layer's calibrated input parameters, i.e. the error the
  calibrator's clipping and rounding put on real held-out activations; mean squared error per element,
  averaged over layers (per-layer values in the JSON). It is the same for both configurations, since
  calibration runs the float network;
* **W MSE**: mean over layers of the per-element squared error of the fake-quantized weight (BN folded).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from _common import report
from quant_accuracy import BATCH, CALIBRATORS, RECIPES, THREADS_HELP, Data, accuracy, mnist_splits, train_float
from torch import nn

from aicompute.compress.quant import QParams, QuantConfig, QuantResult, quant_layers, quantize

BITS = (8, 6)


def activation_mse(result: QuantResult, data: Data) -> dict[str, float]:
    """Per quantized layer: mean of (fake_quantize(x) − x)² over the inputs x that layer receives in the float
    network when ``data`` runs through it."""
    _, input_qparams = result.qparams()
    modules = dict(result.float_model.named_modules())  # the prepared model's layer names are these
    totals = {name: [0.0, 0] for name in input_qparams}  # name → [sum of squared errors, elements]
    handles = []
    for name, qp in input_qparams.items():

        def hook(_: nn.Module, args: tuple[torch.Tensor, ...], name: str = name, qp: QParams = qp) -> None:
            x = args[0]
            totals[name][0] += float((qp.fake_quantize(x) - x).double().pow(2).sum())
            totals[name][1] += x.numel()

        handles.append(modules[name].register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            for x in data[0].split(256):
                result.float_model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: sq / n for name, (sq, n) in totals.items()}


def weight_mse(result: QuantResult) -> dict[str, float]:
    """Per quantized layer: mean of (Q(W) − W)² over the weight's elements."""
    with torch.no_grad():
        return {name: float((layer.quantized_weight() - layer.weight).double().pow(2).mean())
                for name, layer in quant_layers(result.model).items()}  # fmt: skip


def mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values)


def compare(model: nn.Module, fit_data: Data, test: Data, label: str, details: dict[str, Any]) -> list[tuple]:
    """The rows of one model: every bit width × calibrator, both configurations."""
    rows = []
    float_acc = None
    for bits in BITS:
        for calib in CALIBRATORS:
            per_channel = quantize(model, fit_data, QuantConfig(bits=bits, act_bits=bits, calib=calib),
                                   batch_size=BATCH)
            per_tensor = quantize(model, fit_data, QuantConfig(bits=bits, act_bits=bits, calib=calib,
                                  weight_calib=calib, granularity="tensor"), batch_size=BATCH)  # fmt: skip
            if float_acc is None:
                float_acc = accuracy(per_channel.float_model, test)
                details["float_acc"] = float_acc
            acc_c, acc_t = accuracy(per_channel.model, test), accuracy(per_tensor.model, test)
            act = activation_mse(per_channel, test)
            w_c, w_t = weight_mse(per_channel), weight_mse(per_tensor)
            details[f"W{bits}A{bits} {calib}"] = {"act_mse": act, "weight_mse_per_channel_minmax": w_c,
                                                  "weight_mse_per_tensor": w_t, "acc": acc_c, "acc_w_tensor": acc_t}
            rows.append((label, f"W{bits}A{bits}", calib, round(acc_c, 1), round(float_acc - acc_c, 1) + 0.0,
                         mean(act), mean(w_c), round(acc_t, 1), round(float_acc - acc_t, 1) + 0.0, mean(w_t)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    fit_data, _, test = mnist_splits()
    rows: list[tuple] = []
    details: dict[str, Any] = {}
    for recipe in RECIPES:
        t0 = time.perf_counter()
        model = train_float(recipe, fit_data, args.seed)
        details[recipe.label] = {"train_s": time.perf_counter() - t0}
        rows += compare(model, fit_data, test, recipe.label, details[recipe.label])
        details[recipe.label]["total_s"] = time.perf_counter() - t0
    floats = ", ".join(f"{label} {d['float_acc']:.1f} %" for label, d in details.items())
    seconds = time.perf_counter() - start
    title = (f"Calibrators on mnist test (1,000 images; float {floats}; seed {args.seed}). W/ch: weights per "
             "channel, min/max; W/t: weights per tensor, same calibrator")
    report("quant_calibration", title,
           ["model", "bits", "calibrator", "acc % W/ch", "drop pt", "act MSE", "W MSE W/ch", "acc % W/t",
            "drop pt W/t", "W MSE W/t"],
           rows, seed=args.seed, calibration_images=QuantConfig().calib_batches * BATCH, details=details,
           seconds=seconds, threads=torch.get_num_threads())  # fmt: skip
    print(f"total {seconds:.0f} s on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
