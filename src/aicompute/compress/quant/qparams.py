"""Quantization parameters: the integer grid, the scale ``S`` and zero point ``Z``, and the maps between
real values ``R`` and integer codes ``Q``.

The seed text's MinMax quantization, in the arithmetic of ``torch.ao.quantization``'s observers::

    S = (Rmax − Rmin) / (Qmax − Qmin)      Z = Qmax − Rmax / S  (= Qmin − Rmin / S)      Q = R / S + Z

Conventions (each matches torch unless it says otherwise):

* **The range always holds 0**: ``Rmin = min(min, 0)``, ``Rmax = max(max, 0)``, so 0.0 (padding, ReLU
  zeros) is represented exactly.
* **Z is an integer**: ``Z = Qmin − round(Rmin / S)``, clamped to ``[Qmin, Qmax]``. The seed's unrounded Z
  (63.75 for R in [−1, 3] on 8 unsigned bits) becomes 64.
* **S ≥ ε** (float32 machine epsilon, as torch), so a constant tensor still gets a usable scale.
* **Symmetric**: ``S = max(|Rmin|, |Rmax|) / ((Qmax − Qmin) / 2)``; ``Z = 0`` when signed, the grid's
  midpoint ``(Qmin + Qmax + 1) // 2`` when unsigned (torch's 128 for quint8; torch's customized-range
  path rounds the midpoint down instead, e.g. 7 rather than 8 on [0, 15]).
* **narrow_range** drops the lowest code (−128 → −127 for int8, 0 → 1 unsigned), so a symmetric signed
  grid is exactly symmetric: ``S = amax / 127``.
* **Quantize** ``q = clamp(round_half_even(x · (1/S)) + Z, Qmin, Qmax)`` with ``1/S`` in float32;
  **dequantize** ``(q − Z) · S``. This is torch's ``fake_quantize_*`` and ``quantize_per_channel``
  arithmetic; ``torch.quantize_per_tensor`` (FBGEMM) rounds *after* adding Z, which differs by one code on
  exact .5 ties when Z is odd.
* **Per-channel** parameters are 1-D tensors of length C laid along ``axis``; per-tensor ones are 0-d.
* **1 bit is binary**: codes are −1 and +1 (there is no code for 0; x ≥ 0 maps to +1) and the values are
  ±α with α = mean |x| (per channel when per-channel), the XNOR-Net scale that minimises ‖x − α·sign(x)‖².
  α comes from the data, not from its range: use :func:`binary_qparams` or an observer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from aicompute.errors import AicomputeError

__all__ = [
    "MAX_BITS",
    "QScheme",
    "QParams",
    "qrange",
    "compute_qparams",
    "binary_qparams",
    "check_data",
    "channel_rows",
]

MAX_BITS = 16
"""Widest integer grid supported; 1 is binary."""

_EPS = torch.finfo(torch.float32).eps  # torch observers' floor on the scale


def _check_bits(bits: object) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= MAX_BITS:
        raise AicomputeError(f"bits must be an integer from 1 (binary) to {MAX_BITS}, got {bits!r}")
    return bits


def qrange(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    """The integer grid ``(qmin, qmax)`` of a ``bits``-wide code.

    Signed: ``[−2^(b−1), 2^(b−1) − 1]``; unsigned: ``[0, 2^b − 1]``; ``narrow`` raises qmin by one.
    One bit is binary: ``(−1, 1)``, whose only codes are −1 and +1; it must be signed and not narrow.
    """
    _check_bits(bits)
    if bits == 1:
        if not signed or narrow:
            raise AicomputeError(
                "1 bit is binary quantization (codes −1 and +1, values ±mean|x|): it is signed and has no "
                "narrow range; use signed=True, narrow_range=False, or bits ≥ 2 for an unsigned grid"
            )
        return -1, 1
    if signed:
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        qmin, qmax = 0, (1 << bits) - 1
    return (qmin + 1, qmax) if narrow else (qmin, qmax)


@dataclass(frozen=True, kw_only=True, slots=True)
class QScheme:
    """How a tensor is quantized: grid width, symmetry, signedness and granularity.

    ``QScheme()`` is torch's qint8 ``per_tensor_symmetric``; ``QScheme(symmetric=False, signed=False)`` its
    quint8 ``per_tensor_affine``; ``QScheme(axis=0)`` per-output-channel weights; ``QScheme(bits=1)`` binary.
    """

    bits: int = 8
    """Code width, 1 (binary) to 16."""
    symmetric: bool = True
    """Range centred on 0 (``max |x|`` sets the scale) rather than spanning ``[min, max]`` (affine)."""
    signed: bool = True
    """Signed grid (int8: −128..127) or unsigned (uint8: 0..255)."""
    axis: int | None = None
    """Channel axis for per-channel parameters (0 for conv/linear weights); None for one per tensor."""
    narrow_range: bool = False
    """Drop the lowest code so a symmetric signed grid is exactly symmetric (−127..127)."""

    def __post_init__(self) -> None:
        for name in ("symmetric", "signed", "narrow_range"):
            if not isinstance(getattr(self, name), bool):
                raise AicomputeError(f"QScheme.{name} must be True or False, got {getattr(self, name)!r}")
        if self.axis is not None and (not isinstance(self.axis, int) or isinstance(self.axis, bool)):
            raise AicomputeError(f"QScheme.axis must be an integer channel axis or None, got {self.axis!r}")
        qrange(self.bits, self.signed, self.narrow_range)  # validates bits and the 1-bit rules
        if self.bits == 1 and not self.symmetric:
            raise AicomputeError(
                "1 bit is binary quantization (values ±mean|x|), which is symmetric; use symmetric=True"
            )

    @property
    def qrange(self) -> tuple[int, int]:
        """``(qmin, qmax)`` of this scheme's grid."""
        return qrange(self.bits, self.signed, self.narrow_range)

    @property
    def binary(self) -> bool:
        """1 bit: codes ±1, values ±mean|x|."""
        return self.bits == 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QScheme:
        unknown = set(d) - {"bits", "symmetric", "signed", "axis", "narrow_range"}
        if unknown:
            raise AicomputeError(
                f"unknown QScheme field(s) {sorted(unknown)}; fields are bits, symmetric, signed, axis, narrow_range"
            )
        return cls(**d)


def _storage_dtype(qmin: int, qmax: int) -> torch.dtype:
    """Smallest torch integer dtype that holds ``[qmin, qmax]``."""
    for dtype in (torch.int8, torch.uint8, torch.int16, torch.int32):
        info = torch.iinfo(dtype)
        if info.min <= qmin and qmax <= info.max:
            return dtype
    raise AssertionError(f"no integer dtype holds [{qmin}, {qmax}]")


@dataclass(frozen=True, eq=False)
class QParams:
    """Scale and zero point of one tensor (0-d each) or of each channel along ``axis`` (1-D, length C).

    ``binary`` marks 1-bit parameters: codes ±1, value ``code · scale`` with ``scale = α = mean|x|``.
    """

    scale: Tensor
    zero_point: Tensor
    qmin: int
    qmax: int
    axis: int | None = None
    binary: bool = False

    def __post_init__(self) -> None:
        scale = torch.as_tensor(self.scale, dtype=torch.float32).detach()
        zero_point = torch.as_tensor(self.zero_point).detach()
        if zero_point.is_floating_point() and not torch.equal(zero_point, zero_point.round()):
            raise AicomputeError(f"zero_point must hold integers, got {zero_point.tolist()}")
        zero_point = zero_point.to(torch.int64)
        if self.axis is None:
            if scale.numel() != 1 or zero_point.numel() != 1:
                raise AicomputeError(
                    f"per-tensor QParams need one scale and one zero point, got {scale.numel()} and "
                    f"{zero_point.numel()}; pass axis=<channel axis> for per-channel parameters"
                )
            scale, zero_point = scale.reshape(()), zero_point.reshape(())
        elif scale.dim() != 1 or scale.shape != zero_point.shape:
            raise AicomputeError(
                f"per-channel QParams need 1-D scale and zero point of equal length, got shapes "
                f"{tuple(scale.shape)} and {tuple(zero_point.shape)}"
            )
        if not self.qmin < self.qmax:
            raise AicomputeError(f"QParams need qmin < qmax, got [{self.qmin}, {self.qmax}]")
        if not (torch.isfinite(scale).all() and (scale > 0).all()):
            raise AicomputeError(f"scale must be finite and > 0, got {scale.tolist()}")
        if ((zero_point < self.qmin) | (zero_point > self.qmax)).any():
            raise AicomputeError(f"zero_point {zero_point.tolist()} lies outside the grid [{self.qmin}, {self.qmax}]")
        if self.binary and ((self.qmin, self.qmax) != (-1, 1) or (zero_point != 0).any()):
            raise AicomputeError("binary QParams have the grid [-1, 1] and zero point 0")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero_point)

    @classmethod
    def for_binary(cls, alpha: Tensor | float, axis: int | None = None) -> QParams:
        """Binary parameters with value ``±alpha`` (floored at ε so an all-zero tensor stays valid)."""
        alpha = torch.as_tensor(alpha, dtype=torch.float32).clamp_min(_EPS)
        return cls(alpha, torch.zeros_like(alpha, dtype=torch.int64), -1, 1, axis=axis, binary=True)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def storage_dtype(self) -> torch.dtype:
        """Integer dtype of :meth:`quantize`'s codes: int8, uint8, int16 or int32."""
        return _storage_dtype(self.qmin, self.qmax)

    def _along_axis(self, param: Tensor, x: Tensor) -> Tensor:
        """``param`` on ``x``'s device, shaped to broadcast against ``x`` (C placed at ``axis``)."""
        param = param.to(x.device)
        if self.axis is None:
            return param
        if not -x.dim() <= self.axis < x.dim() or x.shape[self.axis] != param.numel():
            raise AicomputeError(
                f"per-channel QParams for {param.numel()} channels along axis {self.axis} do not fit a "
                f"tensor of shape {tuple(x.shape)}"
            )
        shape = [1] * x.dim()
        shape[self.axis] = -1
        return param.reshape(shape)  # (1, .., C, .., 1)

    def _codes(self, x: Tensor) -> Tensor:
        """Float32 codes ``clamp(round(x·(1/S)) + Z)`` (torch's order: round, then add Z)."""
        x = x.float()
        if self.binary:
            self._along_axis(self.scale, x)  # checks the channel count
            return torch.where(x < 0, -1.0, torch.where(x >= 0, 1.0, x))  # NaN fails both tests: stays NaN
        inv_scale = 1.0 / self._along_axis(self.scale, x)
        zero_point = self._along_axis(self.zero_point, x)
        return torch.clamp(torch.round(x * inv_scale) + zero_point, self.qmin, self.qmax)

    def quantize(self, x: Tensor) -> Tensor:
        """Integer codes of ``x`` (dtype :attr:`storage_dtype`); round half to even, clamp to the grid."""
        if not x.is_floating_point():
            raise AicomputeError(f"quantize() takes a floating-point tensor, got {x.dtype}")
        if not torch.isfinite(x).all():
            raise AicomputeError("quantize() got NaN or inf values; integer codes exist only for finite numbers")
        return self._codes(x).to(self.storage_dtype)

    def dequantize(self, q: Tensor) -> Tensor:
        """Float32 values ``(q − Z) · S`` of integer codes ``q``."""
        if q.is_floating_point() or q.is_complex():
            raise AicomputeError(f"dequantize() takes integer codes, got {q.dtype}; call quantize() first")
        return self._dequantize_codes(q.float())

    def _dequantize_codes(self, q: Tensor) -> Tensor:
        return (q - self._along_axis(self.zero_point, q)) * self._along_axis(self.scale, q)

    def fake_quantize(self, x: Tensor) -> Tensor:
        """``dequantize(quantize(x))`` in float32, returned in ``x``'s dtype; NaN stays NaN.

        No gradient logic here: ``round`` has zero gradient; the straight-through estimator lives elsewhere.
        """
        return self._dequantize_codes(self._codes(x)).to(x.dtype)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record: floats and ints (lists of them when per-channel)."""
        return {
            "scale": self.scale.tolist(),
            "zero_point": self.zero_point.tolist(),
            "qmin": self.qmin,
            "qmax": self.qmax,
            "axis": self.axis,
            "binary": self.binary,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QParams:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                torch.tensor(d["scale"], dtype=torch.float32),
                torch.tensor(d["zero_point"], dtype=torch.int64),
                int(d["qmin"]),
                int(d["qmax"]),
                axis=d.get("axis"),
                binary=bool(d.get("binary", False)),
            )
        except KeyError as err:
            missing = err.args[0]
            raise AicomputeError(f"QParams record lacks {missing!r}; it needs scale, zero_point, qmin, qmax") from None


def _range_tensor(value: Tensor | float, name: str, axis: int | None) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float32).detach()
    if axis is None:
        if t.numel() != 1:
            raise AicomputeError(f"{name} of a per-tensor scheme must be one number, got shape {tuple(t.shape)}")
        t = t.reshape(())
    elif t.dim() != 1 or t.numel() == 0:
        raise AicomputeError(
            f"{name} of a per-channel scheme must be a 1-D tensor (one value per channel), got shape {tuple(t.shape)}"
        )
    if not torch.isfinite(t).all():
        raise AicomputeError(f"{name} must be finite, got {t.tolist()}; observe finite data")
    return t


def compute_qparams(min_val: Tensor | float, max_val: Tensor | float, scheme: QScheme) -> QParams:
    """MinMax scale and zero point for the range ``[min_val, max_val]`` (0-d, or 1-D per channel).

    Equal to ``torch.ao.quantization`` observers' ``calculate_qparams()`` for the same range and settings
    (see the module docstring for the symmetric-unsigned midpoint).
    """
    if scheme.binary:
        raise AicomputeError(
            "1-bit (binary) parameters come from the data's mean |x|, not its range: "
            "call binary_qparams(x, scheme) or an observer's qparams(scheme)"
        )
    lo = _range_tensor(min_val, "min_val", scheme.axis)
    hi = _range_tensor(max_val, "max_val", scheme.axis)
    if lo.shape != hi.shape:
        raise AicomputeError(f"min_val and max_val differ in shape: {tuple(lo.shape)} vs {tuple(hi.shape)}")
    if (lo > hi).any():
        raise AicomputeError(f"min_val must not exceed max_val, got {lo.tolist()} > {hi.tolist()}")
    qmin, qmax = scheme.qrange
    lo = torch.minimum(lo, torch.zeros_like(lo))  # the range holds 0
    hi = torch.maximum(hi, torch.zeros_like(hi))
    eps = torch.tensor(_EPS)
    if scheme.symmetric:
        amax = torch.maximum(-lo, hi)
        scale = torch.maximum(amax / (float(qmax - qmin) / 2), eps)
        midpoint = 0 if scheme.signed else (qmin + qmax + 1) // 2
        zero_point = torch.full_like(scale, midpoint, dtype=torch.int64)
    else:
        scale = torch.maximum((hi - lo) / float(qmax - qmin), eps)
        zero_point = qmin - torch.round(lo / scale).to(torch.int64)
        zero_point = torch.clamp(zero_point, qmin, qmax)
    return QParams(scale, zero_point, qmin, qmax, axis=scheme.axis)


def check_data(x: object, what: str = "x") -> Tensor:
    """``x`` if it is a non-empty, finite, floating-point tensor; else an ``AicomputeError``."""
    if not isinstance(x, Tensor):
        raise AicomputeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise AicomputeError(f"{what} must be a floating-point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise AicomputeError(f"{what} is empty (shape {tuple(x.shape)}); quantization needs at least one value")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise AicomputeError(f"{what} has {bad} NaN/inf value(s) out of {x.numel()}; only finite data can be quantized")
    return x


def channel_rows(x: Tensor, axis: int | None) -> Tensor:
    """``x`` detached in float32 as rows: ``(1, N)`` per tensor, ``(C, N / C)`` with channel ``c`` in row ``c``."""
    x = x.detach().float()
    if axis is None:
        return x.reshape(1, -1)  # (1, N)
    if not -x.dim() <= axis < x.dim():
        raise AicomputeError(f"channel axis {axis} is out of range for a tensor of shape {tuple(x.shape)}")
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)  # (C, N / C)


def binary_qparams(x: Tensor, scheme: QScheme) -> QParams:
    """1-bit parameters for ``x``: α = mean |x| over the tensor, or over each channel along ``scheme.axis``."""
    if not scheme.binary:
        raise AicomputeError(f"binary_qparams needs a 1-bit scheme, got bits={scheme.bits}; use compute_qparams")
    rows = channel_rows(check_data(x), scheme.axis)  # (C, N)
    alpha = rows.abs().mean(dim=1, dtype=torch.float64).float()
    return QParams.for_binary(alpha if scheme.axis is not None else alpha.reshape(()), axis=scheme.axis)
