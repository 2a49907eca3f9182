"""Quantization: qparams, observers and calibration, fake-quant/STE and LSQ, PTQ, QAT, sensitivity and
mixed precision, binary and non-linear quantizers, junction (residual block) quantizers, ONNX QDQ export
with our own scales and the plan of what ORT needs quantized, ONNX Runtime execution, and the compression
receipt.

The usual entry points are :func:`quantize` (post-training) and :func:`qat` (quantization-aware training)
with a :class:`QuantConfig`; both return a :class:`QuantResult`.
"""

from aicompute.compress.quant.fake import FakeQuantizer, LSQQuantizer, fake_quantize, lsq_fake_quantize
from aicompute.compress.quant.fold import conv_bn_pairs, fold_batchnorm
from aicompute.compress.quant.api import QuantizeRun, quantize_checkpoint
from aicompute.compress.quant.export import export_onnx, export_qdq, layers_needing_output_quant
from aicompute.compress.quant.junctions import JunctionQuantizer, attach_junction_quantizers, junction_quantizers
from aicompute.compress.quant.modules import QuantSpec, calibrate, freeze, prepare, quant_layers, quantize_outputs
from aicompute.compress.quant.nonlinear import KMeansQuantizer, kmeans_quantize, log2_quantize
from aicompute.compress.quant.observers import OBSERVERS, make_observer
from aicompute.compress.quant.plan import QuantPlan, quant_plan
from aicompute.compress.quant.ptq import QuantConfig, QuantResult, layer_names, quantize
from aicompute.compress.quant.qat import qat
from aicompute.compress.quant.qparams import QParams, QScheme, compute_qparams, qrange
from aicompute.compress.quant.receipt import Receipt, make_receipt
from aicompute.compress.quant.runtime import integer_ops, ort_accuracy, ort_latency_ms
from aicompute.compress.quant.sensitivity import mixed_precision, sensitivity

__all__ = [
    "QuantConfig", "QuantResult", "quantize", "qat", "sensitivity", "mixed_precision", "layer_names",
    "QScheme", "QParams", "compute_qparams", "qrange", "OBSERVERS", "make_observer",
    "FakeQuantizer", "LSQQuantizer", "fake_quantize", "lsq_fake_quantize",
    "QuantSpec", "prepare", "calibrate", "freeze", "quant_layers", "conv_bn_pairs", "fold_batchnorm",
    "KMeansQuantizer", "kmeans_quantize", "log2_quantize", "quantize_outputs",
    "export_onnx", "export_qdq", "layers_needing_output_quant", "integer_ops", "ort_accuracy", "ort_latency_ms",
    "Receipt", "make_receipt", "QuantizeRun", "quantize_checkpoint",
    "JunctionQuantizer", "attach_junction_quantizers", "junction_quantizers", "QuantPlan", "quant_plan",
]  # fmt: skip
