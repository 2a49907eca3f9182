"""The local probe: measure this machine's matmul and vector FLOP/s and its memory bandwidth.

:func:`probe_local` (``aicompute hw probe``) times ``torch.mm``, ``torch.addcmul`` and ``copy_`` on the
first CUDA device (else the CPU) and returns a measured :class:`~aicompute.profile.hardware.HardwareSpec`
with key ``"local"``. Conventions are those of :mod:`aicompute.profile.hardware`: FLOP/s per dtype name,
bandwidth in bytes/s (read + written), memory in bytes. By default the spec is saved to the user cache,
where ``get_hardware("local")`` finds it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import torch

from aicompute.checks import positive_int
from aicompute.errors import AicomputeError
from aicompute.profile.hardware import LOCAL_KEY, HardwareSpec, normalize_dtype, save_local
from aicompute.timing import median_ms

__all__ = ["probe_local"]

_PROBE_DTYPES = ("float32", "bfloat16", "float16")
_VECTOR_INNER = 20
"""addcmul calls per timed run of the vector probe, so the timer's own cost is amortised."""


def probe_local(
    *,
    repeats: int = 10,
    matmul_size: int | None = None,
    copy_mib: int = 256,
    vector_kib: int | None = None,
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    device: str | None = None,
    progress: bool = False,
    save: bool = True,
) -> HardwareSpec:
    """Measure this machine (the first CUDA device when there is one, else the CPU) and return its spec.

    Every figure is the median of ``repeats`` timed runs after warm-up (:func:`aicompute.timing.median_ms`;
    on CUDA each run ends in a synchronize):

    * **tensor** FLOP/s per dtype: ``torch.mm`` of two ``matmul_size``² matrices, 2·n³ FLOPs (default n:
      2048 on CPU, 8192 on CUDA). ``"tfloat32"`` (CUDA only) is float32 with TF32 allowed for the probe.
    * **vector** FLOP/s per dtype: ``torch.addcmul`` (a multiply and an add, 2 FLOPs per element) on
      ``vector_kib`` KiB tensors (default 1024 on CPU, 8192 on CUDA) that stay in cache between calls, so
      the figure is the rate of PyTorch's elementwise kernels when DRAM is not the limit. On CPUs that is
      the SIMD units; on GPUs it is bounded by L2 bandwidth, below the ALU peak.
    * **bandwidth**: ``dst.copy_(src)`` of ``copy_mib`` MiB (choose it well above the last-level cache),
      counted as bytes read + written per second, like the STREAM copy kernel.

    The CPU probe runs on ``torch.get_num_threads()`` threads, and the name says how many. ``save`` writes
    the spec atomically to the user cache (:func:`~aicompute.profile.hardware.local_spec_path`), where
    ``get_hardware("local")`` finds it.
    """
    positive_int("repeats", repeats)
    positive_int("copy_mib", copy_mib)
    dev = _probe_device(device)
    cuda = dev.type == "cuda"
    n = positive_int("matmul_size", matmul_size) if matmul_size is not None else (8192 if cuda else 2048)
    kib = positive_int("vector_kib", vector_kib) if vector_kib is not None else (8192 if cuda else 1024)
    names = _probe_dtypes(dtypes, cuda)
    vector_names = [d for d in names if d != "tfloat32"]

    def timed(fn: Callable[[], Any]) -> float:
        """Median seconds of ``fn``."""
        def run() -> None:
            fn()
            if cuda:
                torch.cuda.synchronize(dev)
        return median_ms(run, repeats=repeats, warmup=2) / 1e3

    with _steps(progress, len(names) + len(vector_names) + 1) as step:
        tensor = {d: step(f"matmul {d}", lambda d=d: _matmul_rate(d, n, dev, timed)) for d in names}
        vector = {d: step(f"vector {d}", lambda d=d: _vector_rate(d, kib, dev, timed)) for d in vector_names}
        bandwidth = step("copy bandwidth", lambda: _copy_bandwidth(copy_mib, dev, timed))
    threads = torch.get_num_threads()
    probed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    spec = HardwareSpec(
        key=LOCAL_KEY,
        name=_device_name(dev, threads),
        tensor_flops=tensor,
        vector_flops=vector,
        bandwidth=bandwidth,
        memory_bytes=_memory_bytes(dev),
        source=(
            f"measured by `aicompute hw probe` at {probed_at}: torch.mm {n}x{n} per dtype; addcmul on "
            f"{kib} KiB cache-resident tensors; copy_ of {copy_mib} MiB (bytes read + written per second); "
            f"medians of {repeats} runs after warm-up"
        ),
        measured=True,
        details={"device": str(dev), "threads": threads if not cuda else None, "torch": torch.__version__,
                 "repeats": repeats, "matmul_size": n, "vector_kib": kib, "copy_mib": copy_mib,
                 "probed_at": probed_at},
    )
    if save:
        save_local(spec)
    return spec


def _probe_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise AicomputeError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda[:N]'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AicomputeError(f"device {device!r} asked for, but torch sees no CUDA device; use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise AicomputeError(f"the probe measures 'cpu' or 'cuda' devices, got {device!r}")
    return dev


def _probe_dtypes(dtypes: Sequence[str], cuda: bool) -> list[str]:
    allowed = _PROBE_DTYPES + (("tfloat32",) if cuda else ())
    names = list(dict.fromkeys(normalize_dtype(d) for d in dtypes))
    if not names:
        raise AicomputeError(f"dtypes is empty; probe at least one of {', '.join(allowed)}")
    for name in names:
        if name not in allowed:
            hint = " (TF32 is a CUDA tensor-core mode)" if name == "tfloat32" else ""
            raise AicomputeError(f"cannot probe {name!r}{hint}; the probe measures {', '.join(allowed)}")
    return names


@contextlib.contextmanager
def _steps(enabled: bool, total: int) -> Iterator[Callable[[str, Callable[[], float]], float]]:
    """``step(label, fn)`` runs ``fn``; with ``enabled`` a transient progress bar on stderr shows it."""
    if not enabled:
        yield lambda label, fn: fn()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("probe", total=total)

        def step(label: str, fn: Callable[[], float]) -> float:
            bar.update(task, description=f"probe: {label}")
            value = fn()
            bar.advance(task)
            return value

        yield step


@contextlib.contextmanager
def _tf32_matmul(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA matmuls on or off inside the block only; the process's setting is restored after."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9: mixing this with the legacy flag is an error
        attr, value = "fp32_precision", "tf32" if enabled else "ieee"
    else:
        attr, value = "allow_tf32", enabled
    before = getattr(matmul, attr)
    setattr(matmul, attr, value)
    try:
        yield
    finally:
        setattr(matmul, attr, before)


def _matmul_rate(name: str, n: int, dev: torch.device, timed: Callable) -> float:
    """float32 is timed with TF32 off (PyTorch's default), ``"tfloat32"`` with it on."""
    dtype = torch.float32 if name == "tfloat32" else getattr(torch, name)
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, generator=gen, device=dev).to(dtype)
    b = torch.randn(n, n, generator=gen, device=dev).to(dtype)
    c = torch.empty_like(a)
    with _tf32_matmul(name == "tfloat32") if dev.type == "cuda" else contextlib.nullcontext():
        seconds = timed(lambda: torch.mm(a, b, out=c))
    return 2 * n**3 / seconds


def _vector_rate(name: str, kib: int, dev: torch.device, timed: Callable) -> float:
    dtype = getattr(torch, name)
    numel = max(1, kib * 1024 // torch.empty((), dtype=dtype).element_size())
    gen = torch.Generator(device=dev).manual_seed(0)
    x, y, z = (torch.rand(numel, generator=gen, device=dev).to(dtype) for _ in range(3))
    out = torch.empty_like(x)

    def run() -> None:
        for _ in range(_VECTOR_INNER):
            torch.addcmul(z, x, y, out=out)  # out = z + x * y: 2 FLOPs per element

    return 2 * numel * _VECTOR_INNER / timed(run)


def _copy_bandwidth(mib: int, dev: torch.device, timed: Callable) -> float:
    src = torch.ones(mib * 2**20 // 4, device=dev)
    dst = torch.empty_like(src)  # its pages are touched by the warm-up copies, not the timed ones
    return 2 * src.numel() * 4 / timed(lambda: dst.copy_(src))


def _device_name(dev: torch.device, threads: int) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    model = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    if not model:
        import platform

        model = platform.processor() or platform.machine() or "CPU"
    return f"{model} ({threads} threads)"


def _memory_bytes(dev: torch.device) -> int:
    """Device memory on CUDA; installed RAM on CPU (/proc/meminfo, else sysconf)."""
    if dev.type == "cuda":
        return int(torch.cuda.get_device_properties(dev).total_memory)
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024  # the value is in kB (KiB)
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return 0
