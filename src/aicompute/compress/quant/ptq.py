"""Post-training quantization of any model: ``quantize(model, calib_data, config) -> QuantResult``.

The flow (on a copy; the user's model is never modified): fold BatchNorm into the convs before them, wrap
every ``nn.Conv1d/2d/3d`` and ``nn.Linear`` with weight and input quantizers (:mod:`.modules`), run the
calibration batches through the float network so the input observers see real activations, freeze the
quantization parameters, and measure float and quantized accuracy on held-out data when it is given. The
result is a PyTorch *simulation* (fake quantization in float32) that :mod:`.export` turns into an int8
ONNX model carrying the same scales and zero-points.

Conventions: weights are quantized symmetric signed (int8 by default) per output channel; activations
asymmetric unsigned (uint8) per tensor — what ONNX Runtime's int8 kernels take. ``bits=1`` is binary
(±α per channel). ``act_bits=None`` is weight-only. Layers named in ``skip`` stay float; layers of other
types (embeddings, recurrent layers, attention's fused projections) stay float and are reported.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from aicompute.checks import did_you_mean, positive_int
from aicompute.compress.quant.fake import FakeQuantizer
from aicompute.compress.quant.fold import fold_batchnorm
from aicompute.compress.quant.junctions import attach_junction_quantizers, junction_quantizers
from aicompute.compress.quant.modules import (
    PrepareReport,
    QuantSpec,
    calibrate,
    freeze,
    prepare,
    quant_layers,
    quantize_outputs,
)
from aicompute.compress.quant.observers import OBSERVERS
from aicompute.compress.quant.plan import QuantPlan, quant_plan
from aicompute.compress.quant.qparams import MAX_BITS, QParams, QScheme
from aicompute.errors import AicomputeError

__all__ = [
    "QuantConfig", "LayerQuant", "QuantResult", "quantize", "prepare_model", "calibrate_and_freeze", "layer_names",
    "calibration_batches",
]  # fmt: skip

SCHEMES = ("sym", "asym")
GRANULARITIES = ("channel", "tensor")


@dataclass(frozen=True, kw_only=True)
class QuantConfig:
    bits: int = 8
    """Weight bits, 1–16 (1 = binary)."""
    act_bits: int | None = 8
    """Activation bits (2–16), or ``None`` for weight-only quantization."""
    scheme: str = "sym"
    """Weights: ``"sym"`` (signed, zero-point 0) or ``"asym"`` (unsigned with a zero-point)."""
    granularity: str = "channel"
    """Weights: one scale per output ``"channel"`` or one per ``"tensor"``."""
    calib: str = "minmax"
    """Activation calibrator: minmax, moving_average, percentile, entropy or mse."""
    weight_calib: str = "minmax"
    calib_batches: int = 16
    skip: tuple[str, ...] = ()
    """Layer names (as in ``named_modules()``) kept in float; a name covers everything under it."""
    layer_bits: Mapping[str, int] = field(default_factory=dict)
    """Per-layer weight bits that override ``bits`` (mixed precision)."""
    learnable: bool = False
    """LSQ quantizers with learnable scales (for QAT)."""
    fold_bn: bool = True
    junctions: bool = True
    """Quantize the input and output of blocks that add or concatenate activations (residual blocks), so ONNX
    Runtime runs the add on integers too (:mod:`.junctions`); needs quantized activations."""

    def __post_init__(self) -> None:
        _check_bits("bits", self.bits, low=1)
        if self.act_bits is not None:
            _check_bits("act_bits", self.act_bits, low=2)
        for name, bits in self.layer_bits.items():
            _check_bits(f"layer_bits[{name!r}]", bits, low=1)
        _choice("scheme", self.scheme, SCHEMES)
        _choice("granularity", self.granularity, GRANULARITIES)
        _choice("calib", self.calib, OBSERVERS)
        _choice("weight_calib", self.weight_calib, OBSERVERS)
        positive_int("calib_batches", self.calib_batches)
        object.__setattr__(self, "skip", tuple(self.skip))
        object.__setattr__(self, "layer_bits", dict(self.layer_bits))

    def weight_scheme(self, bits: int | None = None) -> QScheme:
        bits = self.bits if bits is None else bits
        axis = 0 if self.granularity == "channel" else None
        if bits == 1:
            return QScheme(bits=1, symmetric=True, signed=True, axis=axis)
        symmetric = self.scheme == "sym"
        return QScheme(bits=bits, symmetric=symmetric, signed=symmetric, axis=axis)

    def act_scheme(self) -> QScheme | None:
        return None if self.act_bits is None else QScheme(bits=self.act_bits, symmetric=False, signed=False)

    def spec(self) -> QuantSpec:
        return QuantSpec(
            weight=self.weight_scheme(), activation=self.act_scheme(), weight_observer=self.weight_calib,
            activation_observer=self.calib, learnable=self.learnable, skip=self.skip,
        )

    @property
    def label(self) -> str:
        """``W8A8``, ``W4A16``-style name; ``W4`` for weight-only."""
        return f"W{self.bits}" + ("" if self.act_bits is None else f"A{self.act_bits}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skip"] = list(self.skip)
        out["label"] = self.label
        return out


def _check_bits(name: str, bits: object, *, low: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not low <= bits <= MAX_BITS:
        raise AicomputeError(f"{name} must be an integer from {low} to {MAX_BITS}, got {bits!r}")


def _choice(name: str, value: str, known: Iterable[str]) -> None:
    if value not in known:
        raise AicomputeError(f"unknown {name} {value!r}{did_you_mean(value, known)}; choose one of {', '.join(known)}")


@dataclass(frozen=True)
class LayerQuant:
    """One quantized layer as frozen."""

    name: str
    type: str
    weight_bits: int | None
    act_bits: int | None
    weight_rel_error: float | None
    """‖Q(W) − W‖ / ‖W‖ of the quantized weight."""
    weight_qparams: QParams | None
    input_qparams: QParams | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "weight_bits": self.weight_bits, "act_bits": self.act_bits,
            "weight_rel_error": self.weight_rel_error,
            "weight_qparams": None if self.weight_qparams is None else self.weight_qparams.to_dict(),
            "input_qparams": None if self.input_qparams is None else self.input_qparams.to_dict(),
        }  # fmt: skip


@dataclass
class QuantResult:
    """A quantized model (a PyTorch simulation), its layers, and float vs quantized accuracy."""

    model: nn.Module
    """The frozen, fake-quantized network."""
    float_model: nn.Module
    """The float network it was made from, after BatchNorm folding (what gets exported)."""
    config: QuantConfig
    layers: list[LayerQuant]
    report: PrepareReport
    float_accuracy: float | None = None
    accuracy: float | None = None
    method: str = "ptq"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy_drop(self) -> float | None:
        """Float minus quantized accuracy, in percentage points."""
        if self.float_accuracy is None or self.accuracy is None:
            return None
        return 100 * (self.float_accuracy - self.accuracy)

    @property
    def junctions(self) -> list[str]:
        """The junction blocks whose input and output are quantized (:mod:`.junctions`)."""
        return list(junction_quantizers(self.model))

    def output_qparams(self) -> dict[str, QParams]:
        """Output qparams of the layers that quantize their outputs and of the junction blocks, for the exporter."""
        out = {}
        for name, layer in quant_layers(self.model).items():
            qp = layer.output_qparams()
            if qp is not None:
                out[name] = qp
        out.update({name: jq.output_qparams() for name, jq in junction_quantizers(self.model).items()})
        return out

    def qparams(self) -> tuple[dict[str, QParams], dict[str, QParams]]:
        """``(weight qparams, input qparams)`` by layer (and junction block) name, for the exporter."""
        weights = {layer.name: layer.weight_qparams for layer in self.layers if layer.weight_qparams is not None}
        inputs = {layer.name: layer.input_qparams for layer in self.layers if layer.input_qparams is not None}
        inputs.update({name: jq.input_qparams() for name, jq in junction_quantizers(self.model).items()})
        return weights, inputs

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "quantize",
            "method": self.method,
            "config": self.config.to_dict(),
            "float_accuracy": self.float_accuracy,
            "accuracy": self.accuracy,
            "accuracy_drop_pt": self.accuracy_drop,
            "layers": [layer.to_dict() for layer in self.layers],
            "junctions": self.junctions,
            "kept_float": {**{name: "skipped" for name in self.report.skipped}, **self.report.unsupported},
            **self.extra,
        }


def calibration_batches(data: Any, *, batch_size: int = 64, limit: int | None = None) -> Iterator[torch.Tensor]:
    """Input tensors from ``data`` — a DataLoader, a Dataset of pairs, an ``(inputs, targets)`` tuple, a
    tensor of inputs, or a list of input batches — at most ``limit`` batches."""
    from aicompute.data.loader import as_loader

    if isinstance(data, torch.Tensor):
        batches: Iterable[Any] = data.split(batch_size)
    elif isinstance(data, list) and all(isinstance(b, torch.Tensor) for b in data):
        batches = data  # a list of input batches (a tuple of two tensors is (inputs, targets))
    else:
        batches = as_loader(data, batch_size=batch_size, shuffle=False, name="calibration")
    n = 0
    for batch in batches:
        if limit is not None and n >= limit:
            return
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if x.shape[0] == 0:
            continue
        yield x
        n += 1
    if n == 0:
        raise AicomputeError("the calibration data is empty; pass at least one batch of inputs")


def _check_finite(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise AicomputeError(f"parameter {name!r} holds NaN or inf; quantize a model with finite weights")


def _check_names(model: nn.Module, names: Iterable[str], what: str) -> None:
    known = dict(model.named_modules())
    for name in names:
        if name not in known:
            raise AicomputeError(f"{what} names layer {name!r}, which the model does not have"
                                 f"{did_you_mean(name, known)}")


def prepare_model(model: nn.Module, config: QuantConfig) -> tuple[nn.Module, nn.Module, PrepareReport]:
    """(float copy with BN folded, prepared copy with quantizers, report), per-layer bits applied."""
    _check_finite(model)
    _check_names(model, config.skip, "skip")
    _check_names(model, config.layer_bits, "layer_bits")
    float_model = copy.deepcopy(model).eval()
    if config.fold_bn:
        float_model = fold_batchnorm(float_model)
    prepared, report = prepare(float_model, config.spec())
    layers = quant_layers(prepared)
    for name, bits in config.layer_bits.items():
        if name in layers and layers[name].weight_quantizer is not None:
            layers[name].weight_quantizer = FakeQuantizer(config.weight_scheme(bits), config.weight_calib)
    return float_model, prepared, report


_PLANS: dict[tuple, QuantPlan] = {}


def calibrate_and_freeze(float_model: nn.Module, prepared: nn.Module, calib_data: Any, config: QuantConfig,
                         batch_size: int) -> None:
    """Calibrate (when activations are quantized) and freeze, quantizing what ONNX Runtime's integer kernels
    need besides the layers' inputs (:func:`.plan.quant_plan`): the input and output of junction blocks
    (``config.junctions``), and the outputs of exactly the layers that need their own output quantizer (a conv
    feeding a residual add; not a Linear whose logits leave ORT's QGemm in float). So the simulation computes
    what the exported model will."""
    if config.act_bits is None:
        freeze(prepared)
        return
    batches = list(calibration_batches(calib_data, batch_size=batch_size, limit=config.calib_batches))
    plan = _plan(float_model, batches[0][:1], list(quant_layers(prepared)), config)
    attach_junction_quantizers(prepared, plan.junctions, config.act_scheme(), config.calib)
    calibrate(prepared, batches)
    freeze(prepared)
    quantize_outputs(prepared, plan.output_layers)


def _plan(float_model: nn.Module, example: torch.Tensor, names: list[str], config: QuantConfig) -> QuantPlan:
    """:func:`~.plan.quant_plan`, cached by the model's structure (it exports the model)."""
    key = (repr(float_model), tuple(example.shape), example.dtype, tuple(names), config.junctions, config.skip)
    if key not in _PLANS:
        _PLANS[key] = quant_plan(float_model, example, names, junctions=config.junctions, skip=config.skip)
    return _PLANS[key]


def layer_records(prepared: nn.Module, config: QuantConfig) -> list[LayerQuant]:
    out = []
    for name, layer in quant_layers(prepared).items():
        w_qp = layer.weight_qparams() if layer.weight_quantizer is not None else None
        in_qp = layer.input_qparams() if layer.input_quantizer is not None else None
        error = None
        if w_qp is not None:
            with torch.no_grad():
                w = layer.weight.detach()
                error = float((layer.quantized_weight() - w).norm() / w.norm().clamp_min(1e-12))
        out.append(LayerQuant(
            name=name, type=type(layer.module).__name__,
            weight_bits=config.layer_bits.get(name, config.bits) if w_qp is not None else None,
            act_bits=config.act_bits if in_qp is not None else None,
            weight_rel_error=error, weight_qparams=w_qp, input_qparams=in_qp,
        ))  # fmt: skip
    return out


def accuracy_of(model: nn.Module, data: Any, batch_size: int) -> float | None:
    from aicompute.train import evaluate

    return evaluate(model, data, batch_size=batch_size).accuracy


def quantize(
    model: nn.Module,
    calib_data: Any,
    config: QuantConfig | None = None,
    *,
    eval_data: Any = None,
    batch_size: int = 64,
) -> QuantResult:
    """Post-training quantization of ``model`` calibrated on ``calib_data``; accuracy on ``eval_data``."""
    config = config or QuantConfig()
    float_model, prepared, report = prepare_model(model, config)
    if not quant_layers(prepared):
        raise AicomputeError(f"{type(model).__name__} has no Conv or Linear layer to quantize "
                             f"(kept float: {report.unsupported or 'everything'})")
    calibrate_and_freeze(float_model, prepared, calib_data, config, batch_size)
    prepared.eval()
    result = QuantResult(prepared, float_model, config, layer_records(prepared, config), report)
    if eval_data is not None:
        result.float_accuracy = accuracy_of(float_model, eval_data, batch_size)
        result.accuracy = accuracy_of(prepared, eval_data, batch_size)
    return result


def layer_names(model: nn.Module, config: QuantConfig | None = None) -> list[str]:
    """Names of the layers ``quantize`` would quantize in ``model``."""
    _, prepared, _ = prepare_model(model, config or QuantConfig())
    return list(quant_layers(prepared))

