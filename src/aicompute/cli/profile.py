"""``aicompute profile`` — params, MACs, bytes, intensity and memory per module or per op; roofline on a chip."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import typer

from aicompute.cli.output import JSON_HELP, binary_size, console, print_json, print_table, si
from aicompute.errors import AicomputeError
from aicompute.fileio import atomic_write_bytes, atomic_write_text

DEFAULT_ROOFLINE_HW = "h100"


def profile(
    model: str = typer.Argument(..., help="Zoo name (see `aicompute models`) or pkg.module:factory."),
    input: list[str] = typer.Option(None, "--input", help="Input shape with batch, e.g. 1x3x224x224, or 1x128:int64 "
                                    "for token ids; repeat it for several inputs (zoo default if omitted)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Batch for the zoo's default input shape [default: 1]."),
    dtype: str = typer.Option("fp32", "--dtype", help="Trace dtype: fp32, bf16 or fp16."),
    training: bool = typer.Option(False, "--training", help="Forward + the real backward, and training memory."),
    optimizer: str = typer.Option(None, "--optimizer", help="With --training: sgd, momentum, adam or adamw "
                                  "(training memory) [default: adam]."),
    hw: str = typer.Option(None, "--hw", help="Roofline on this chip (see `aicompute hw list`; 'local' after a probe)."),
    hw_dtype: str = typer.Option(None, "--hw-dtype", help="Price the roofline at this dtype's peaks, e.g. tf32 "
                                 "(float32 on tensor cores) [default: each op's own dtype]."),
    by: str = typer.Option("module", "--by", help="Rows per 'module' (a tree) or per 'op'."),
    depth: int = typer.Option(2, "--depth", help="Module tree depth shown (0 = the model only)."),
    phase: str = typer.Option(None, "--phase", help="prefill or decode, for models with a KV cache (GPT)."),
    kv_len: int = typer.Option(None, "--kv-len", help="Decode: positions the new token attends to."),
    strict: bool = typer.Option(False, "--strict", help="Fail if any op has no cost formula."),
    csv_path: Path = typer.Option(None, "--csv", help="Also write the rows as CSV to this file."),
    roofline_png: Path = typer.Option(None, "--roofline", help=f"Write a roofline PNG (on --hw, default {DEFAULT_ROOFLINE_HW})."),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Trace MODEL on fake tensors (no weights needed) and show what it computes."""
    from aicompute.profile import profile as run_profile

    if by not in ("module", "op"):
        raise AicomputeError(f"--by takes 'module' or 'op', got {by!r}")
    if depth < 0:
        raise AicomputeError(f"--depth must be 0 or more, got {depth}")
    if input and batch_size is not None:
        raise AicomputeError("--batch-size sets the batch of the zoo's default input; with --input, put the batch "
                             f"in the shape (e.g. {batch_size}x...) and drop --batch-size")
    if optimizer is not None and not training:
        raise AicomputeError("--optimizer sizes the training memory; add --training, or drop --optimizer")
    if hw_dtype is not None and hw is None and roofline_png is None:
        raise AicomputeError("--hw-dtype prices the roofline; add --hw CHIP (or --roofline PNG)")
    result = run_profile(
        model, input_shape=input or None, batch_size=1 if batch_size is None else batch_size, dtype=dtype,
        mode="training" if training else "inference", optimizer=optimizer or "adam", phase=phase, kv_len=kv_len,
        strict=strict,
    )
    if roofline_png is not None and hw is None:
        hw = DEFAULT_ROOFLINE_HW
    roof = _roofline(result, hw, depth, hw_dtype) if hw else None
    columns, rows = _rows(result, roof, by, depth)
    if csv_path is not None:
        atomic_write_text(csv_path, _csv(columns, rows))
    if roofline_png is not None:
        from aicompute.report.roofline import roofline_png as render

        atomic_write_bytes(roofline_png, render(roof.to_dict(), by=by))
    if json:
        record = result.to_dict(depth=depth)
        if roof is not None:
            record["roofline"] = roof.to_dict()
        print_json(record)
        return
    _print(result, roof, by, columns, rows)
    for path in (csv_path, roofline_png):
        if path is not None:
            console.print(f"wrote {path}")


def _roofline(result: Any, hw: str, depth: int, dtype: str | None) -> Any:
    from aicompute.profile.roofline import roofline

    return roofline(result, hw, depth=depth, dtype=dtype)


def _rows(result: Any, roof: Any, by: str, depth: int) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Table rows; with a roofline, each row also gets its estimated time and bound."""
    times = {}
    if roof is not None:
        times = {row.name: row for row in (roof.ops if by == "op" else roof.modules)}
    if by == "op":  # exact numbers here (for --csv); _display shortens them for the table
        columns = ["op", "category", "calls", "MACs", "FLOPs", "read bytes", "written bytes", "FLOP/byte"]
        rows = [(r.op, r.category, r.cost.calls, r.cost.macs, r.cost.flops, r.cost.read, r.cost.written,
                 r.cost.intensity) for r in result.by_op()]
    else:  # the full path here (for --csv); _display indents the last part of it for the table
        columns = ["module", "type", "params", "MACs", "FLOPs", "read bytes", "written bytes", "output bytes",
                   "FLOP/byte"]
        rows = [(row.path or "(model)", row.type, row.params, row.cost.macs, row.cost.flops, row.cost.read,
                 row.cost.written, row.output_bytes, row.cost.intensity)
                for row in result.by_module(depth)]
        if times:  # module times roll up: the roofline rows at this depth are the module's whole subtree
            times = _subtree_times(roof, depth)
    if times:
        columns += ["est. ms", "bound"]
        keys = [r.op for r in result.by_op()] if by == "op" else [row.path for row in result.by_module(depth)]
        rows = [row + _time_cells(times.get(key)) for row, key in zip(rows, keys)]
    return columns, rows


def _subtree_times(roof: Any, depth: int) -> dict[str, Any]:
    """Module path → (time, compute-bound time) summed over the subtree, from the roofline's leaf rows."""
    from aicompute.profile.rollup import ancestors

    out: dict[str, list[float]] = {}
    for row in roof.modules:
        for path in ancestors(row.name):
            acc = out.setdefault(path, [0.0, 0.0])
            acc[0] += row.time_s
            acc[1] += row.compute_bound_s
    return {path: _Timed(*acc) for path, acc in out.items()}


class _Timed:
    def __init__(self, time_s: float, compute_bound_s: float) -> None:
        self.time_s = time_s
        self.compute_bound_s = compute_bound_s

    @property
    def bound(self) -> str:
        return "compute" if self.compute_bound_s * 2 >= self.time_s and self.time_s > 0 else "memory"


def _time_cells(row: Any) -> tuple[Any, ...]:
    if row is None:
        return (0.0, "—")
    return (row.time_s * 1e3, row.bound)


def _display(columns: list[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """MACs/FLOPs with SI prefixes, bytes with binary prefixes, a module path as its last part indented
    by its depth; other cells as they are."""
    shorten = {"MACs": si, "FLOPs": si, "read bytes": binary_size, "written bytes": binary_size,
               "output bytes": binary_size, "module": _tree_name}
    fns = [shorten.get(c) for c in columns]
    return [tuple(fn(v) if fn else v for fn, v in zip(fns, row)) for row in rows]


def _tree_name(path: str) -> str:
    from aicompute.profile.rollup import module_depth

    if path == "(model)":
        return path
    return "  " * module_depth(path) + path.rpartition(".")[2]


def _csv(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def _print(result: Any, roof: Any, by: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    s = result.summary()
    shapes = ", ".join("x".join(map(str, shape)) + ("" if dt.startswith(("float", "bfloat")) else f":{dt}")
                       for shape, dt in result.inputs)
    title = f"{result.model} · input {shapes} · {result.dtype} · {result.mode}"
    if result.phase:
        title += f" · {result.phase}" + (f" (kv_len {result.kv_len})" if result.kv_len else "")
    print_table(
        title,
        ["params", "trainable", "MACs", "FLOPs", "tensor-op share", "read", "written", "FLOP/byte"],
        [(s["params"], s["trainable_params"], si(s["macs"]), si(s["flops"]), f"{100 * s['tensor_flops_share']:.1f}%",
          binary_size(s["read_bytes"]), binary_size(s["written_bytes"]), s["intensity_flops_per_byte"])],
        caption="MACs = multiply-accumulates of matmul/conv/attention; FLOPs = 2 x MACs + vector-op FLOPs",
    )
    print_table(f"per {by}", columns, _display(columns, rows))
    print_table("memory", ["item", "size"], [
        (key.removesuffix("_bytes"), binary_size(value) if key.endswith("_bytes") else value)
        for key, value in result.memory().items()])
    coverage = result.coverage()
    if coverage["uncounted"]:
        print_table("uncounted ops (no cost formula; bytes still counted)", ["op", "calls", "bytes", "share of bytes"],
                    [(u["op"], u["calls"], binary_size(u["bytes"]), f"{100 * u['bytes_share']:.1f}%")
                     for u in coverage["uncounted"]])
    for item in coverage["memory_not_traced"]:
        console.print(f"training memory is an underestimate: {item['op']} ({item['calls']} calls): {item['why']}")
    console.print(f"{coverage['counted_calls']} op calls counted, {coverage['ignored_calls']} ignored on purpose "
                  f"(views, metadata), {coverage['uncounted_calls']} uncounted · traced in {result.seconds:.2f} s")
    if roof is not None:
        t = roof.to_dict()["totals"]
        console.print(f"roofline on {roof.hw.name}: estimated {t['latency_ms']:.4g} ms, "
                      f"{100 * t['compute_bound_share']:.0f}% of the time compute-bound, "
                      f"{100 * t['memory_bound_share']:.0f}% memory-bound")
        for note in roof.notes():
            console.print(f"  · {note}")


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
