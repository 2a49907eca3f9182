"""The quantization chapter: formats table, accuracy against bits, and the receipts."""

from __future__ import annotations

from typing import Any

from aicompute.report.html import Chapter
from aicompute.report.plots import line_plot

__all__ = ["quant_chapter"]


def _g(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def quant_chapter(tour: dict[str, Any]) -> Chapter:
    ch = Chapter("Quantization: formats, accuracy against bits, and what int8 really buys")
    ch.text("Number formats: bits of sign, exponent and mantissa, and the range and precision they give.")
    ch.table(["format", "sign", "exponent", "mantissa", "bytes/value", "max", "min normal", "min subnormal", "eps"],
             [(f["name"], f["sign_bits"], f["exponent_bits"], f["mantissa_bits"], f["bytes_per_value"], _g(f["max"]),
               _g(f["min_normal"]), _g(f["min_subnormal"]), _g(f["eps"])) for f in tour["formats"]])
    sweep = tour["sweep"]
    ch.text(
        f"{tour['model']} trained now on {tour['data']} ({100 * tour['float_accuracy']:.1f}% float accuracy on the "
        "1,000 held-out images), quantized after training: weights per output channel (symmetric), activations "
        "per tensor (asymmetric, calibrated with MinMax on the training split)."
    )
    ch.table(["config", "weight bits", "activation bits", "accuracy", "drop (pt)"],
             [(p["label"], p["bits"], p["act_bits"] or "float", f"{100 * p['accuracy']:.1f}%", p["drop_pt"])
              for p in sweep])
    series = {}
    for name, pick in (("weights only", lambda p: p["act_bits"] is None),
                       ("weights and activations", lambda p: p["act_bits"] is not None)):
        points = sorted((p["bits"], 100 * p["accuracy"]) for p in sweep if pick(p))
        series[name] = ([b for b, _ in points], [a for _, a in points])
    ch.figure(line_plot(series, title="Accuracy against bits", xlabel="bits", ylabel="test accuracy (%)"),
              "Post-training quantization: accuracy holds to 4 bits and falls off below.")
    ch.text("The receipt: both models exported to ONNX (the int8 one with its own scales in QDQ form) and run "
            "in ONNX Runtime on this machine's CPU; latency is the median per batch.")
    ch.table(["model", "float file", "int8 file", "smaller", "ORT float ms", "ORT int8 ms", "faster",
              "integer kernels", "warnings"],
             [(r["model"], r["float_bytes"], r["quant_bytes"], f"{r['size_ratio']:.2f}x", r["ort_float_ms"],
               r["ort_quant_ms"], f"{r['speedup']:.2f}x", ", ".join(f"{k} {v}" for k, v in r["integer_ops"].items()),
               "; ".join(r["warnings"]) or "none") for r in tour["receipts"]])
    return ch
