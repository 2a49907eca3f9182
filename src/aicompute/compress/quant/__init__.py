"""Quantization: qparams, observers and calibration, fake-quant/STE, PTQ, QAT, binary, ONNX QDQ export."""
