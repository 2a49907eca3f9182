"""Claim (issue 6): our int8 model runs in ONNX Runtime ≥ 1.5× faster than the float model in ONNX Runtime
(median of repeated runs, same run) for a ResNet-style conv net at batch 64, and its ONNX file is ≥ 3.5×
smaller; it is also at least as fast as the model ORT's own ``quantize_static`` (QDQ, per-channel) makes
from the same float model, at equal or better accuracy. PyTorch fp32 latency is printed beside them.

Usage: .venv/bin/python benchmarks/quant_ort_speed.py [--width 32] [--epochs 2] [--repeats 30] [--threads N]

Protocol (every number is measured in this run, on CPU):

* **Model**: zoo ``resnet18`` at ``--width`` (stages of w·(1, 2, 4, 8) channels), 1×28×28 input, 10 classes,
  initialised with ``--seed`` and trained on the 4,000-image `mnist` training split for ``--epochs``
  epochs (Adam from lr 1e-3 with cosine decay, batch 64: ``quant_accuracy.train``). Accuracy is on the
  1,000-image test split, which neither training nor calibration sees.
* **Ours**: ``quantize`` with the default ``QuantConfig()`` (BatchNorm folded; weights int8 symmetric per
  output channel; activations uint8 per tensor, MinMax) calibrated on the first 16 batches of 64 training
  images; ``make_receipt`` exports the BatchNorm-folded float model (the fp32 file every other model is made
  from) and our QDQ model, and measures them once on its own (kept in the JSON as ``receipt``).
* **ORT's quantizer** on that same fp32 file and the same 16 calibration batches: ``quantize_static`` in
  QDQ format, per-channel int8 weights, MinMax, with uint8 activations and with its default int8
  activations; and once in QOperator format (uint8 activations, per-channel), whose failure, if ORT's
  quantizer or runtime fails on it, is recorded instead of a timing.
* **Latency** of one batch of 64 test images, in ms: every model's ORT session (CPU provider, all graph
  optimizations, ``intra_op_num_threads`` fixed, inter-op 1) and PyTorch eager float32 under
  ``torch.inference_mode`` (the BatchNorm-folded model that is exported, and the trained model with its
  BatchNorm) with ``torch.set_num_threads`` at the same count — first at ``--threads`` (default: every
  core), then at 1 thread. After 3 warm-up calls each, ``--repeats`` rounds each time every model once, the
  order rotated by one place per round, so load from other jobs falls on all of them alike. The table gives
  the median (and the fastest run); speedup is ORT fp32's median over the model's median.
* **Integer ops** are counted in the graph ORT actually runs after its optimizations (``integer_ops``); the
  JSON also holds every op of those graphs (float ``Add``/``Transpose`` left between integer kernels show
  where time goes). ORT's profiler then gives, at 1 thread, the kernel time per op type of ORT fp32, ours
  and ORT QDQ u8: the share of ``QLinearConv`` against the float ``Conv`` bounds what any int8 graph of the
  net can gain.
* **Width.** How much int8 gains depends on the net: the wider the convs (longer dot products), the more
  ORT's int8 kernels gain over its float ones. Run ``--width 32``, ``64`` and ``128`` to see the trend;
  each width writes its own JSON.

The machine is shared: the 1-minute load average is printed at the start and before each timing. When it
exceeds the idle cores, a multi-threaded median measures the scheduler more than the kernels (every parallel
op waits for its slowest thread; PyTorch, with many small parallel regions, suffers most): read the 1-thread
columns and the fastest runs then.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from _common import report
from quant_accuracy import train
from rich.console import Console
from rich.table import Table
from torch import nn

from aicompute.compress.quant import (
    QuantConfig,
    QuantResult,
    Receipt,
    integer_ops,
    make_receipt,
    ort_accuracy,
    quantize,
)
from aicompute.compress.quant.ptq import calibration_batches
from aicompute.compress.quant.runtime import optimized_op_counts, ort_quantize_static, ort_session
from aicompute.data import get_dataset
from aicompute.logs import quiet_logger
from aicompute.models import get_model
from aicompute.train import evaluate, seeded

Data = tuple[torch.Tensor, torch.Tensor]  # (inputs (N, 1, 28, 28), labels (N,))

BATCH = 64
CALIB_BATCHES = 16
WARMUP = 3
PROFILE_RUNS = 10
DEFAULT_WIDTH = 32
CLAIM_SPEEDUP = 1.5
CLAIM_SIZE = 3.5
FP32, OURS = "ORT fp32", "ours int8"
ORT_QDQ = ("ORT QDQ u8", "ORT QDQ s8")
ORT_QOP = "ORT QOp u8"
TORCH_FOLDED, TORCH_BN = "torch fp32 folded", "torch fp32 with BN"
LEGEND = {
    FP32: "the BatchNorm-folded float model exported by make_receipt, in ORT",
    OURS: "quantize(model, calib, QuantConfig()) exported by make_receipt (QDQ with our scales), in ORT",
    ORT_QDQ[0]: "ORT quantize_static on the fp32 file: QDQ, per-channel int8 weights, uint8 activations",
    ORT_QDQ[1]: "the same with ORT's default int8 activations",
    ORT_QOP: "ORT quantize_static in QOperator format, per-channel int8 weights, uint8 activations",
    TORCH_FOLDED: "PyTorch eager, float32, the BatchNorm-folded model (what is exported), inference_mode",
    TORCH_BN: "PyTorch eager, float32, the model as trained (with BatchNorm), inference_mode",
}


@dataclass
class Contender:
    """One model timed in the comparison: an ONNX file run by ORT, or a module run by PyTorch eager."""

    label: str
    path: Path | None = None
    module: nn.Module | None = None
    accuracy: float | None = None
    """Top-1 on the test split, in [0, 1] (ORT's for a file, PyTorch's for a module)."""
    file_bytes: int | None = None
    int_ops: dict[str, int] = field(default_factory=dict)
    graph_ops: dict[str, int] = field(default_factory=dict)
    """Every op of the graph ORT runs after its optimizations, with counts."""
    error: str | None = None
    """Why the model could not be made or run (then it has no timings)."""
    times: dict[int, list[float]] = field(default_factory=dict)
    """Thread count → ms of every timed run."""

    def median(self, threads: int) -> float:
        return statistics.median(self.times[threads])

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "file_bytes": self.file_bytes, "accuracy": self.accuracy,
                "integer_ops": self.int_ops, "optimized_graph_ops": self.graph_ops, "error": self.error,
                "median_ms": {t: self.median(t) for t in self.times},
                "fastest_ms": {t: min(v) for t, v in self.times.items()}, "times_ms": self.times}  # fmt: skip


# --- model, data, files --------------------------------------------------------------------------------


def trained_resnet(width: int, epochs: int, seed: int, data: Data) -> nn.Module:
    with seeded(seed):
        model = get_model("resnet18", in_channels=1, num_classes=10, image_size=28, width=width)
    return train(model, data, epochs=epochs, lr=1e-3, seed=seed)


def quiet_ort_quantizer() -> contextlib.AbstractContextManager:
    """ORT's quantizer logs a "consider pre-processing" warning on the root logger for every model."""
    return quiet_logger(None)


def ort_qoperator(float_path: Path, calib: list[torch.Tensor], path: Path) -> None:
    """ORT's ``quantize_static`` in QOperator format (QLinearConv etc. written directly), per-channel int8
    weights, uint8 activations, MinMax on ``calib``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = onnx.load(str(float_path), load_external_data=False).graph.input[0].name

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([{name: x.numpy()} for x in calib])

        def get_next(self) -> dict[str, Any] | None:
            return next(self._feeds, None)

    quantize_static(str(float_path), str(path), Feeds(), quant_format=QuantFormat.QOperator, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip


def onnx_contender(label: str, make: Callable[[Path], Any], path: Path, test: Data, threads: int) -> Contender:
    """Make ``path`` with ``make(path)`` (unless it exists), then measure its size, ops and accuracy; a failure
    anywhere is recorded in ``error``."""
    c = Contender(label)
    try:
        with quiet_ort_quantizer():
            if not path.exists():
                make(path)
        c.file_bytes = path.stat().st_size
        c.graph_ops = dict(optimized_op_counts(path, threads=threads))
        c.int_ops = dict(integer_ops(path, threads=threads))
        c.accuracy = ort_accuracy(path, test, threads=threads)
        c.path = path
    except Exception as err:  # ORT's quantizer and runtime raise many types; the row says which
        c.error = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
    return c


# --- timing --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def runner(c: Contender, x: torch.Tensor, threads: int) -> Callable[[], Any]:
    """A call that runs ``c`` once on ``x``: its own ORT session at ``threads``, or the module in eager."""
    if c.path is not None:
        session = ort_session(c.path, threads=threads)
        feed = {session.get_inputs()[0].name: x.numpy()}
        return lambda: session.run(None, feed)
    module = c.module
    assert module is not None

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return module(x)

    return run


def time_interleaved(contenders: list[Contender], x: torch.Tensor, threads: int, repeats: int) -> None:
    """Fill ``c.times[threads]`` of every runnable contender: warm-up, then ``repeats`` rounds of one run each,
    the order rotated by one place per round."""
    runnable = [c for c in contenders if c.error is None]
    with torch_threads(threads):
        runs = {c.label: runner(c, x, threads) for c in runnable}
        for run in runs.values():
            for _ in range(WARMUP):
                run()
        for c in runnable:
            c.times[threads] = []
        for r in range(repeats):
            k = r % len(runnable)
            for c in runnable[k:] + runnable[:k]:
                t0 = time.perf_counter()
                runs[c.label]()
                c.times[threads].append((time.perf_counter() - t0) * 1e3)


def load() -> float:
    return os.getloadavg()[0]


def kernel_ms_by_op(path: Path, x: torch.Tensor, threads: int, runs: int) -> dict[str, float]:
    """ORT's own profiler on ``runs`` runs of ``x`` (after warm-up): ms per run spent in each op type's
    kernels. Where the time goes, e.g. whether QLinearConv beats the float Conv it replaces."""
    import json

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="aicompute-ortprof-") as tmp:
        options.profile_file_prefix = str(Path(tmp, "profile"))
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.numpy()}
        for _ in range(WARMUP):
            session.run(None, feed)
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    total: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e["args"]["op_name"]
            total[op] = total.get(op, 0.0) + e["dur"] / 1e3  # µs → ms
    warm = runs + WARMUP  # the profile holds the warm-up runs too
    return {op: ms / warm for op, ms in sorted(total.items(), key=lambda kv: -kv[1])}


# --- claims and table ----------------------------------------------------------------------------------


def claims(by: dict[str, Contender], thread_counts: tuple[int, ...]) -> list[tuple[str, str, str]]:
    """(claim, measured, pass/FAIL) rows; a comparison with a model that could not be made or run fails."""
    fp32, ours = by[FP32], by[OURS]
    size = fp32.file_bytes / ours.file_bytes
    out = [(f"ours file ≥ {CLAIM_SIZE:g}× smaller than fp32", f"{size:.2f}×", size >= CLAIM_SIZE)]
    for t in thread_counts:
        speedup = fp32.median(t) / ours.median(t)
        out.append((f"ours ≥ {CLAIM_SPEEDUP:g}× faster than {FP32}, {t} thr",
                    f"{speedup:.2f}× ({fp32.median(t):.2f} → {ours.median(t):.2f} ms)", speedup >= CLAIM_SPEEDUP))
        for label in ORT_QDQ:
            other = by[label]
            if other.error is not None:
                out.append((f"ours at least as fast as {label}, {t} thr", other.error, False))
            else:
                out.append((f"ours at least as fast as {label}, {t} thr",
                            f"{ours.median(t):.2f} vs {other.median(t):.2f} ms", ours.median(t) <= other.median(t)))
    for label in ORT_QDQ:
        other = by[label]
        if other.accuracy is None:
            out.append((f"ours at least as accurate as {label}", str(other.error), False))
        else:
            out.append((f"ours at least as accurate as {label}", f"{100 * ours.accuracy:.1f} vs "
                        f"{100 * other.accuracy:.1f} %", ours.accuracy >= other.accuracy))  # fmt: skip
    return [(text, measured, "pass" if ok else "FAIL") for text, measured, ok in out]


def ops_cell(ops: dict[str, int]) -> str:
    return ", ".join(f"{op}×{n}" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def table_row(c: Contender, fp32: Contender, thread_counts: tuple[int, ...]) -> tuple[Any, ...]:
    """Size, accuracy, and per thread count: median ms, fastest ms, speedup over ORT fp32 (of the medians)."""
    kib = "—" if c.file_bytes is None else f"{c.file_bytes / 1024:,.1f}"
    smaller = "—" if c.file_bytes is None else f"{fp32.file_bytes / c.file_bytes:.2f}×"
    acc = "—" if c.accuracy is None else round(100 * c.accuracy, 1)
    timing: list[Any] = []
    for t in thread_counts:
        if t in c.times:
            timing += [round(c.median(t), 2), round(min(c.times[t]), 2), f"{fp32.median(t) / c.median(t):.2f}×"]
        else:
            timing += ["—", "—", "—"]
    return (c.label if c.error is None else f"{c.label} (failed)", kib, smaller, acc, *timing)


def print_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console(width=max(120, Console().width)).print(table)


def print_graphs(contenders: list[Contender]) -> None:
    """What ORT runs for each file after its optimizations: integer kernels and everything else."""
    rows = []
    for c in contenders:
        if c.module is not None:
            continue
        if c.error is not None:
            rows.append((c.label, f"failed: {c.error}", ""))
            continue
        rest = {op: n for op, n in c.graph_ops.items() if op not in c.int_ops}
        rows.append((c.label, ops_cell(c.int_ops), ops_cell(rest)))
    print_table("Graphs ORT runs (after its optimizations)", ("model", "integer ops", "other ops"), rows)


# --- main ----------------------------------------------------------------------------------------------


def make_contenders(result: QuantResult, model: nn.Module, calib: list[torch.Tensor], x: torch.Tensor, test: Data,
                    folder: Path, repeats: int, threads: int) -> tuple[Receipt, list[Contender]]:
    """Our receipt (which writes our int8 file and the fp32 file beside it), ORT's three quantized files made
    from that fp32 file, and the two PyTorch models; every file measured for size, ops and accuracy."""
    ours_path, fp32_path = folder / "resnet18.int8.onnx", folder / "resnet18.fp32.onnx"
    receipt = make_receipt(result, [x], test, path=ours_path, batch_size=BATCH, repeats=repeats, threads=threads)
    files: dict[str, tuple[Callable[[Path], Any], Path]] = {
        FP32: (lambda p: None, fp32_path),
        OURS: (lambda p: None, ours_path),
        ORT_QDQ[0]: (lambda p: ort_quantize_static(fp32_path, calib, p, activation_type="uint8"),
                     folder / "ort_qdq_u8.onnx"),
        ORT_QDQ[1]: (lambda p: ort_quantize_static(fp32_path, calib, p), folder / "ort_qdq_s8.onnx"),
        ORT_QOP: (lambda p: ort_qoperator(fp32_path, calib, p), folder / "ort_qop_u8.onnx"),
    }  # fmt: skip
    contenders = [onnx_contender(label, make, path, test, threads) for label, (make, path) in files.items()]
    contenders += [
        Contender(TORCH_FOLDED, module=result.float_model, accuracy=result.float_accuracy),
        Contender(TORCH_BN, module=model, accuracy=evaluate(model, test).accuracy),
    ]
    for c in contenders[:2]:  # FP32 and OURS: the comparison has no sense without them
        if c.error is not None:
            raise SystemExit(f"{c.label} failed: {c.error}")
    return receipt, contenders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                    help="ResNet-18 width (stages of w, 2w, 4w, 8w channels); results/quant_ort_speed_w<width>.json "
                         "unless the default")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30, help="timed rounds per thread count")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="the fixed thread count")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    start, load_start = time.perf_counter(), load()
    thread_counts = tuple(dict.fromkeys((args.threads, 1)))
    train_set, test_set = get_dataset("mnist", "train"), get_dataset("mnist", "test")
    train_data, test = (train_set.inputs, train_set.targets), (test_set.inputs, test_set.targets)
    x = test_set.inputs[:BATCH]
    calib = list(calibration_batches(train_data, batch_size=BATCH, limit=CALIB_BATCHES))

    seconds: dict[str, float] = {}
    model = trained_resnet(args.width, args.epochs, args.seed, train_data)
    seconds["train"] = time.perf_counter() - start
    t0 = time.perf_counter()
    result = quantize(model, calib, QuantConfig(), eval_data=test, batch_size=BATCH)
    seconds["quantize"] = time.perf_counter() - t0
    loads = {}
    with tempfile.TemporaryDirectory(prefix="aicompute-ortspeed-") as tmp:
        t0 = time.perf_counter()
        receipt, contenders = make_contenders(result, model, calib, x, test, Path(tmp), args.repeats, args.threads)
        seconds["files"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for t in thread_counts:
            loads[t] = load()
            time_interleaved(contenders, x, t, args.repeats)
        seconds["timing"] = time.perf_counter() - t0
        profiles = {c.label: kernel_ms_by_op(c.path, x, 1, PROFILE_RUNS) for c in contenders[:3] if c.path}

    by = {c.label: c for c in contenders}
    for label, meaning in LEGEND.items():
        print(f"{label:<20} {meaning}")
    print_graphs(contenders)
    print_table("ORT kernel time per op type, 1 thread (ms per run, ORT's profiler)", ("model", "ms by op type"),
                [(label, ", ".join(f"{op} {ms:.2f}" for op, ms in ops.items())) for label, ops in profiles.items()])
    claim_rows = claims(by, thread_counts)
    print_table("Claims", ("claim", "measured", "result"), claim_rows)
    seconds["total"] = time.perf_counter() - start
    timing_cols = [col for t in thread_counts for col in (f"ms @{t} thr (median)", "fastest", "× ORT fp32")]
    load_text = ", ".join(f"{loads[t]:.1f} before the {t}-thread timing" for t in thread_counts)
    name = "quant_ort_speed" if args.width == DEFAULT_WIDTH else f"quant_ort_speed_w{args.width}"
    report(name,
           f"ResNet-18 width {args.width}, mnist, batch {BATCH}×1×28×28: median of {args.repeats} interleaved runs "
           f"(ms); {os.cpu_count()} cores, 1-min load {load_start:.1f} at start, {load_text}",
           ["model", "file KiB", "× smaller", "acc % (test)", *timing_cols],
           [table_row(c, by[FP32], thread_counts) for c in contenders],
           claims=[{"claim": a, "measured": b, "result": r} for a, b, r in claim_rows], legend=LEGEND,
           contenders=[c.to_dict() for c in contenders], receipt=receipt.to_dict(),
           sim_accuracy=result.accuracy, width=args.width, epochs=args.epochs, seed=args.seed, batch=BATCH,
           calibration_images=sum(len(b) for b in calib), test_images=len(test[1]), repeats=args.repeats,
           thread_counts=list(thread_counts), cores=os.cpu_count(), load_start=load_start,
           load_before_timing=loads, load_end=load(), seconds=seconds, kernel_ms_by_op_1_thread=profiles)  # fmt: skip
    print(f"library receipt (sequential, {args.threads} threads): ORT fp32 {receipt.float_ms:.2f} ms, ours "
          f"{receipt.quant_ms:.2f} ms ({receipt.speedup:.2f}×), {receipt.size_ratio:.2f}× smaller; warnings: "
          f"{'; '.join(receipt.warnings) or 'none'}")
    print(f"total {seconds['total']:.0f} s; 1-min load average {load():.1f} on {os.cpu_count()} cores at the end")


if __name__ == "__main__":
    main()
