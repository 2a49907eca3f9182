"""Quantized layer wrappers and the module surgery around them: prepare, calibrate, freeze.

A :class:`QuantModule` wraps a float ``nn.Conv1d/2d/3d`` or ``nn.Linear`` and shares its parameters (the same
``nn.Parameter`` objects, never a copy): its forward fake-quantizes the input with ``input_quantizer`` and the
weight with ``weight_quantizer`` (either may be None: weight-only when there is no input quantizer), then runs
the float layer's own computation on the results. Once input and weight are both quantized, the bias is
rounded to the int32 grid of step ``s_in · s_w`` (:func:`int32_bias`), which is what the QDQ export stores and
ORT's integer kernels add to their accumulator; otherwise it stays float. An optional ``output_quantizer``
(per tensor, the activation scheme) observes the layer's output during calibration and fake-quantizes it once
frozen, for every reader, **only** where ``layer.quantize_output`` is True — the layers whose output ORT
would otherwise leave in float (a residual ``Add``, a ``Concat``, a conv's graph output:
:func:`~aicompute.compress.quant.export.layers_needing_output_quant`); set it with :func:`quantize_outputs`.

The post-training flow on a copy of the user's model (the input model is never modified)::

    folded = fold_batchnorm(model)                    # Conv → BN pairs become one conv (quant/fold.py)
    prepared, report = prepare(folded, QuantSpec(QScheme(axis=0), QScheme(symmetric=False, signed=False)))
    calibrate(prepared, batches)                      # input observers see float activations
    freeze(prepared)                                  # parameters fixed, "quantize" mode
    quantize_outputs(prepared, layers_needing_output_quant(folded, example, quant_layers(prepared)))
    {name: (layer.weight_qparams(), layer.input_qparams(), layer.output_qparams())
     for name, layer in quant_layers(prepared).items()}

Conventions:

* During calibration the network runs in float: input (and output) quantizers observe, weights are used as
  they are. A weight quantizer never sees batches: its range is the weight's own, observed once when the layer
  is frozen. An output quantizer observes exactly while the layer's input quantizer calibrates, and freezes
  with it; one that saw no data stays unfrozen, and then ``quantize_output`` cannot be switched on.
* ``quantize_output`` travels in the state dict (the wrapper's ``_extra_state``), as each quantizer's mode and
  frozen parameters do, so a loaded checkpoint computes what the saved model did.
* Layer names are the float model's (``named_modules()``): a wrapper takes the place of the layer it wraps,
  which lives on as its ``module`` child.
* Supported layers are exactly ``nn.Conv1d``, ``nn.Conv2d``, ``nn.Conv3d`` and ``nn.Linear`` (a subclass may
  change the computation, so it is not wrapped); every other module that holds parameters stays float and is
  listed in :attr:`PrepareReport.unsupported`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import KW_ONLY, asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aicompute.checks import did_you_mean
from aicompute.compress.quant.fake import FakeQuantizer, LSQQuantizer, Quantizer
from aicompute.compress.quant.junctions import junction_quantizers
from aicompute.compress.quant.observers import OBSERVERS
from aicompute.compress.quant.qparams import QParams, QScheme
from aicompute.errors import AicomputeError
from aicompute.modes import eval_mode

__all__ = [
    "QuantSpec", "QuantModule", "QuantConv1d", "QuantConv2d", "QuantConv3d", "QuantLinear", "PrepareReport",
    "prepare", "calibrate", "freeze", "quant_layers", "quantize_outputs", "int32_bias",
]  # fmt: skip

_INT32 = torch.iinfo(torch.int32)


# --- what to quantize ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuantSpec:
    """How :func:`prepare` quantizes each supported layer.

    The defaults are torch's: int8 symmetric weights per output channel, uint8 affine activations per tensor.
    """

    weight: QScheme | None = QScheme(axis=0)
    """Weight scheme; None keeps weights float (activation-only). ``axis`` counts in the torch weight (0 = outputs)."""
    activation: QScheme | None = QScheme(symmetric=False, signed=False)
    """Scheme of each wrapped layer's input (and output, where quantized), per tensor; None for weight-only."""
    _: KW_ONLY
    weight_observer: str = "minmax"
    """Calibration method of the weights (an :data:`OBSERVERS` name; ``"lsq"`` too when learnable)."""
    activation_observer: str = "minmax"
    """Calibration method of the activations."""
    learnable: bool = False
    """LSQ quantizers (learned step size, initialised by the observer, or LSQ's rule for ``"lsq"``) for QAT."""
    skip: tuple[str, ...] = ()
    """Module names to keep float; a name covers everything under it (``"layer1"`` skips ``"layer1.0.conv1"``)."""

    def __post_init__(self) -> None:
        for role in ("weight", "activation"):
            scheme = getattr(self, role)
            if scheme is not None and not isinstance(scheme, QScheme):
                raise AicomputeError(f"QuantSpec.{role} must be a QScheme or None, got {type(scheme).__name__}")
        if self.weight is None and self.activation is None:
            raise AicomputeError("QuantSpec quantizes nothing: give a weight scheme, an activation scheme or both")
        if self.activation is not None and self.activation.axis is not None:
            raise AicomputeError("activations are quantized per tensor: use an activation QScheme with axis=None")
        if not isinstance(self.learnable, bool):
            raise AicomputeError(f"QuantSpec.learnable must be True or False, got {self.learnable!r}")
        methods = [*OBSERVERS, "lsq"] if self.learnable else list(OBSERVERS)
        for role in ("weight_observer", "activation_observer"):
            method = getattr(self, role)
            if method not in methods:
                raise AicomputeError(
                    f"QuantSpec.{role}={method!r} is not a calibration method{did_you_mean(str(method), methods)}; "
                    f"choose one of {', '.join(methods)}"
                )
        if self.weight is not None and self.weight.axis is not None and self.weight_observer != "lsq":
            if not OBSERVERS[self.weight_observer].supports_per_channel:
                raise AicomputeError(
                    f"the {self.weight_observer!r} observer picks one range per tensor but the weight scheme is "
                    "per-channel; use weight_observer='minmax' (or 'moving_average'), or QScheme(axis=None)"
                )
        skip = (self.skip,) if isinstance(self.skip, str) else self.skip
        if not isinstance(skip, (tuple, list)) or not all(isinstance(name, str) for name in skip):
            raise AicomputeError(f"QuantSpec.skip must be module names (strings), got {self.skip!r}")
        object.__setattr__(self, "skip", tuple(skip))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skip"] = list(self.skip)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantSpec:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise AicomputeError(f"unknown QuantSpec field(s) {sorted(unknown)}; fields are {[f.name for f in fields(cls)]}")
        d = dict(d)
        for role in ("weight", "activation"):
            if d.get(role) is not None:
                d[role] = QScheme.from_dict(d[role])
        d["skip"] = tuple(d.get("skip", ()))
        return cls(**d)


def _quantizer(
    scheme: QScheme, method: str, learnable: bool, *, channels: int | None = None, activation: bool = False
) -> Quantizer:
    if learnable:
        return LSQQuantizer(scheme, channels=channels, init=method, activation=activation)
    return FakeQuantizer(scheme, method)


# --- the wrappers --------------------------------------------------------------------------------------


def int32_bias(bias: Tensor, input_qparams: QParams, weight_qparams: QParams) -> Tensor:
    """``bias`` rounded to the grid of step ``s_in · s_w`` (per output channel when the weight's scales are):
    ``round(b / (s_in · s_w)) · s_in · s_w``, with the step computed in float32 as the export writes it.

    This is the bias a QDQ export stores as int32 codes and ORT adds to the integer accumulator. The gradient
    reaches ``bias`` straight through; a bias whose codes would overflow int32 is returned as it is (the export
    keeps such a bias float too).
    """
    scale = input_qparams.scale.float().to(bias.device) * weight_qparams.scale.float().to(bias.device)  # () or (C,)
    codes = torch.round(bias.detach().double() / scale.double())
    if codes.numel() and (codes.min() < _INT32.min or codes.max() > _INT32.max):
        return bias
    on_grid = (codes * scale.double()).to(bias.dtype)
    return bias + (on_grid - bias.detach())


def _check_weight_axis(module: nn.Module, axis: int | None) -> int | None:
    shape = tuple(module.weight.shape)
    if axis is not None and not -len(shape) <= axis < len(shape):
        raise AicomputeError(f"weight channel axis {axis} is out of range for a weight of shape {shape}; use 0")
    return axis


class QuantModule(nn.Module):
    """A float layer whose input and weight pass through fake quantizers, and its output too where
    ``quantize_output`` is True (it needs an ``output_quantizer``). Subclasses set ``float_type``."""

    float_type: ClassVar[type[nn.Module]]

    def __init__(
        self,
        module: nn.Module,
        weight_quantizer: Quantizer | None,
        input_quantizer: Quantizer | None,
        output_quantizer: Quantizer | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if type(module) is not self.float_type:
            raise AicomputeError(f"{name} wraps an nn.{self.float_type.__name__}, got {type(module).__name__}")
        if weight_quantizer is None and input_quantizer is None:
            raise AicomputeError(f"{name} needs a weight quantizer, an input quantizer or both")
        roles = (("weight_quantizer", weight_quantizer), ("input_quantizer", input_quantizer))
        for role, q in (*roles, ("output_quantizer", output_quantizer)):
            if q is not None and not isinstance(q, Quantizer):
                raise AicomputeError(f"{role} must be a FakeQuantizer or LSQQuantizer, got {type(q).__name__}")
        if weight_quantizer is not None:
            _check_weight_axis(module, weight_quantizer.scheme.axis)
        if output_quantizer is not None:
            if input_quantizer is None:
                raise AicomputeError(
                    f"{name} has an output quantizer but no input quantizer: outputs are calibrated with the inputs, "
                    "so quantize the input too (an activation scheme)"
                )
            if output_quantizer.scheme.axis is not None:
                raise AicomputeError("the output quantizer works per tensor: build it with a QScheme with axis=None")
        self.module = module  # shares the float layer's parameters
        self.weight_quantizer = weight_quantizer
        self.input_quantizer = input_quantizer
        self.output_quantizer = output_quantizer
        self._quantize_output = False
        self.train(module.training)

    @classmethod
    def from_float(cls, module: nn.Module, spec: QuantSpec) -> QuantModule:
        """Wrap ``module`` with the quantizers ``spec`` asks for."""
        weight_q = input_q = None
        if spec.weight is not None:
            axis = _check_weight_axis(module, spec.weight.axis)
            channels = None if axis is None else module.weight.shape[axis]
            weight_q = _quantizer(spec.weight, spec.weight_observer, spec.learnable, channels=channels)
        output_q = None
        if spec.activation is not None:
            input_q = _quantizer(spec.activation, spec.activation_observer, spec.learnable, activation=True)
            # a fixed scale even for learnable specs ("lsq" is an initialisation rule, not an observer: minmax)
            observer = spec.activation_observer if spec.activation_observer in OBSERVERS else "minmax"
            output_q = FakeQuantizer(spec.activation, observer)
        return cls(module, weight_q, input_q, output_q)

    @property
    def weight(self) -> Tensor:
        return self.module.weight

    @property
    def bias(self) -> Tensor | None:
        return self.module.bias

    def quantized_weight(self) -> Tensor:
        """The weight the forward pass uses: fake-quantized once frozen, float while calibrating."""
        q = self.weight_quantizer
        if q is None or q.mode == "calibrate":
            return self.module.weight
        return q(self.module.weight)

    def quantized_bias(self) -> Tensor | None:
        """The bias the forward pass uses: on the int32 grid (:func:`int32_bias`) once the input and the weight
        are both frozen, as ORT's integer kernels add it; float before, and for weight-only layers."""
        bias, wq, iq = self.module.bias, self.weight_quantizer, self.input_quantizer
        if bias is None or wq is None or iq is None or wq.mode != "quantize" or iq.mode != "quantize":
            return bias
        return int32_bias(bias, iq.qparams, wq.qparams)

    def _bias_for(self, x: Tensor) -> Tensor | None:
        return self.quantized_bias()

    @property
    def quantize_output(self) -> bool:
        """Whether the forward pass fake-quantizes the output (default False); needs an output quantizer."""
        return self._quantize_output

    @quantize_output.setter
    def quantize_output(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise AicomputeError(f"quantize_output must be True or False, got {value!r}")
        problem = self._output_problem() if value else None
        if problem is not None:
            raise AicomputeError(f"{type(self).__name__} cannot quantize its output: {problem}")
        self._quantize_output = value

    def _output_problem(self) -> str | None:
        """Why the output cannot be quantized, or None."""
        q = self.output_quantizer
        if q is None:
            return "it has no output quantizer (prepared without an activation scheme): prepare with one"
        if q.mode == "calibrate" and self.input_quantizer.mode != "calibrate":
            return "its output saw no calibration data before the layer was frozen: prepare, calibrate and freeze again"
        return None

    def forward(self, x: Tensor) -> Tensor:
        calibrating = self.input_quantizer is not None and self.input_quantizer.mode == "calibrate"
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        y = self._compute(x, self.quantized_weight(), self._bias_for(x))
        q = self.output_quantizer
        if q is None:
            return y
        if calibrating:
            q.observe(y)
            return y
        return q(y) if self._quantize_output and q.mode == "quantize" else y

    def _compute(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def freeze(self) -> QuantModule:
        """Fix the weight's parameters from the current weight and the input's from calibration; returns self."""
        q = self.weight_quantizer
        if q is not None and q.mode == "calibrate":
            q.observe(self.module.weight).freeze()
        if self.input_quantizer is not None:
            self.input_quantizer.freeze()
        q = self.output_quantizer
        if q is not None and q.mode == "calibrate":
            if q.has_data:
                q.freeze()
            elif self._quantize_output:
                raise AicomputeError(
                    f"{type(self).__name__} quantizes its output but the output saw no calibration data: run "
                    "calibrate(prepared, batches) before freeze"
                )
        return self

    def _frozen_qparams(self, q: Quantizer | None) -> QParams | None:
        if q is None:
            return None
        if q.mode != "quantize":
            raise AicomputeError(f"{type(self).__name__} is not frozen yet: call freeze(prepared) after calibration")
        return q.qparams

    def weight_qparams(self) -> QParams | None:
        """The weight's quantization parameters, or None when weights stay float."""
        return self._frozen_qparams(self.weight_quantizer)

    def input_qparams(self) -> QParams | None:
        """The input activation's quantization parameters, or None for a weight-only layer."""
        return self._frozen_qparams(self.input_quantizer)

    def output_qparams(self) -> QParams | None:
        """The output's quantization parameters, or None when the layer does not quantize its output."""
        return self._frozen_qparams(self.output_quantizer) if self._quantize_output else None

    def get_extra_state(self) -> dict[str, Any]:
        return {"quantize_output": self._quantize_output}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._quantize_output = bool(state["quantize_output"])  # the quantizers' own states load after this


class _QuantConv(QuantModule):
    def _compute(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return self.module._conv_forward(x, weight, bias)  # the conv's own padding mode and strides


class QuantConv1d(_QuantConv):
    float_type = nn.Conv1d


class QuantConv2d(_QuantConv):
    float_type = nn.Conv2d


class QuantConv3d(_QuantConv):
    float_type = nn.Conv3d


class QuantLinear(QuantModule):
    float_type = nn.Linear

    def _bias_for(self, x: Tensor) -> Tensor | None:
        # a batch of vectors exports as Gemm, whose bias the export stores as int32 codes; more dimensions
        # export as MatMul + Add, whose bias stays float
        return self.quantized_bias() if x.dim() == 2 else self.module.bias

    def _compute(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)


_WRAPPERS: dict[type[nn.Module], type[QuantModule]] = {
    cls.float_type: cls for cls in (QuantConv1d, QuantConv2d, QuantConv3d, QuantLinear)
}


# --- prepare, calibrate, freeze ------------------------------------------------------------------------


@dataclass
class PrepareReport:
    """What :func:`prepare` did, by module name."""

    quantized: list[str] = field(default_factory=list)
    """Layers wrapped in a :class:`QuantModule`."""
    skipped: list[str] = field(default_factory=list)
    """Supported layers kept float because ``QuantSpec.skip`` named them."""
    unsupported: dict[str, str] = field(default_factory=dict)
    """Other modules holding parameters (name → type), kept float; "" is the model itself."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_skipped(name: str, skip: Iterable[str]) -> bool:
    """Whether module ``name`` is under one of the ``skip`` names (the name itself or a submodule of it)."""
    return any(name == s or name.startswith(s + ".") for s in skip)


def prepare(model: nn.Module, spec: QuantSpec | None = None) -> tuple[nn.Module, PrepareReport]:
    """A copy of ``model`` with every supported layer wrapped for ``spec`` (default :class:`QuantSpec`), and a
    report; the quantizers start in ``"calibrate"`` mode. ``model`` itself is left untouched."""
    if not isinstance(model, nn.Module):
        raise AicomputeError(f"prepare takes an nn.Module, got {type(model).__name__}")
    spec = QuantSpec() if spec is None else spec
    if not isinstance(spec, QuantSpec):
        raise AicomputeError(f"prepare takes a QuantSpec, got {type(spec).__name__}")
    names = dict(model.named_modules())
    if any(isinstance(m, QuantModule) for m in names.values()):
        raise AicomputeError("the model is already prepared (it holds QuantModules); prepare the float model")
    for name in spec.skip:
        if name not in names:
            raise AicomputeError(
                f"QuantSpec.skip names {name!r}, which the model does not have{did_you_mean(name, names)}; "
                "use names from model.named_modules()"
            )
    prepared = copy.deepcopy(model)
    report = PrepareReport()
    wrappers: dict[int, QuantModule] = {}  # by id: a layer registered twice gets one wrapper
    float_ids: set[int] = set()
    for name, module in list(prepared.named_modules(remove_duplicate=False)):
        wrapper_type = _WRAPPERS.get(type(module))
        if wrapper_type is not None and is_skipped(name, spec.skip):
            report.skipped.append(name)
        elif wrapper_type is not None:
            if id(module) not in wrappers:
                wrappers[id(module)] = wrapper_type.from_float(module, spec)
                report.quantized.append(name)
            if name == "":
                return wrappers[id(module)], report
            prepared.set_submodule(name, wrappers[id(module)])
        elif any(True for _ in module.parameters(recurse=False)) and id(module) not in float_ids:
            float_ids.add(id(module))
            report.unsupported[name] = type(module).__name__
    return prepared, report


def quant_layers(prepared: nn.Module) -> dict[str, QuantModule]:
    """The wrapped layers of a prepared model, by name (the float model's names)."""
    return {name: m for name, m in prepared.named_modules() if isinstance(m, QuantModule)}


def _layers_or_fail(prepared: nn.Module, verb: str) -> dict[str, QuantModule]:
    layers = quant_layers(prepared)
    if not layers:
        raise AicomputeError(f"{verb} needs a prepared model (no QuantModule found): call prepare(model, spec) first")
    return layers


def calibrate(prepared: nn.Module, batches: Iterable[Any], *, max_batches: int | None = None) -> nn.Module:
    """Run ``batches`` through ``prepared`` in eval mode without gradients so the input observers see them.

    A batch is a tensor or a ``(inputs, targets, ...)`` tuple/list (a DataLoader's); inputs go to the model's
    device. Updates ``prepared``'s observers in place and returns it. Weight-only models need no batches.
    """
    layers = _layers_or_fail(prepared, "calibrate")
    inputs = [m.input_quantizer for m in layers.values() if m.input_quantizer is not None]
    if any(q.mode != "calibrate" for q in inputs):
        raise AicomputeError("the model is already frozen; calibrate a freshly prepared model, then freeze it")
    if not inputs:
        return prepared  # weight-only: weights are observed by freeze()
    param = next(prepared.parameters(), None)
    device = param.device if param is not None else None
    seen = 0
    with eval_mode(prepared), torch.no_grad():
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
            if not isinstance(x, Tensor):
                raise AicomputeError(
                    f"calibration batches must be tensors or (inputs, targets) pairs, got {type(x).__name__}"
                )
            prepared(x.to(device) if device is not None else x)
            seen += 1
            if max_batches is not None and seen >= max_batches:
                break
    if seen == 0:
        raise AicomputeError("calibrate got no batches; pass a non-empty iterable of input batches (a DataLoader)")
    return prepared


def freeze(prepared: nn.Module) -> nn.Module:
    """Fix every layer's (and junction block's) quantization parameters and switch to ``"quantize"`` mode (in
    place; returns ``prepared``)."""
    layers = _layers_or_fail(prepared, "freeze")
    for name, layer in layers.items():
        q = layer.input_quantizer
        if isinstance(q, FakeQuantizer) and q.mode == "calibrate" and not q.has_data:
            raise AicomputeError(
                f"layer {name!r} has seen no calibration data: run calibrate(prepared, batches) before freeze, "
                "or prepare with QuantSpec(activation=None) for weight-only quantization"
            )
    for layer in layers.values():
        layer.freeze()
    for junction in junction_quantizers(prepared).values():
        junction.freeze()
    return prepared


def quantize_outputs(prepared: nn.Module, names: Iterable[str]) -> nn.Module:
    """Quantize the outputs of exactly the layers ``names`` (``quantize_output`` True there, False elsewhere);
    in place, returns ``prepared``. The names are usually those of ``layers_needing_output_quant`` (in
    :mod:`~aicompute.compress.quant.export`), so the simulation quantizes what ORT's integer kernels will."""
    layers = _layers_or_fail(prepared, "quantize_outputs")
    names = [names] if isinstance(names, str) else list(names)
    for name in names:  # check every name before changing anything
        if name not in layers:
            raise AicomputeError(
                f"quantize_outputs names {name!r}, which is not a quantized layer{did_you_mean(str(name), layers)}; "
                "use names from quant_layers(prepared)"
            )
        problem = layers[name]._output_problem()
        if problem is not None:
            raise AicomputeError(f"layer {name!r} cannot quantize its output: {problem}")
    wanted = set(names)
    for name, layer in layers.items():
        layer.quantize_output = name in wanted
    return prepared
