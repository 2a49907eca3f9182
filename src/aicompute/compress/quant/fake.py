"""Fake quantization for training: the straight-through estimator (STE), LSQ's learned step size, and the
quantizer modules that observe, then fake-quantize, a tensor.

Fake quantization computes ``dequantize(quantize(x))`` in float, so a network sees the rounding and clipping
error of the integer grid while it still runs (and trains) in float. ``round`` has zero gradient almost
everywhere, so the backward pass needs a rule:

* **Clipped STE** (:func:`fake_quantize`): the gradient passes through unchanged where ``x`` lies inside
  the grid's range in the real domain, ``(qmin − Z)·S ≤ x ≤ (qmax − Z)·S`` (``−α ≤ x ≤ α`` for binary),
  and is 0 where the quantizer saturates. torch's ``fake_quantize_per_*_affine`` tests the *rounded* code instead, so
  it also passes gradients for x up to half a step beyond either end; elsewhere the two agree.
* **LSQ** (:func:`lsq_fake_quantize`, Esser et al., "Learned Step Size Quantization", ICLR 2020): the same
  STE for x, and a gradient for the step size s, with ``v = x/s`` (plus the zero point Z when there is one)::

      ∂x̂/∂s = round(v) − v      if qmin ≤ v ≤ qmax   (inside)
              qmin − Z           if v < qmin           (clipped low)
              qmax − Z           if v > qmax           (clipped high)

  scaled by ``g = 1 / √(n · qmax)`` (n: elements per step size; features per sample for activations). A
  learned zero point (LSQ+) gets ``∂x̂/∂Z = 0`` inside and ``−s`` where clipped, scaled by g too. torch's
  ``_fake_quantize_learnable_per_*_affine`` computes the same with its rounded-code test: the two differ only
  on the half step beyond each end of the grid.

Forward values are exactly :meth:`QParams.fake_quantize`'s (``clamp(round_half_even(x·(1/S)) + Z)``, then
``(q − Z)·S``, in float32), which equal torch's ``fake_quantize_per_tensor_affine`` / ``per_channel_affine``.

Quantizer modules (both start in ``"calibrate"`` mode):

* :class:`FakeQuantizer` — a fixed scale: in ``"calibrate"`` mode it feeds each batch to its observer and
  returns x unchanged; :meth:`~Quantizer.freeze` computes the parameters once and switches to ``"quantize"``
  mode, where it fake-quantizes with them (clipped STE).
* :class:`LSQQuantizer` — a learned scale (and optionally zero point) as ``nn.Parameter``\\ s, initialised
  from the data it calibrated on (``2·mean|x|/√qmax``, LSQ's rule, or an observer's range).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from aicompute.compress.quant.observers import MinMaxObserver, Observer, make_observer
from aicompute.compress.quant.qparams import QParams, QScheme
from aicompute.errors import AicomputeError

__all__ = ["MODES", "fake_quantize", "lsq_fake_quantize", "Quantizer", "FakeQuantizer", "LSQQuantizer"]

MODES = ("calibrate", "quantize")
"""Quantizer modes: observe and pass x through; fake-quantize with the frozen (or learned) parameters."""

_EPS = torch.finfo(torch.float32).eps  # the floor on a scale, as in qparams


def _along(param: Tensor, x: Tensor, axis: int | None) -> Tensor:
    """A 0-d or (C,) parameter shaped to broadcast against ``x`` with C at ``axis``, in float32 on x's device."""
    param = param.to(device=x.device, dtype=torch.float32)
    if axis is None:
        return param.reshape(())
    if not -x.dim() <= axis < x.dim() or x.shape[axis] != param.numel():
        raise AicomputeError(
            f"per-channel parameters for {param.numel()} channels along axis {axis} do not fit a tensor of shape "
            f"{tuple(x.shape)}"
        )
    shape = [1] * x.dim()
    shape[axis] = -1
    return param.reshape(shape)  # (1, .., C, .., 1)


def _sum_to(grad: Tensor, shape: torch.Size, axis: int | None) -> Tensor:
    """Sum a per-element gradient down to a parameter's shape: everything (per tensor) or all but ``axis``."""
    if axis is None:
        return grad.sum().reshape(shape)
    dims = [d for d in range(grad.dim()) if d != axis % grad.dim()]
    return grad.sum(dim=dims).reshape(shape)  # (C,)


# --- the clipped straight-through estimator ------------------------------------------------------------


class _STEFakeQuantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, qparams: QParams) -> Tensor:
        ctx.save_for_backward(_inside(x, qparams))
        return qparams.fake_quantize(x)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:
        (inside,) = ctx.saved_tensors
        return grad_out * inside, None


def _inside(x: Tensor, qparams: QParams) -> Tensor:
    """Where ``x`` lies in the grid's real-domain range: ``qmin ≤ x·(1/S) + Z ≤ qmax`` (bool, x's shape)."""
    v = x.detach().float() * (1.0 / _along(qparams.scale, x, qparams.axis)) + _along(
        qparams.zero_point, x, qparams.axis
    )
    return (v >= qparams.qmin) & (v <= qparams.qmax)


def fake_quantize(x: Tensor, qparams: QParams) -> Tensor:
    """``qparams.fake_quantize(x)`` with the clipped straight-through gradient (1 inside the range, 0 outside).

    Per tensor or per channel as ``qparams`` says; binary parameters pass gradients where ``|x| ≤ α``.
    ``qparams`` are constants here: for learned ones use :func:`lsq_fake_quantize`.
    """
    if not isinstance(qparams, QParams):
        raise AicomputeError(f"fake_quantize needs QParams, got {type(qparams).__name__}")
    if not x.is_floating_point():
        raise AicomputeError(f"fake_quantize takes a floating-point tensor, got {x.dtype}")
    if not (x.requires_grad and torch.is_grad_enabled()):
        return qparams.fake_quantize(x)  # inference: no mask to keep
    return _STEFakeQuantize.apply(x, qparams)


# --- LSQ: learned step size ----------------------------------------------------------------------------


class _LSQFakeQuantize(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        scale: Tensor,
        zero_point: Tensor,
        qmin: int,
        qmax: int,
        axis: int | None,
        grad_scale: float,
    ) -> Tensor:
        s = _along(scale.detach().clamp_min(_EPS), x, axis)
        z = _along(zero_point.detach().round().clamp(qmin, qmax), x, axis)
        v = x.detach().float() * (1.0 / s)  # x/s as QParams computes it
        out = (torch.clamp(torch.round(v) + z, qmin, qmax) - z) * s
        ctx.save_for_backward(v, s, z)
        ctx.grid, ctx.axis, ctx.grad_scale = (qmin, qmax), axis, grad_scale
        ctx.param_shapes = (scale.shape, scale.dtype), (zero_point.shape, zero_point.dtype)
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        v, s, z = ctx.saved_tensors
        (scale_shape, scale_dtype), (zero_shape, zero_dtype) = ctx.param_shapes
        qmin, qmax = ctx.grid
        low, high = v + z < qmin, v + z > qmax
        inside = ~(low | high)
        g = grad_out.float()
        grad_x = grad_scale_s = grad_z = None
        if ctx.needs_input_grad[0]:
            grad_x = (g * inside).to(grad_out.dtype)
        if ctx.needs_input_grad[1]:
            d_scale = torch.where(low, qmin - z, torch.where(high, qmax - z, torch.round(v) - v))
            grad_scale_s = (_sum_to(g * d_scale, scale_shape, ctx.axis) * ctx.grad_scale).to(scale_dtype)
        if ctx.needs_input_grad[2]:
            d_zero = torch.where(inside, torch.zeros_like(s), -s)
            grad_z = (_sum_to(g * d_zero, zero_shape, ctx.axis) * ctx.grad_scale).to(zero_dtype)
        return grad_x, grad_scale_s, grad_z, None, None, None, None


def lsq_fake_quantize(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor | float,
    qmin: int,
    qmax: int,
    *,
    axis: int | None = None,
    grad_scale: float = 1.0,
) -> Tensor:
    """Fake-quantize ``x`` with a learnable ``scale`` (and ``zero_point``), with LSQ's gradients.

    ``scale`` and ``zero_point`` are 0-d (or one element) per tensor, ``(C,)`` per channel along ``axis``.
    The forward pass floors the scale at ε and rounds and clamps the zero point to the grid (the gradients
    flow to the raw values). ``grad_scale`` multiplies the scale's and zero point's gradients (LSQ's g).
    """
    if not x.is_floating_point():
        raise AicomputeError(f"lsq_fake_quantize takes a floating-point tensor, got {x.dtype}")
    if not (isinstance(qmin, int) and isinstance(qmax, int) and qmin < qmax):
        raise AicomputeError(f"lsq_fake_quantize needs integer qmin < qmax, got [{qmin!r}, {qmax!r}]")
    if not isinstance(zero_point, Tensor):
        zero_point = torch.full(scale.shape, float(zero_point), device=scale.device)
    zero_point = zero_point.to(torch.float32)  # the same tensor (and its gradient) when already float32
    expected = 1 if axis is None else x.shape[axis] if -x.dim() <= axis < x.dim() else None
    if scale.numel() != expected or zero_point.numel() != expected:
        where = "per tensor" if axis is None else f"per channel along axis {axis}"
        raise AicomputeError(
            f"scale {tuple(scale.shape)} and zero point {tuple(zero_point.shape)} must have one element {where} "
            f"of a tensor shaped {tuple(x.shape)}"
        )
    return _LSQFakeQuantize.apply(x, scale, zero_point, qmin, qmax, axis, float(grad_scale))


# --- quantizer modules ---------------------------------------------------------------------------------


class Quantizer(nn.Module):
    """Observe a tensor in ``"calibrate"`` mode, fake-quantize it in ``"quantize"`` mode.

    Subclasses define :meth:`_quantize` and :meth:`_freeze`; the mode and :attr:`qparams` are their
    shared interface (what :mod:`~aicompute.compress.quant.modules` and exporters read).
    """

    def __init__(self, scheme: QScheme, observer: Observer) -> None:
        super().__init__()
        _check_scheme(scheme, type(self).__name__)
        if observer.axis != scheme.axis:
            raise AicomputeError(
                f"the observer works along axis {observer.axis} but the scheme along axis {scheme.axis}; "
                "build the observer with the scheme's axis"
            )
        self.scheme = scheme
        self.observer = observer
        self._mode = "calibrate"

    @property
    def mode(self) -> str:
        """``"calibrate"`` (observe, pass through) or ``"quantize"`` (fake-quantize)."""
        return self._mode

    @property
    def has_data(self) -> bool:
        """Whether the observer has seen at least one tensor."""
        return self.observer.num_batches > 0

    def observe(self, x: Tensor) -> Quantizer:
        """Add ``x`` (detached) to the observer's statistics; returns ``self``."""
        self.observer.observe(x.detach())
        return self

    def freeze(self) -> Quantizer:
        """Fix the parameters from what was observed and switch to ``"quantize"`` mode; returns ``self``."""
        if self._mode == "calibrate":
            self._freeze()
            self._mode = "quantize"
        return self

    def forward(self, x: Tensor) -> Tensor:
        if self._mode == "calibrate":
            self.observe(x)
            return x
        return self._quantize(x)

    @property
    def qparams(self) -> QParams:
        raise NotImplementedError

    def _freeze(self) -> None:
        raise NotImplementedError

    def _quantize(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        s = self.scheme
        grain = "per-tensor" if s.axis is None else f"per-channel(axis={s.axis})"
        sym = "symmetric" if s.symmetric else "affine"
        sign = "signed" if s.signed else "unsigned"
        return f"bits={s.bits}, {sym}, {sign}, {grain}, observer={self.observer.name}, mode={self._mode}"


def _check_scheme(scheme: object, who: str) -> QScheme:
    if not isinstance(scheme, QScheme):
        raise AicomputeError(f"{who} needs a QScheme, e.g. QScheme(bits=8), got {type(scheme).__name__}")
    return scheme


def _observer(scheme: QScheme, observer: str | Observer, options: dict[str, Any], who: str) -> Observer:
    _check_scheme(scheme, who)
    if isinstance(observer, Observer):
        if options:
            raise AicomputeError("observer options go to make_observer: pass a method name, not an Observer, with them")
        return observer
    if scheme.axis is not None:
        options = {"axis": scheme.axis, **options}
    return make_observer(observer, **options)


class FakeQuantizer(Quantizer):
    """A fixed-scale fake quantizer: ``observer`` ranges in ``"calibrate"`` mode, frozen :class:`QParams` after.

    ``observer`` is an :class:`Observer` built with the scheme's axis, or a method name for
    :func:`make_observer` with its ``observer_options``. The frozen parameters travel in the state dict
    (``_extra_state``), so a loaded checkpoint quantizes as the saved one did; the observer's statistics do not.
    """

    def __init__(self, scheme: QScheme, observer: str | Observer = "minmax", **observer_options: Any) -> None:
        super().__init__(scheme, _observer(scheme, observer, observer_options, "FakeQuantizer"))
        self._frozen: QParams | None = None

    @property
    def qparams(self) -> QParams:
        """The frozen parameters; before :meth:`freeze`, those the observer would give now."""
        return self._frozen if self._frozen is not None else self.observer.qparams(self.scheme)

    def _freeze(self) -> None:
        self._frozen = self.observer.qparams(self.scheme)

    def _quantize(self, x: Tensor) -> Tensor:
        return fake_quantize(x, self._frozen)

    def get_extra_state(self) -> dict[str, Any]:
        return {"mode": self._mode, "qparams": None if self._frozen is None else self._frozen.to_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._mode = state["mode"]
        self._frozen = None if state["qparams"] is None else QParams.from_dict(state["qparams"])


class LSQQuantizer(Quantizer):
    """Learned Step Size Quantization: the scale (and, with ``learn_zero_point``, the zero point) is an
    ``nn.Parameter`` trained with the task loss through :func:`lsq_fake_quantize`.

    * ``channels``: the number of scales of a per-channel scheme (``weight.shape[scheme.axis]``), needed up
      front so the parameters exist when the optimizer is built.
    * ``init``: ``"lsq"`` sets ``s = 2·mean|x|/√qmax`` (the paper's rule) over what was calibrated, with the
      scheme's zero point (0 or the unsigned midpoint when symmetric; the one that maps the minimum to qmin
      when affine); an observer name (``"minmax"``, ``"percentile"``, ...) takes that observer's parameters.
    * ``activation``: ``x`` is a batch (dim 0 = samples), so the gradient scale counts the features of one
      sample (the paper's N_F); otherwise every element (N_W for weights).

    :meth:`freeze` initialises the parameters from the calibration data; with none, the first batch seen in
    ``"quantize"`` mode initialises them, so QAT may start without a calibration pass. A 1-bit scheme has no
    step to learn: use :class:`FakeQuantizer` (α = mean |x|) for binary.
    """

    def __init__(
        self,
        scheme: QScheme,
        *,
        channels: int | None = None,
        init: str = "lsq",
        learn_zero_point: bool = False,
        activation: bool = False,
    ) -> None:
        if _check_scheme(scheme, "LSQQuantizer").binary:
            raise AicomputeError(
                "LSQ learns the step of a multi-level grid; 1 bit is binary (±mean|x|): use "
                "FakeQuantizer(QScheme(bits=1)) or bits ≥ 2"
            )
        observer = MinMaxObserver(axis=scheme.axis) if init == "lsq" else _observer(scheme, init, {}, "LSQQuantizer")
        super().__init__(scheme, observer)
        if learn_zero_point and scheme.symmetric:
            raise AicomputeError("a symmetric scheme fixes the zero point; use symmetric=False to learn it")
        if scheme.axis is None:
            shape: tuple[int, ...] = ()
        elif isinstance(channels, int) and not isinstance(channels, bool) and channels >= 1:
            shape = (channels,)
        else:
            raise AicomputeError(
                f"a per-channel LSQ scheme needs channels = the tensor's size along axis {scheme.axis}, "
                f"got {channels!r}"
            )
        self.init, self.activation = init, bool(activation)
        self.scale = nn.Parameter(torch.ones(shape))
        zero_point = torch.zeros(shape)
        if learn_zero_point:
            self.zero_point = nn.Parameter(zero_point)
        else:
            self.register_buffer("zero_point", zero_point)
        self._initialized = False

    @property
    def qparams(self) -> QParams:
        """The current (learned) parameters, with the zero point rounded and clamped as the forward pass uses it."""
        if not self._initialized:
            raise AicomputeError(
                "LSQQuantizer has no scale yet: calibrate it and freeze(), or run one batch in quantize mode"
            )
        qmin, qmax = self.scheme.qrange
        scale = self.scale.detach().clamp_min(_EPS).cpu()
        zero_point = self.zero_point.detach().round().clamp(qmin, qmax).cpu()
        return QParams(scale, zero_point, qmin, qmax, axis=self.scheme.axis)

    def _freeze(self) -> None:
        if self.has_data:
            self._initialize()

    def _initialize(self) -> None:
        if self.init == "lsq":
            qp = self._lsq_init()
        else:
            qp = self.observer.qparams(self.scheme)
        with torch.no_grad():
            self.scale.copy_(qp.scale.reshape(self.scale.shape))
            self.zero_point.copy_(qp.zero_point.reshape(self.zero_point.shape))
        self._initialized = True

    def _lsq_init(self) -> QParams:
        """``s = 2·mean|x|/√qmax`` with the scheme's zero point for that scale."""
        qmin, qmax = self.scheme.qrange
        scale = (2.0 * self.observer.mean_abs() / math.sqrt(qmax)).clamp_min(_EPS)
        if self.scheme.symmetric:
            midpoint = 0 if self.scheme.signed else (qmin + qmax + 1) // 2
            zero_point = torch.full_like(scale, midpoint, dtype=torch.int64)
        else:
            lo, _ = self.observer.clip_range(self.scheme)
            zero_point = torch.clamp(qmin - torch.round(torch.clamp(lo, max=0.0) / scale), qmin, qmax)
        return QParams(scale, zero_point, qmin, qmax, axis=self.scheme.axis)

    def grad_scale(self, x: Tensor) -> float:
        """LSQ's ``g = 1/√(n·qmax)``, n the elements per scale (per sample for activations)."""
        n = x.numel() / self.scale.numel()
        if self.activation and x.dim() > 1:
            n /= x.shape[0]
        return 1.0 / math.sqrt(max(n, 1.0) * self.scheme.qrange[1])

    def _quantize(self, x: Tensor) -> Tensor:
        if not self._initialized:
            self.observe(x)
            self._initialize()
        qmin, qmax = self.scheme.qrange
        return lsq_fake_quantize(
            x, self.scale, self.zero_point, qmin, qmax, axis=self.scheme.axis, grad_scale=self.grad_scale(x)
        )

    def get_extra_state(self) -> dict[str, Any]:
        return {"mode": self._mode, "initialized": self._initialized}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._mode, self._initialized = state["mode"], bool(state["initialized"])
