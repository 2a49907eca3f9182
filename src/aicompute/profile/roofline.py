"""The roofline model: how long each op should take on a piece of hardware, and what bounds it.

For each op call, with ``P`` the peak FLOP/s of its unit in its dtype and ``B`` the memory bandwidth:

* attainable FLOP/s = min(P, I × B), with I = FLOPs / bytes moved (the arithmetic intensity);
* estimated time = max(FLOPs / P, bytes / B), which is FLOPs / attainable;
* bound = ``"compute"`` when FLOPs / P ≥ bytes / B (at or right of the ridge point I* = P / B), else
  ``"memory"``.

Which peak: matmul / conv / attention calls use the spec's **tensor** rate, every other category its
**vector** rate (see :mod:`aicompute.profile.hardware` for what those are). A vector op in a dtype the spec
lists no vector rate for uses the float32 vector rate: PyTorch computes reduced-precision elementwise math
in float32 registers. Where the spec has no vector rate at all, vector ops are priced by memory time only,
and the result says how many.

**Uncounted ops** (no FLOP formula, ``flops is None``) are priced by their memory time only, so the
estimate is a lower bound for them; the result counts them and their time.

The model ignores what it cannot see: kernel-launch and framework overhead, caches (every byte is priced at
DRAM bandwidth), overlap between ops, and peaks a real kernel does not reach. It is a floor, not a forecast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aicompute.errors import AicomputeError
from aicompute.profile.hardware import HardwareSpec, get_hardware, normalize_dtype
from aicompute.profile.records import OpRecord, is_tensor_category

__all__ = ["roofline", "RooflineResult", "RooflineRow", "Roof"]


@dataclass(slots=True)
class RooflineRow:
    """Estimated time of a group of op calls (one op name, or one module subtree)."""

    name: str
    """Op name (``aten.mm``) or module path (``""`` is the model itself)."""
    category: str
    """Op category for op rows; the module's type name for module rows (``""`` when unknown)."""
    calls: int = 0
    flops: int = 0
    moved: int = 0
    """Bytes read + written."""
    time_s: float = 0.0
    compute_bound_s: float = 0.0
    """Part of ``time_s`` spent in compute-bound calls."""
    memory_bound_s: float = 0.0
    """Part of ``time_s`` spent in memory-bound calls."""
    uncounted_calls: int = 0

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved (0 when nothing is moved, as for :attr:`OpRecord.intensity`)."""
        return self.flops / self.moved if self.moved else 0.0

    @property
    def attainable(self) -> float:
        """FLOPs / estimated time: for calls of one shape and dtype, exactly min(peak, intensity × bandwidth)."""
        return self.flops / self.time_s if self.time_s else 0.0

    @property
    def bound(self) -> str:
        """The bound of the larger part of the row's time."""
        return "compute" if self.compute_bound_s > 0 and self.compute_bound_s >= self.memory_bound_s else "memory"

    def to_dict(self, total_s: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "calls": self.calls,
            "flops": self.flops,
            "moved_bytes": self.moved,
            "intensity_flops_per_byte": self.intensity,
            "attainable_flops_per_s": self.attainable,
            "time_ms": self.time_s * 1e3,
            "time_share": self.time_s / total_s if total_s else 0.0,
            "bound": self.bound,
            "uncounted_calls": self.uncounted_calls,
        }


@dataclass(frozen=True, slots=True)
class Roof:
    """One flat roof: the peak of one unit in one dtype, and its ridge point."""

    dtype: str
    unit: str
    """``"tensor"`` or ``"vector"``."""
    peak: float
    ridge: float
    """FLOPs per byte where the bandwidth slope meets this peak."""

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "unit": self.unit, "peak_flops_per_s": self.peak,
                "ridge_flops_per_byte": self.ridge}


@dataclass
class RooflineResult:
    """Per-op and per-module estimated times on ``hw``, and the totals."""

    hw: HardwareSpec
    dtype: str | None
    """The dtype every op was priced at, or ``None``: each op at its own."""
    depth: int | None
    ops: list[RooflineRow]
    modules: list[RooflineRow]
    roofs: list[Roof]
    phase_s: dict[str, float] = field(default_factory=dict)
    unpriced_vector_calls: int = 0
    """Vector calls priced by memory time only, because the spec has no vector rate for them."""

    @property
    def latency_s(self) -> float:
        return sum(row.time_s for row in self.ops)

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1e3

    @property
    def flops(self) -> int:
        return sum(row.flops for row in self.ops)

    @property
    def moved(self) -> int:
        return sum(row.moved for row in self.ops)

    @property
    def compute_share(self) -> float:
        """Share of the estimated time spent in compute-bound calls; with ``memory_share`` it sums to 1
        (both are 0 when nothing takes time)."""
        total = self.latency_s
        return sum(row.compute_bound_s for row in self.ops) / total if total else 0.0

    @property
    def memory_share(self) -> float:
        """Share of the estimated time spent in memory-bound calls."""
        total = self.latency_s
        return sum(row.memory_bound_s for row in self.ops) / total if total else 0.0

    @property
    def achieved_flops(self) -> float:
        """All FLOPs over the estimated latency."""
        return self.flops / self.latency_s if self.latency_s else 0.0

    def notes(self) -> list[str]:
        """The conventions behind these figures, in words."""
        out = [
            "time per op call = max(FLOPs / peak, bytes / bandwidth); ops run one after another, no overlap, "
            "no launch overhead, every byte at device-memory bandwidth",
            "matmul/conv/attention at the tensor rate, other ops at the vector rate",
        ]
        if "float32" in self.hw.tensor_flops and "tfloat32" in self.hw.tensor_flops:
            out.append("float32 tensor ops at the FP32 non-tensor-core rate (PyTorch's default: TF32 off); "
                       "price them with dtype='tfloat32' (CLI: --hw-dtype tf32) for TF32")
        uncounted = sum(row.uncounted_calls for row in self.ops)
        if uncounted:
            out.append(f"{uncounted} uncounted op calls (no FLOP formula) priced by memory time only")
        if self.unpriced_vector_calls:
            out.append(f"{self.unpriced_vector_calls} vector op calls priced by memory time only: "
                       f"{self.hw.name} lists no vector rate")
        return out

    def to_dict(self) -> dict[str, Any]:
        total = self.latency_s
        return {
            "kind": "roofline",
            "hardware": self.hw.to_dict(),
            "dtype": self.dtype,
            "depth": self.depth,
            "bandwidth_bytes_per_s": self.hw.bandwidth,
            "roofs": [roof.to_dict() for roof in self.roofs],
            "totals": {
                "latency_ms": self.latency_ms,
                "flops": self.flops,
                "moved_bytes": self.moved,
                "compute_bound_share": self.compute_share,
                "memory_bound_share": self.memory_share,
                "achieved_flops_per_s": self.achieved_flops,
                "phase_ms": {phase: s * 1e3 for phase, s in self.phase_s.items()},
                "uncounted_calls": sum(row.uncounted_calls for row in self.ops),
                "unpriced_vector_calls": self.unpriced_vector_calls,
            },
            "notes": self.notes(),
            "by_op": [row.to_dict(total) for row in self.ops],
            "by_module": [row.to_dict(total) for row in self.modules],
        }

    def table(self, by: str = "op", *, top: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Columns and rows (most time first) for printing: ``by="op"`` or ``by="module"``."""
        if by not in ("op", "module"):
            raise AicomputeError(f"a roofline table is by 'op' or by 'module', got {by!r}")
        rows = self.ops if by == "op" else self.modules
        total = self.latency_s
        columns = [by, "calls", "GFLOP", "MiB moved", "FLOP/byte", "attainable GFLOP/s", "time (ms)",
                   "% of time", "bound"]
        body = [
            (row.name or "(model)", row.calls, row.flops / 1e9, row.moved / 2**20, row.intensity,
             row.attainable / 1e9, row.time_s * 1e3, 100 * row.time_s / total if total else 0.0, row.bound)
            for row in rows[:top]
        ]
        return columns, body


def roofline(
    records: Iterable[OpRecord] | Any,
    hw: HardwareSpec | str,
    *,
    dtype: str | None = None,
    depth: int | None = None,
    modules: Mapping[str, tuple[str, int]] | None = None,
) -> RooflineResult:
    """Price every op call of ``records`` on ``hw`` and roll the times up per op name and per module.

    ``records`` is any iterable of :class:`OpRecord`, or an object with a ``records`` attribute (a
    ``ProfileResult``, whose ``modules`` then name the module types). ``hw`` is a spec or a registry key.
    ``dtype`` prices every op at that dtype's peaks (e.g. ``"tfloat32"``, or ``"bfloat16"`` for a chip
    without float32 tensor rates); bytes stay as profiled. ``depth`` rolls module paths up to that many
    levels (0 = one row for the model; ``None`` = the innermost module of each op). Module rows partition
    the op calls, so their times sum to the total.
    """
    if hasattr(records, "records"):
        modules = modules if modules is not None else getattr(records, "modules", None)
        records = records.records
    spec = get_hardware(hw)
    override = normalize_dtype(dtype) if dtype is not None else None
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        raise AicomputeError(f"depth must be a non-negative integer or None, got {depth!r}")
    pricer = _Pricer(spec, override)
    types = {path: type_ for path, (type_, _) in (modules or {}).items()}
    ops: dict[str, RooflineRow] = {}
    mods: dict[str, RooflineRow] = {}
    phase_s: dict[str, float] = {}
    for r in records:
        compute_s, memory_s = pricer.times(r)
        time_s = max(compute_s, memory_s)
        path = _roll_up(r.module, depth)
        if r.op not in ops:
            ops[r.op] = RooflineRow(r.op, r.category)
        if path not in mods:
            mods[path] = RooflineRow(path, types.get(path, ""))
        for row in (ops[r.op], mods[path]):
            row.calls += 1
            row.flops += r.flops or 0
            row.moved += r.moved
            row.time_s += time_s
            if compute_s > 0 and compute_s >= memory_s:
                row.compute_bound_s += time_s
            else:
                row.memory_bound_s += time_s
            if r.flops is None:
                row.uncounted_calls += 1
        phase_s[r.phase] = phase_s.get(r.phase, 0.0) + time_s
    if not ops:
        raise AicomputeError("no op records to price; profile a model first (aicompute.profile.profile)")
    return RooflineResult(
        hw=spec, dtype=override, depth=depth, ops=sorted(ops.values(), key=_most_time_first),
        modules=sorted(mods.values(), key=_most_time_first), roofs=pricer.roofs(), phase_s=phase_s,
        unpriced_vector_calls=pricer.unpriced_vector_calls,
    )


def _most_time_first(row: RooflineRow) -> tuple[float, str]:
    return -row.time_s, row.name


def _roll_up(path: str, depth: int | None) -> str:
    """``"a.b.c"`` at depth 1 → ``"a"``; at depth 0 → ``""`` (the model)."""
    if depth is None or not path:
        return path
    return ".".join(path.split(".")[:depth])


class _Pricer:
    """Compute and memory seconds of one op call on one spec; remembers which roofs it used."""

    def __init__(self, hw: HardwareSpec, dtype: str | None) -> None:
        self.hw = hw
        self.dtype = dtype
        self.used: dict[tuple[str, str], float] = {}
        self.unpriced_vector_calls = 0

    def times(self, r: OpRecord) -> tuple[float, float]:
        memory_s = r.moved / self.hw.bandwidth
        if not r.flops:  # uncounted (None) or no arithmetic: memory time only
            return 0.0, memory_s
        peak = self._peak(r)
        if peak is None:
            self.unpriced_vector_calls += 1
            return 0.0, memory_s
        return r.flops / peak, memory_s

    def _peak(self, r: OpRecord) -> float | None:
        dtype = self.dtype or normalize_dtype(r.dtype)
        if is_tensor_category(r.category):
            if not self.hw.has_peak(dtype, tensor=True):
                have = ", ".join(self.hw.tensor_flops)
                raise AicomputeError(
                    f"{self.hw.name} lists no tensor rate for {dtype} (op {r.op} in module "
                    f"{r.module or '(model)'!r}); it lists {have}: pass dtype= (CLI: --hw-dtype) one of those to "
                    "price the ops at it"
                )
            return self._use(dtype, "tensor")
        for candidate in (dtype, "float32"):
            if self.hw.has_peak(candidate, tensor=False):
                return self._use(candidate, "vector")
        return None

    def _use(self, dtype: str, unit: str) -> float:
        peak = self.used.get((dtype, unit))
        if peak is None:
            peak = self.used[(dtype, unit)] = self.hw.peak(dtype, tensor=unit == "tensor")
        return peak

    def roofs(self) -> list[Roof]:
        return [Roof(dtype, unit, peak, peak / self.hw.bandwidth)
                for (dtype, unit), peak in sorted(self.used.items(), key=lambda kv: -kv[1])]
