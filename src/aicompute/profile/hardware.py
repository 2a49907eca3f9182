"""Hardware specs for the roofline: peak FLOP/s per dtype, memory bandwidth, and where each figure came from.

Conventions:

* **Dense** peaks only: NVIDIA datasheets print tensor-core figures *with* 2:4 structured sparsity (2×
  the dense rate); every figure here is the dense one.
* ``tensor_flops`` is the rate of matmul / conv / attention work in each dtype; ``vector_flops`` the rate of
  the non-tensor-core (SIMD / CUDA-core) units that elementwise ops, reductions and normalizations run on.
* **float32 tensor work on GPUs is priced at the FP32 non-tensor-core rate.** PyTorch runs float32 matmuls
  without TF32 unless asked to (``torch.set_float32_matmul_precision("high")``); the TF32 tensor-core
  rate is listed separately as ``"tfloat32"``.
* fp16 / bf16 / fp8 tensor rates are those **with FP32 accumulate**, which is what PyTorch's cuBLAS calls
  use (GeForce cards run FP16-accumulate at twice that rate; PyTorch does not use it).
* Bandwidth is bytes per second of device memory (DRAM / HBM) in decimal units, as vendors print it;
  ``memory_bytes`` is the capacity in bytes (a vendor's "80 GB" of HBM is 80 GiB).

``"local"`` is this machine, measured by :func:`aicompute.profile.probe.probe_local` (``aicompute hw probe``)
and kept in the user cache; :func:`get_hardware` loads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aicompute.checks import did_you_mean
from aicompute.errors import AicomputeError
from aicompute.fileio import atomic_write_text, cache_dir

__all__ = [
    "HardwareSpec",
    "DTYPES",
    "normalize_dtype",
    "list_hardware",
    "get_hardware",
    "local_spec_path",
    "save_local",
]

DTYPES = ("float32", "tfloat32", "bfloat16", "float16", "float8", "int8")
"""Dtype names a spec may list rates for."""

_ALIASES = {
    "fp32": "float32", "f32": "float32", "tf32": "tfloat32", "bf16": "bfloat16", "fp16": "float16",
    "half": "float16", "f16": "float16", "fp8": "float8", "float8_e4m3fn": "float8", "float8_e5m2": "float8",
    "float8_e4m3fnuz": "float8", "float8_e5m2fnuz": "float8",
}
_T = 1e12
_GIB = 2**30


def normalize_dtype(dtype: object) -> str:
    """``torch.bfloat16`` / ``"bf16"`` / ``"bfloat16"`` → ``"bfloat16"``; other names pass through lowercased."""
    name = str(dtype).removeprefix("torch.").strip().lower()
    return _ALIASES.get(name, name)


@dataclass(frozen=True)
class HardwareSpec:
    """Peak rates of one accelerator or CPU, with the source of its figures."""

    key: str
    """Registry key, e.g. ``"h100"``; ``"local"`` for this machine."""
    name: str
    tensor_flops: Mapping[str, float]
    """Dense FLOP/s (OP/s for int8) of matmul-like work per dtype."""
    vector_flops: Mapping[str, float]
    """FLOP/s of the vector units per dtype (elementwise ops, reductions, normalization)."""
    bandwidth: float
    """Device-memory bandwidth in bytes/s."""
    memory_bytes: int
    source: str
    """Where the figures come from: datasheet names, or how they were measured."""
    measured: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    """For a measured spec: device, threads, sizes, repeats and date of the probe."""

    def __post_init__(self) -> None:
        for label, rates in (("tensor_flops", self.tensor_flops), ("vector_flops", self.vector_flops)):
            for dtype, rate in rates.items():
                if dtype not in DTYPES:
                    raise AicomputeError(f"{self.key}: {label} has unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
                if not isinstance(rate, (int, float)) or not rate > 0:
                    raise AicomputeError(f"{self.key}: {label}[{dtype!r}] must be a rate > 0 FLOP/s, got {rate!r}")
        if not self.tensor_flops:
            raise AicomputeError(f"{self.key}: tensor_flops lists no dtype; give at least one peak rate")
        if not isinstance(self.bandwidth, (int, float)) or not self.bandwidth > 0:
            raise AicomputeError(f"{self.key}: bandwidth must be > 0 bytes/s, got {self.bandwidth!r}")

    @property
    def origin(self) -> str:
        """``"measured"``, ``"datasheet"``, or ``"reported"`` (figures the vendor does not publish)."""
        if self.measured:
            return "measured"
        return "reported" if self.source.startswith("reported") else "datasheet"

    def has_peak(self, dtype: object, *, tensor: bool) -> bool:
        return normalize_dtype(dtype) in (self.tensor_flops if tensor else self.vector_flops)

    def peak(self, dtype: object, *, tensor: bool) -> float:
        """Peak FLOP/s of tensor (matmul-like) or vector work in ``dtype``.

        float32 tensor work on a GPU is its FP32 non-tensor-core rate (PyTorch's default: TF32 off); ask for
        ``"tfloat32"`` to get the TF32 tensor-core rate.
        """
        name = normalize_dtype(dtype)
        rates = self.tensor_flops if tensor else self.vector_flops
        if name not in rates:
            kind = "tensor (matmul/conv)" if tensor else "vector"
            have = ", ".join(rates) or "none"
            raise AicomputeError(
                f"{self.name} has no {kind} rate for {name}{did_you_mean(name, rates)}; it lists: {have}"
            )
        return float(rates[name])

    def ridge(self, dtype: object, *, tensor: bool = True) -> float:
        """Ridge point in FLOPs per byte: the arithmetic intensity above which work in ``dtype`` is
        compute-bound (peak / bandwidth)."""
        return self.peak(dtype, tensor=tensor) / self.bandwidth

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "tensor_flops": dict(self.tensor_flops),
            "vector_flops": dict(self.vector_flops),
            "bandwidth_bytes_per_s": self.bandwidth,
            "memory_bytes": self.memory_bytes,
            "ridge_flops_per_byte": {d: r / self.bandwidth for d, r in self.tensor_flops.items()},
            "source": self.source,
            "measured": self.measured,
            "origin": self.origin,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HardwareSpec:
        """The inverse of :meth:`to_dict` (derived keys such as the ridge points are recomputed)."""
        try:
            return cls(
                key=str(data["key"]),
                name=str(data["name"]),
                tensor_flops={str(k): float(v) for k, v in data["tensor_flops"].items()},
                vector_flops={str(k): float(v) for k, v in data["vector_flops"].items()},
                bandwidth=float(data["bandwidth_bytes_per_s"]),
                memory_bytes=int(data["memory_bytes"]),
                source=str(data["source"]),
                measured=bool(data["measured"]),
                details=dict(data.get("details") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise AicomputeError(f"not a hardware spec record ({type(e).__name__}: {e})") from None


# Vendor figures. Each `source` names the document every number is from; a figure the vendor does not
# publish says "reported" and where.
_DATASHEETS = (
    HardwareSpec(
        key="h100",
        name="NVIDIA H100 SXM5 80GB",
        tensor_flops={"float32": 66.9 * _T, "tfloat32": 494.7 * _T, "bfloat16": 989.4 * _T,
                      "float16": 989.4 * _T, "float8": 1978.9 * _T, "int8": 1978.9 * _T},
        vector_flops={"float32": 66.9 * _T, "bfloat16": 133.8 * _T, "float16": 133.8 * _T},
        bandwidth=3.35e12,
        memory_bytes=80 * _GIB,
        source=(
            "NVIDIA H100 Tensor Core GPU Architecture whitepaper, Table 3 (H100 SXM5, dense; the sparse "
            "figures are 2x) and NVIDIA H100 Tensor Core GPU datasheet (H100 SXM: 80 GB HBM3, 3.35 TB/s)"
        ),
    ),
    HardwareSpec(
        key="a100",
        name="NVIDIA A100 SXM4 80GB",
        tensor_flops={"float32": 19.5 * _T, "tfloat32": 156 * _T, "bfloat16": 312 * _T,
                      "float16": 312 * _T, "int8": 624 * _T},
        vector_flops={"float32": 19.5 * _T, "bfloat16": 39 * _T, "float16": 78 * _T},
        bandwidth=2.039e12,
        memory_bytes=80 * _GIB,
        source=(
            "NVIDIA A100 Tensor Core GPU datasheet (A100 80GB SXM: dense figures, starred ones are with "
            "sparsity; 80 GB HBM2e, 2,039 GB/s) and NVIDIA A100 Tensor Core GPU Architecture whitepaper, "
            "Table 1 (non-tensor FP16 78, BF16 39 TFLOPS); no FP8"
        ),
    ),
    HardwareSpec(
        key="v100",
        name="NVIDIA V100 SXM2 32GB",
        tensor_flops={"float32": 15.7 * _T, "float16": 125 * _T},
        vector_flops={"float32": 15.7 * _T},
        bandwidth=900e9,
        memory_bytes=32 * _GIB,
        source=(
            "NVIDIA Tesla V100 GPU Accelerator datasheet (V100 SXM2: 15.7 TFLOPS FP32, 125 TFLOPS tensor "
            "= FP16 multiply with FP32 accumulate, 32 GB HBM2, 900 GB/s); no BF16, TF32, FP8 or INT8 tensor cores"
        ),
    ),
    HardwareSpec(
        key="rtx4090",
        name="NVIDIA GeForce RTX 4090",
        tensor_flops={"float32": 82.6 * _T, "tfloat32": 82.6 * _T, "bfloat16": 165.2 * _T,
                      "float16": 165.2 * _T, "float8": 330.3 * _T, "int8": 660.6 * _T},
        vector_flops={"float32": 82.6 * _T, "bfloat16": 82.6 * _T, "float16": 82.6 * _T},
        bandwidth=1008e9,
        memory_bytes=24 * _GIB,
        source=(
            "NVIDIA Ada GPU Architecture whitepaper, Appendix A (GeForce RTX 4090): dense tensor figures with "
            "FP32 accumulate (FP16-accumulate rates are 2x), 24 GB GDDR6X, 1,008 GB/s"
        ),
    ),
    HardwareSpec(
        key="ascend910b",
        name="Huawei Ascend 910B",
        tensor_flops={"float16": 320 * _T, "bfloat16": 320 * _T, "int8": 640 * _T},
        vector_flops={},
        bandwidth=1.6e12,
        memory_bytes=64 * _GIB,
        source=(
            "reported, not vendor-published: Huawei gives no chip-level datasheet for the 910B; figures are "
            "those circulated in 2023-24 press and analyst comparisons (about 320 TFLOPS FP16/BF16 dense, "
            "640 TOPS INT8, 64 GB HBM2e at 1.6 TB/s); bins 910B1-910B4 and reports differ by up to ~20%. "
            "Vector-unit and FP32 rates are not reported, so vector ops are priced by memory time only"
        ),
    ),
)
_REGISTRY = {spec.key: spec for spec in _DATASHEETS}
LOCAL_KEY = "local"


def _normalize_key(key: str) -> str:
    """``"RTX 4090"`` / ``"ascend-910b"`` → ``"rtx4090"`` / ``"ascend910b"``."""
    return re.sub(r"[\s_\-]", "", str(key).lower())


def local_spec_path() -> Path:
    """Where ``aicompute hw probe`` keeps this machine's spec: ``<cache>/hardware/local.json``."""
    return cache_dir("hardware") / "local.json"


def save_local(spec: HardwareSpec) -> Path:
    """Write ``spec`` as this machine's spec, atomically (a reader never sees half a file)."""
    return atomic_write_text(local_spec_path(), json.dumps({"version": 1, **spec.to_dict()}, indent=2) + "\n")


def _load_local() -> HardwareSpec | None:
    path = local_spec_path()
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return HardwareSpec.from_dict(data)
    except (OSError, ValueError, AicomputeError) as e:
        raise AicomputeError(
            f"the probed spec {str(path)!r} cannot be read ({e}); run `aicompute hw probe` again"
        ) from None


def list_hardware() -> list[HardwareSpec]:
    """The datasheet specs, then this machine's measured spec if it has been probed."""
    local = _load_local()
    return list(_DATASHEETS) + ([local] if local is not None else [])


def get_hardware(key: str | HardwareSpec) -> HardwareSpec:
    """The spec registered as ``key`` (case, spaces and dashes ignored: ``"RTX 4090"`` is ``rtx4090``).

    ``"local"`` is this machine as last measured by ``aicompute hw probe``.
    """
    if isinstance(key, HardwareSpec):
        return key
    name = _normalize_key(key)
    if name == LOCAL_KEY:
        local = _load_local()
        if local is None:
            raise AicomputeError(
                "this machine has not been measured yet; run `aicompute hw probe` (or "
                "aicompute.profile.probe.probe_local()) first, or pick a datasheet spec: " + ", ".join(_REGISTRY)
            )
        return local
    if name not in _REGISTRY:
        known = [*_REGISTRY, LOCAL_KEY]
        raise AicomputeError(f"unknown hardware {key!r}{did_you_mean(name, known)}; known: {', '.join(known)}")
    return _REGISTRY[name]
