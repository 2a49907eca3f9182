"""Quantization: qparams, observers and calibration, fake-quant/STE and LSQ, PTQ, QAT, sensitivity and
mixed precision, binary and non-linear quantizers.

The usual entry points are :func:`quantize` (post-training) and :func:`qat` (quantization-aware training)
with a :class:`QuantConfig`; both return a :class:`QuantResult`.
"""

from aicompute.compress.quant.fake import FakeQuantizer, LSQQuantizer, fake_quantize, lsq_fake_quantize
from aicompute.compress.quant.fold import conv_bn_pairs, fold_batchnorm
from aicompute.compress.quant.modules import QuantSpec, calibrate, freeze, prepare, quant_layers
from aicompute.compress.quant.nonlinear import KMeansQuantizer, kmeans_quantize, log2_quantize
from aicompute.compress.quant.observers import OBSERVERS, make_observer
from aicompute.compress.quant.ptq import QuantConfig, QuantResult, layer_names, quantize
from aicompute.compress.quant.qat import qat
from aicompute.compress.quant.qparams import QParams, QScheme, compute_qparams, qrange
from aicompute.compress.quant.sensitivity import mixed_precision, sensitivity

__all__ = [
    "QuantConfig", "QuantResult", "quantize", "qat", "sensitivity", "mixed_precision", "layer_names",
    "QScheme", "QParams", "compute_qparams", "qrange", "OBSERVERS", "make_observer",
    "FakeQuantizer", "LSQQuantizer", "fake_quantize", "lsq_fake_quantize",
    "QuantSpec", "prepare", "calibrate", "freeze", "quant_layers", "conv_bn_pairs", "fold_batchnorm",
    "KMeansQuantizer", "kmeans_quantize", "log2_quantize",
]  # fmt: skip
