"""Number formats — FP32, TF32, FP16, BF16, FP8 (E4M3, E5M2), INT8/4/2 and binary — and their emulation.

A floating-point format spends its bits on a sign, an exponent (range) and a mantissa (precision).
The exponent field holds ``E + bias`` with ``bias = 2^(e-1) - 1``. A value is normal,
``(1 + f / 2^m) · 2^E``, or subnormal when the field is 0, ``(f / 2^m) · 2^emin``:

======  ====  ====  ====  =============  ==========  ============  ======  ===================
format  sign  exp   man   max            min normal  min subnorm.  eps     on overflow
======  ====  ====  ====  =============  ==========  ============  ======  ===================
fp32    1     8     23    ≈ 3.4028e38    2^-126      2^-149        2^-23   inf
tf32    1     8     10    ≈ 3.4011e38    2^-126      2^-136        2^-10   inf
fp16    1     5     10    65504          2^-14       2^-24         2^-10   inf
bf16    1     8     7     ≈ 3.3895e38    2^-126      2^-133        2^-7    inf
e4m3    1     4     3     448            2^-6        2^-9          2^-3    saturate to ±448
e5m2    1     5     2     57344          2^-14       2^-16         2^-2    inf
======  ====  ====  ====  =============  ==========  ============  ======  ===================

Conventions:

* IEEE-like formats (fp32, tf32, fp16, bf16, fp8 E5M2) keep the all-ones exponent for ±inf and NaN.
  FP8 E4M3 is the OCP "fn" variant (``torch.float8_e4m3fn``): no infinities, NaN only at S.1111.111,
  and the rest of the all-ones exponent holds normal numbers, so its max is 1.75 · 2^8 = 448.
* ``eps`` is the gap between 1 and the next larger value: 2^-m for floats, 1 (the step) for integers,
  ``None`` for binary ({-1, +1} has nothing above 1).
* Integer formats are two's-complement, ``[-2^(b-1), 2^(b-1) - 1]``: no exponent, ``b - 1`` "mantissa"
  (magnitude) bits, no subnormals (``min_subnormal`` is ``None``) and ``min_normal`` = 1, their smallest
  positive value. Binary is one sign bit meaning ±1.
* ``bytes_per_value`` is what a value takes in memory: bits / 8, fractional for int4 (0.5), int2 (0.25)
  and binary (0.125). TF32 has 19 bits but is a Tensor Core input format read from fp32 memory: 4 bytes.

:func:`cast` rounds a tensor to a format and returns float32 holding exactly representable values. Floats
round to nearest, ties to even, with subnormals, signed zero and inf/NaN propagation, computed from the
fp32 bit pattern with integer arithmetic. A value whose rounding lands beyond ``max`` overflows, as the OCP
FP8 spec (and ONNX's reading of it) defines:

* ``saturate=False``: ±inf where the format has infinities, NaN for E4M3; ±inf inputs do the same.
* ``saturate=True`` (CUDA's ``__NV_SATFINITE``): ±max, for finite overflow and for ±inf inputs alike.
* ``saturate=None`` (default): what ``x.to(dtype)`` does in torch 2.13 — saturate for E4M3 (its CPU
  conversion saturates since pytorch/pytorch#178817; older CPU builds gave NaN, i.e.
  ``saturate=False``), infinity for every other float format. NaN inputs stay NaN in every mode.

Casting to fp16, bf16, E4M3 and E5M2 equals ``x.to(dtype).float()`` bit for bit. TF32 rounds ties to
even like the others (torch has no TF32 cast to compare with; PTX ``cvt.rna.tf32.f32`` rounds ties away
from zero, so the two differ only on exact ties). Inputs are first converted to float32, so a float64 input
is rounded twice (to fp32, then to the format): this can differ from a direct float64 cast only when the
first rounding lands exactly on a tie of the second.

Integer formats round half-to-even and clamp to their range (they always saturate; scales are the
quantizer's job), binary maps x ≥ 0 (and -0) to +1 and x < 0 to -1; both reject NaN, which they cannot
hold. :func:`format_error` measures what a format does to a (weight) tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from aicompute.checks import did_you_mean
from aicompute.errors import AicomputeError

__all__ = ["FORMATS", "NumberFormat", "cast", "format_error", "format_table", "get_format"]

Kind = Literal["float", "int", "binary"]


@dataclass(frozen=True, kw_only=True)
class NumberFormat:
    """One number format: its bit layout, range and overflow rule. Derived figures are properties."""

    name: str
    """Canonical registry name, e.g. ``"fp8_e4m3"``."""
    kind: Kind
    """``"float"`` (sign, exponent, mantissa), ``"int"`` (two's complement) or ``"binary"`` (±1)."""
    exponent_bits: int
    """Exponent field width; 0 for integer and binary formats."""
    mantissa_bits: int
    """Stored fraction bits for floats (the hidden bit not counted); magnitude bits (b - 1) for integers."""
    sign_bits: int = 1
    """Always 1 here: every format is signed."""
    storage_bits: int | None = None
    """Bits one value takes in memory when that differs from the layout (TF32: 32); ``None``: the layout's."""
    finite_only: bool = False
    """The OCP "fn" encoding: no infinities, NaN only at S.1…1.1…1, so the top exponent holds numbers."""
    saturates: bool = False
    """Default overflow rule of :func:`cast`: clamp to ±max (True) or go to inf / NaN (False)."""
    torch_dtype: torch.dtype | None = None
    """The torch dtype with the same values, when torch has one."""
    aliases: tuple[str, ...] = ()
    """Other names :func:`get_format` accepts."""
    description: str = ""
    """One line for tables."""

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int", "binary"):
            raise AicomputeError(f"format {self.name!r}: kind must be 'float', 'int' or 'binary', got {self.kind!r}")
        if self.sign_bits != 1:
            raise AicomputeError(f"format {self.name!r}: sign_bits must be 1 (signed formats), got {self.sign_bits}")
        if self.kind == "float":
            # Emulation works on fp32 bits: the format's range and precision must fit inside fp32's.
            if not (2 <= self.exponent_bits <= 8 and 0 <= self.mantissa_bits <= 23) or self.emax > 127:
                raise AicomputeError(
                    f"format {self.name!r}: a float format needs 2..8 exponent bits, 0..23 mantissa bits and a "
                    f"max exponent within fp32's 127, got e={self.exponent_bits}, m={self.mantissa_bits}"
                )
        elif self.exponent_bits != 0 or self.finite_only or not self.saturates:
            raise AicomputeError(f"format {self.name!r}: {self.kind} formats have exponent_bits=0 and always saturate")
        elif (self.kind == "binary") != (self.mantissa_bits == 0):
            raise AicomputeError(f"format {self.name!r}: binary has 0 mantissa bits, an int format at least 1")

    @property
    def total_bits(self) -> int:
        """Bits in the layout: sign + exponent + mantissa."""
        return self.sign_bits + self.exponent_bits + self.mantissa_bits

    @property
    def bytes_per_value(self) -> float:
        """Memory per value in bytes (fractional below 8 bits)."""
        return (self.storage_bits or self.total_bits) / 8

    @property
    def bias(self) -> int | None:
        """Exponent bias ``2^(e-1) - 1`` for floats; ``None`` otherwise."""
        return 2 ** (self.exponent_bits - 1) - 1 if self.kind == "float" else None

    @property
    def emin(self) -> int | None:
        """Exponent of the smallest normal number, ``1 - bias``; ``None`` for non-floats."""
        return 1 - self.bias if self.kind == "float" else None

    @property
    def emax(self) -> int | None:
        """Exponent of the largest finite number: the all-ones field is usable only in "fn" formats."""
        if self.kind != "float":
            return None
        top_field = 2**self.exponent_bits - (1 if self.finite_only else 2)
        return top_field - self.bias

    @property
    def max(self) -> float:
        """Largest finite value."""
        if self.kind == "float":
            # fn formats lose the all-ones mantissa of the top exponent to NaN.
            top_fraction = 2**self.mantissa_bits - (2 if self.finite_only else 1)
            return math.ldexp(1 + top_fraction / 2**self.mantissa_bits, self.emax)
        return float(2**self.mantissa_bits - 1) if self.kind == "int" else 1.0

    @property
    def lowest(self) -> float:
        """Most negative finite value (-max, except two's-complement integers: -2^(b-1))."""
        return -float(2**self.mantissa_bits) if self.kind == "int" else -self.max

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value (2^emin); 1 for integer and binary formats."""
        return math.ldexp(1.0, self.emin) if self.kind == "float" else 1.0

    @property
    def min_subnormal(self) -> float | None:
        """Smallest positive subnormal value (2^(emin - m)); ``None`` where there are no subnormals."""
        return math.ldexp(1.0, self.emin - self.mantissa_bits) if self.kind == "float" else None

    @property
    def eps(self) -> float | None:
        """Gap between 1 and the next larger value: 2^-m (floats), 1 (integers), ``None`` (binary)."""
        if self.kind == "float":
            return math.ldexp(1.0, -self.mantissa_bits)
        return 1.0 if self.kind == "int" else None

    @property
    def has_inf(self) -> bool:
        """Whether ±inf is representable."""
        return self.kind == "float" and not self.finite_only

    @property
    def has_nan(self) -> bool:
        """Whether NaN is representable."""
        return self.kind == "float"

    @property
    def overflow(self) -> str:
        """What the default :func:`cast` gives beyond ``max``: ``"saturate"``, ``"inf"`` or ``"nan"``."""
        if self.saturates:
            return "saturate"
        return "inf" if self.has_inf else "nan"

    def to_dict(self) -> dict:
        """A JSON-safe table row with every column of the format table."""
        return {
            "name": self.name,
            "kind": self.kind,
            "sign_bits": self.sign_bits,
            "exponent_bits": self.exponent_bits,
            "mantissa_bits": self.mantissa_bits,
            "total_bits": self.total_bits,
            "bytes_per_value": self.bytes_per_value,
            "bias": self.bias,
            "max": self.max,
            "lowest": self.lowest,
            "min_normal": self.min_normal,
            "min_subnormal": self.min_subnormal,
            "eps": self.eps,
            "has_inf": self.has_inf,
            "has_nan": self.has_nan,
            "overflow": self.overflow,
            "torch_dtype": str(self.torch_dtype).removeprefix("torch.") if self.torch_dtype else None,
            "description": self.description,
        }


def _int_format(bits: int, dtype: torch.dtype | None = None) -> NumberFormat:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return NumberFormat(
        name=f"int{bits}", kind="int", exponent_bits=0, mantissa_bits=bits - 1, saturates=True,
        torch_dtype=dtype, description=f"{bits}-bit two's-complement integer, range [{low}, {high}]",
    )  # fmt: skip


_ALL = (
    NumberFormat(name="fp32", kind="float", exponent_bits=8, mantissa_bits=23, torch_dtype=torch.float32,
                 aliases=("float32", "float", "single"), description="IEEE 754 single precision"),
    NumberFormat(name="tf32", kind="float", exponent_bits=8, mantissa_bits=10, storage_bits=32,
                 aliases=("tensorfloat32",), description="fp32 range with fp16 precision (Tensor Core input)"),
    NumberFormat(name="fp16", kind="float", exponent_bits=5, mantissa_bits=10, torch_dtype=torch.float16,
                 aliases=("float16", "half"), description="IEEE 754 half precision"),
    NumberFormat(name="bf16", kind="float", exponent_bits=8, mantissa_bits=7, torch_dtype=torch.bfloat16,
                 aliases=("bfloat16",), description="brain float: the top 16 bits of fp32"),
    NumberFormat(name="fp8_e4m3", kind="float", exponent_bits=4, mantissa_bits=3, finite_only=True, saturates=True,
                 torch_dtype=torch.float8_e4m3fn, aliases=("e4m3", "e4m3fn", "float8_e4m3fn"),
                 description="OCP FP8 E4M3 (fn: no inf, NaN only at S.1111.111)"),
    NumberFormat(name="fp8_e5m2", kind="float", exponent_bits=5, mantissa_bits=2, torch_dtype=torch.float8_e5m2,
                 aliases=("e5m2", "float8_e5m2"), description="OCP FP8 E5M2 (IEEE-like, fp16 range)"),
    _int_format(8, torch.int8),
    _int_format(4),
    _int_format(2),
    NumberFormat(name="binary", kind="binary", exponent_bits=0, mantissa_bits=0, saturates=True,
                 aliases=("bin", "sign"), description="one sign bit: -1 or +1"),
)  # fmt: skip

FORMATS: dict[str, NumberFormat] = {f.name: f for f in _ALL}
"""Every built-in format by canonical name, in table order (widest first)."""

_BY_NAME: dict[str, NumberFormat] = {alias: f for f in _ALL for alias in (f.name, *f.aliases)}


def get_format(fmt: str | NumberFormat | torch.dtype) -> NumberFormat:
    """The format named ``fmt`` (case-insensitive, ``-`` read as ``_``), or the one with torch dtype ``fmt``.

    A :class:`NumberFormat` is returned as is, so functions can take either.
    """
    if isinstance(fmt, NumberFormat):
        return fmt
    if isinstance(fmt, torch.dtype):
        for f in _ALL:
            if f.torch_dtype == fmt:
                return f
        dtypes = ", ".join(str(f.torch_dtype) for f in _ALL if f.torch_dtype)
        raise AicomputeError(f"no number format for {fmt}; formats with a torch dtype: {dtypes}")
    if not isinstance(fmt, str):
        raise AicomputeError(f"a format is a name, a NumberFormat or a torch dtype, got {type(fmt).__name__}")
    key = fmt.strip().lower().replace("-", "_")
    if key in _BY_NAME:
        return _BY_NAME[key]
    raise AicomputeError(f"unknown number format {fmt!r}{did_you_mean(key, _BY_NAME)}; known: {', '.join(FORMATS)}")


def format_table() -> list[dict]:
    """One :meth:`NumberFormat.to_dict` row per built-in format, widest first."""
    return [f.to_dict() for f in FORMATS.values()]


def _as_float32(x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise AicomputeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex() or x.dtype == torch.bool:
        raise AicomputeError(f"x must hold real numbers (a float or integer dtype), got {x.dtype}")
    return x.to(torch.float32)


def _exp2(e: Tensor) -> Tensor:
    """Exact float32 2^e for int64 e in [-149, 127], built from its bit pattern (normal or subnormal)."""
    e = e.clamp(-149, 127)
    normal_bits = (e + 127) << 23  # biased exponent field, zero fraction
    subnormal_bits = torch.ones_like(e) << (e + 149).clamp(max=22)  # 2^-149 · 2^(e+149)
    return torch.where(e >= -126, normal_bits, subnormal_bits).to(torch.int32).view(torch.float32)


def _shift_round_half_even(sig: Tensor, shift: Tensor) -> Tensor:
    """``sig / 2^shift`` rounded to the nearest integer, ties to even (int64, ``shift`` ≥ 0)."""
    q = sig >> shift
    rem = sig - (q << shift)
    half = (torch.ones_like(shift) << shift) >> 1  # 0 when shift == 0: nothing dropped, no rounding
    up = (rem > half) | ((rem == half) & (half > 0) & ((q & 1) == 1))
    return q + up.to(q.dtype)


def _cast_float(x: Tensor, fmt: NumberFormat, saturate: bool) -> Tensor:
    bits = x.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    negative = (bits >> 31) == 1
    field = (bits >> 23) & 0xFF  # biased fp32 exponent
    frac = bits & 0x7FFFFF
    normal = field > 0
    # |x| = sig · 2^lsb exactly: normals carry the hidden bit, fp32 subnormals sit at 2^-149.
    sig = torch.where(normal, frac | 0x800000, frac)
    lsb = torch.where(normal, field - 150, -149)
    # The format's spacing at |x| is 2^(max(E, emin) - m), E = floor(log2 |x|); fp32 subnormals are below
    # every format's emin (≥ -126), so any E ≤ -126 stands for them.
    exponent = torch.where(normal, field - 127, -127)
    quantum = exponent.clamp(min=fmt.emin) - fmt.mantissa_bits
    # quantum ≥ lsb since m ≤ 23 and emin ≥ -126; past 25 dropped bits everything rounds to 0 anyway.
    k = _shift_round_half_even(sig, (quantum - lsb).clamp(max=40))
    mag = k.to(torch.float32) * _exp2(quantum)  # k ≤ 2^24 and the product is representable: exact

    overflowed = torch.isinf(x) | (mag > fmt.max)  # a rounded 2^128 is already inf here
    fill = fmt.max if saturate else (math.inf if fmt.has_inf else math.nan)
    mag = torch.where(overflowed, fill, mag)
    mag = torch.where(torch.isnan(x), math.nan, mag)
    return torch.where(negative, -mag, mag)  # -0.0 for negatives that round to zero


def cast(x: Tensor, fmt: str | NumberFormat | torch.dtype, *, saturate: bool | None = None) -> Tensor:
    """``x`` rounded to format ``fmt``, as float32 of the same shape; ``x`` is not changed.

    Floats: round to nearest, ties to even; on overflow ``saturate`` picks ±max (True), ±inf / NaN (False)
    or the format's default, torch's own (None) — see the module docstring. Integers: round half to even,
    then clamp to ``[-2^(b-1), 2^(b-1) - 1]`` (no scale; ``saturate=False`` is refused since an integer
    cannot overflow to anything else). Binary: +1 for x ≥ 0 (also -0), -1 for x < 0.
    """
    fmt = get_format(fmt)
    x32 = _as_float32(x)
    if fmt.kind == "float":
        return _cast_float(x32, fmt, fmt.saturates if saturate is None else saturate)
    if saturate is False:
        raise AicomputeError(f"{fmt.name} has no inf or NaN, so it always saturates; pass saturate=None or True")
    if torch.isnan(x32).any():
        raise AicomputeError(f"x contains NaN, which {fmt.name} cannot represent; cast to a float format instead")
    if fmt.kind == "int":
        return torch.round(x32).clamp_(fmt.lowest, fmt.max) + 0.0  # + 0.0 turns -0 into +0: ints have no -0
    return (x32 >= 0).to(torch.float32) * 2 - 1  # -0 >= 0 holds: sign(±0) = +1


def _overflowed(x: Tensor, fmt: NumberFormat) -> Tensor:
    """Elements whose nearest value lies beyond the format's finite range (whatever cast then does)."""
    if fmt.kind == "float":
        return ~torch.isfinite(_cast_float(x, fmt, saturate=False))
    if fmt.kind == "int":
        rounded = torch.round(x)
        return (rounded < fmt.lowest) | (rounded > fmt.max)
    return torch.zeros_like(x, dtype=torch.bool)


def format_error(x: Tensor, fmt: str | NumberFormat | torch.dtype, *, saturate: bool | None = None) -> dict:
    """What casting the finite tensor ``x`` to ``fmt`` does to it.

    Returns a JSON-safe dict: ``format``, ``numel``; ``max_abs_error``, ``mean_abs_error`` and
    ``rel_rms_error`` (√(Σ(q - x)² / Σx²)) over the elements whose cast is finite (``None`` if none is);
    ``overflow_fraction``, the share whose nearest value lies beyond the range (sent to inf/NaN, which the
    error figures leave out, or clamped, which they include); ``flushed_to_zero_fraction``, the share of
    non-zero inputs that became 0. Errors are accumulated in float64.
    """
    fmt = get_format(fmt)
    x32 = _as_float32(x)
    if x32.numel() == 0:
        raise AicomputeError("x is empty; format_error needs at least one value")
    if not torch.isfinite(x32).all():
        raise AicomputeError("x contains NaN or inf; format_error measures finite tensors such as weights")
    q = cast(x32, fmt, saturate=saturate)
    kept = torch.isfinite(q)
    err = (q[kept].double() - x32[kept].double()).abs()
    signal = x32[kept].double().square().sum().item()
    noise = err.square().sum().item()
    if not kept.any():
        rel_rms = None
    elif signal > 0:
        rel_rms = math.sqrt(noise / signal)
    else:
        rel_rms = 0.0 if noise == 0 else math.inf
    n = x32.numel()
    return {
        "format": fmt.name,
        "numel": n,
        "max_abs_error": err.max().item() if kept.any() else None,
        "mean_abs_error": err.mean().item() if kept.any() else None,
        "rel_rms_error": rel_rms,
        "overflow_fraction": _overflowed(x32, fmt).sum().item() / n,
        "flushed_to_zero_fraction": ((x32 != 0) & (q == 0)).sum().item() / n,
    }
