"""Non-linear quantization: power-of-two (log2) levels and k-means codebooks.

Both place their levels where the values are instead of on an even grid, and both return the codes, the
``dequantized`` tensor and its reconstruction MSE.

**Power of two** (:func:`log2_quantize`; LogNet, Miyashita et al. 2016; the levels of INQ). A ``b``-bit code is
a sign bit and a ``(b − 1)``-bit exponent field whose value 0 stands for zero, so there are
``n = 2^(b−1) − 1`` magnitudes ``2^e_max, 2^(e_max−1), …, 2^e_min`` with ``e_min = e_max − n + 1``::

    e = round(log2 |x|)           nearest level in the log domain (the cut between 2^e and 2^(e+1) is 2^(e+½))
    q = sign(x) · 2^min(e, e_max)  if e ≥ e_min, else 0     (saturate above, flush to zero below)

``e_max`` is ``round(log2 max |x|)`` (per channel along ``axis`` when given), so the largest value is rounded
like every other, never clipped further; pass ``max_exp`` to fix it. Codes are ``sign · (e − e_min + 1)``,
integers in ``[−n, n]`` with 0 for zero. Multiplying by such a weight is a bit shift. Levels below float32's
smallest subnormal (2⁻¹⁴⁹) dequantize to 0.

**k-means** (:class:`KMeansQuantizer`, :func:`kmeans_quantize`; Deep Compression, Han et al. 2016): ``k`` shared
values (``k = 2^bits``) chosen by Lloyd's algorithm on the 1-D values, each value stored as a ``bits``-wide
index into the codebook. Initialisation is linear by default (``k`` centroids evenly spaced over
``[min, max]``), which Deep Compression found best because it keeps centroids on the rare large weights;
``"density"`` (quantiles of the values) and ``"random"`` (Forgy: ``k`` distinct values drawn with ``seed``) are
the paper's other two. Lloyd's steps in float64: assign each value to its nearest centroid (ties to the lower
one), move each centroid to the mean of its values; a centroid that loses all its values stays where it is.
It stops when no assignment changes or after ``iters`` steps. Same data and seed, same codebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from aicompute.checks import positive_int, seed_value
from aicompute.compress.quant.qparams import channel_rows, check_data
from aicompute.errors import AicomputeError

__all__ = [
    "LOG2_MAX_BITS",
    "KMEANS_MAX_BITS",
    "KMEANS_INITS",
    "Log2Quantized",
    "log2_quantize",
    "KMeansQuantized",
    "KMeansQuantizer",
    "kmeans_quantize",
]

LOG2_MAX_BITS = 8
"""Widest log2 code: a sign and a 7-bit exponent field (127 powers of two)."""
KMEANS_MAX_BITS = 16
"""Widest k-means index (a codebook of 65,536 values)."""
KMEANS_INITS = ("linear", "density", "random")


def _mse(x: Tensor, dequantized: Tensor) -> float:
    return float((x.detach().double() - dequantized.double()).square().mean())


def _int_or_none(name: str, value: object) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise AicomputeError(f"{name} must be an integer or None, got {value!r}")
    return value


# --- power of two ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Log2Quantized:
    """Power-of-two codes of a tensor and what they stand for."""

    codes: Tensor
    """``sign · (e − e_min + 1)``, 0 for zero; int8 (bits ≤ 8), shaped like the input."""
    max_exp: Tensor
    """``e_max``: 0-d, or one per channel (1-D) when ``axis`` was given."""
    bits: int
    axis: int | None
    dequantized: Tensor
    """``sign · 2^e`` (0 where the code is 0), in the input's dtype."""
    mse: float
    """Mean squared reconstruction error, ``mean((x − dequantized)²)``."""

    @property
    def num_levels(self) -> int:
        """Powers of two per sign, ``2^(bits−1) − 1``."""
        return (1 << (self.bits - 1)) - 1

    @property
    def min_exp(self) -> Tensor:
        """``e_min = e_max − num_levels + 1``, shaped like :attr:`max_exp`."""
        return self.max_exp - (self.num_levels - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (no tensors)."""
        return {"method": "log2", "bits": self.bits, "axis": self.axis, "max_exp": self.max_exp.tolist(),
                "num_levels": self.num_levels, "mse": self.mse}  # fmt: skip


def log2_quantize(x: Tensor, bits: int, *, axis: int | None = None, max_exp: int | None = None) -> Log2Quantized:
    """Round ``x`` to ``±2^e`` or 0 with ``bits``-wide codes (see the module docstring for the rule).

    ``axis`` gives each channel its own ``e_max`` (from its own max |x|); ``max_exp`` fixes ``e_max`` for the
    whole tensor instead (the two are exclusive).
    """
    check_data(x)
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= LOG2_MAX_BITS:
        raise AicomputeError(
            f"log2 quantization takes bits from 2 (sign + 1 exponent bit) to {LOG2_MAX_BITS}, got {bits!r}; "
            "1 bit is binary quantization (QScheme(bits=1))"
        )
    _int_or_none("axis", axis)
    _int_or_none("max_exp", max_exp)
    if axis is not None and max_exp is not None:
        raise AicomputeError(
            "pass either axis (an e_max per channel, from the data) or max_exp (one fixed e_max), not both"
        )
    rows = channel_rows(x, axis).double()  # (C, N/C), or (1, N)
    if max_exp is None:
        amax = rows.abs().amax(dim=1, keepdim=True)  # (C, 1)
        e_max = torch.where(amax > 0, torch.round(torch.log2(amax)), torch.zeros_like(amax))  # all-zero row: any e_max
    else:
        e_max = torch.full((rows.shape[0], 1), float(max_exp), dtype=torch.float64)
    n = (1 << (bits - 1)) - 1
    e_min = e_max - (n - 1)
    mag = rows.abs()
    e = torch.round(torch.log2(mag))  # −inf for 0: flushed below
    keep = (mag > 0) & (e >= e_min)
    e = torch.minimum(e, e_max)
    code_mag = torch.where(keep, e - e_min + 1, torch.zeros_like(e))  # 1..n, 0 for zero
    codes_rows = torch.where(rows < 0, -code_mag, code_mag)
    deq_rows = torch.where(keep, torch.sign(rows) * torch.exp2(torch.where(keep, e, 0.0)), torch.zeros_like(rows))
    codes = _from_rows(codes_rows, x, axis).to(torch.int8)
    dequantized = _from_rows(deq_rows, x, axis).to(x.dtype)
    e_max_out = e_max.reshape(-1) if axis is not None else e_max.reshape(())
    return Log2Quantized(codes, e_max_out.to(torch.int64), bits, axis, dequantized, _mse(x, dequantized))


def _from_rows(rows: Tensor, like: Tensor, axis: int | None) -> Tensor:
    """Inverse of :func:`channel_rows`: ``(C, N/C)`` rows back to ``like``'s shape."""
    if axis is None:
        return rows.reshape(like.shape)
    moved = list(like.movedim(axis, 0).shape)
    return rows.reshape(moved).movedim(0, axis)


# --- k-means --------------------------------------------------------------------------------------


def _index_dtype(k: int) -> torch.dtype:
    return torch.uint8 if k <= 256 else torch.int32


@dataclass(frozen=True, eq=False)
class KMeansQuantized:
    """A tensor as indices into a k-means codebook."""

    codebook: Tensor
    """The ``k`` shared values, ascending, float32."""
    indices: Tensor
    """Index of each value's centroid, shaped like the input; uint8 for k ≤ 256, else int32."""
    dequantized: Tensor
    """``codebook[indices]`` in the input's dtype."""
    mse: float
    """Mean squared reconstruction error, ``mean((x − dequantized)²)``."""

    @property
    def k(self) -> int:
        return self.codebook.numel()

    @property
    def bits(self) -> int:
        """Index width, ``ceil(log2 k)`` (0 for a single centroid)."""
        return math.ceil(math.log2(self.k)) if self.k > 1 else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: the codebook and the error (no indices)."""
        return {"method": "kmeans", "k": self.k, "bits": self.bits, "codebook": self.codebook.tolist(), "mse": self.mse}


class KMeansQuantizer:
    """1-D k-means (Lloyd) codebook, scikit-learn style: ``fit`` learns ``codebook_``, then quantize any tensor.

    Give ``bits`` (``k = 2^bits``) or ``k``. After :meth:`fit`: ``codebook_`` (ascending, float32),
    ``n_iter_`` (Lloyd steps taken) and ``converged_`` (no assignment changed in the last step).
    """

    def __init__(
        self, bits: int | None = None, *, k: int | None = None, iters: int = 100, init: str = "linear", seed: int = 0
    ) -> None:
        if (bits is None) == (k is None):
            raise AicomputeError(f"give exactly one of bits (k = 2^bits) and k, got bits={bits!r}, k={k!r}")
        if bits is not None:
            if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= KMEANS_MAX_BITS:
                raise AicomputeError(f"bits must be an integer from 1 to {KMEANS_MAX_BITS}, got {bits!r}")
            k = 1 << bits
        positive_int("k", k)
        if k > 1 << KMEANS_MAX_BITS:
            raise AicomputeError(f"k must be at most 2^{KMEANS_MAX_BITS} = {1 << KMEANS_MAX_BITS}, got {k}")
        positive_int("iters", iters)
        if init not in KMEANS_INITS:
            raise AicomputeError(f"init must be one of {', '.join(KMEANS_INITS)}, got {init!r}")
        self.bits, self.k, self.iters, self.init, self.seed = bits, k, iters, init, seed_value(seed)

    def initial_centroids(self, values: Tensor) -> Tensor:
        """The ``k`` starting centroids (float64, ascending) for the 1-D ``values``."""
        v = values.double()
        if self.init == "linear":
            return torch.linspace(float(v.min()), float(v.max()), self.k, dtype=torch.float64)
        if self.init == "density":
            probs = torch.linspace(0.0, 1.0, self.k, dtype=torch.float64)
            return torch.quantile(v, probs) if v.numel() <= 1 << 24 else _sorted_quantiles(v, probs)
        distinct = torch.unique(v)  # "random": Forgy, k distinct values
        if distinct.numel() < self.k:
            raise AicomputeError(
                f"init='random' needs {self.k} distinct values, the data has {distinct.numel()}; use init='linear'"
            )
        gen = torch.Generator().manual_seed(self.seed)
        return distinct[torch.randperm(distinct.numel(), generator=gen)[: self.k]].sort().values

    def fit(self, x: Tensor) -> KMeansQuantizer:
        """Learn the codebook from all values of ``x``; returns ``self``."""
        values = check_data(x).detach().reshape(-1).double().cpu()
        centroids = self.initial_centroids(values)
        assign = None
        self.converged_ = False
        for step in range(1, self.iters + 1):
            new_assign = _nearest(values, centroids)
            if assign is not None and torch.equal(new_assign, assign):
                self.converged_, step = True, step - 1
                break
            assign = new_assign
            counts = torch.bincount(assign, minlength=self.k).double()
            sums = torch.zeros(self.k, dtype=torch.float64).index_add_(0, assign, values)
            centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids).sort().values
        self.n_iter_ = step
        self.codebook_ = centroids.float()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "codebook_"):
            raise AicomputeError("this KMeansQuantizer has no codebook yet; call fit(x) first")

    def quantize(self, x: Tensor) -> Tensor:
        """Index of the nearest codebook value for each value of ``x`` (ties to the lower one)."""
        self._check_fitted()
        flat = check_data(x).detach().reshape(-1).double()
        idx = _nearest(flat, self.codebook_.double().to(flat.device))
        return idx.reshape(x.shape).to(_index_dtype(self.k))

    def dequantize(self, indices: Tensor) -> Tensor:
        """Float32 codebook values ``codebook_[indices]``."""
        self._check_fitted()
        if indices.is_floating_point() or indices.is_complex():
            raise AicomputeError(f"dequantize() takes integer indices, got {indices.dtype}; call quantize() first")
        idx = indices.long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.k):
            raise AicomputeError(f"indices must lie in [0, {self.k - 1}], got [{int(idx.min())}, {int(idx.max())}]")
        return self.codebook_.to(indices.device)[idx]

    def apply(self, x: Tensor) -> KMeansQuantized:
        """``x`` through the fitted codebook: indices, dequantized values and MSE."""
        indices = self.quantize(x)
        dequantized = self.dequantize(indices).to(x.dtype)
        return KMeansQuantized(self.codebook_.clone(), indices, dequantized, _mse(x, dequantized))


def _nearest(values: Tensor, centroids: Tensor) -> Tensor:
    """Index of the nearest of the ascending ``centroids`` for each value; a tie goes to the lower one."""
    mids = (centroids[1:] + centroids[:-1]) / 2  # (k − 1,) cuts between neighbours
    return torch.bucketize(values, mids, right=False)  # mids[i−1] < v ≤ mids[i] → i


def _sorted_quantiles(values: Tensor, probs: Tensor) -> Tensor:
    """Linear-interpolated quantiles by sorting (``torch.quantile`` refuses inputs above 2^24 elements)."""
    s = values.sort().values
    pos = probs * (s.numel() - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def kmeans_quantize(
    x: Tensor, bits: int | None = None, *, k: int | None = None, iters: int = 100, init: str = "linear", seed: int = 0
) -> KMeansQuantized:
    """Fit a k-means codebook to ``x`` and quantize ``x`` with it (see :class:`KMeansQuantizer`)."""
    return KMeansQuantizer(bits, k=k, iters=iters, init=init, seed=seed).fit(x).apply(x)
