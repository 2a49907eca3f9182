"""``aicompute hw list`` and ``aicompute hw probe`` — the hardware specs the roofline prices ops on.

    aicompute hw list            # datasheet peaks (dense) and bandwidth, with sources; and this machine
    aicompute hw probe           # measure this machine (matmul, vector and copy rates) into the cache
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from aicompute.cli.output import JSON_HELP, console, print_json, print_table

if TYPE_CHECKING:
    from aicompute.profile.hardware import HardwareSpec

_RATE_COLUMNS = {"float32": "fp32", "tfloat32": "tf32", "bfloat16": "bf16", "float16": "fp16", "float8": "fp8",
                 "int8": "int8"}

hw_app = typer.Typer(
    name="hw",
    help="Hardware specs: vendor peak FLOP/s and bandwidth, and this machine's measured ones.",
    no_args_is_help=True,
    add_completion=False,
)


@hw_app.command("list")
def list_specs(json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the hardware specs: dense tensor peaks per dtype (TFLOP/s, TOP/s for int8), bandwidth, memory."""
    from aicompute.profile.hardware import list_hardware, local_spec_path

    specs = list_hardware()
    if json:
        print_json({"kind": "hardware", "hardware": [spec.to_dict() for spec in specs]})
        return
    measured = any(spec.measured for spec in specs)
    caption = ("tensor rates are dense (no sparsity); float32 is the non-tensor-core rate PyTorch uses by "
               "default; sources: `aicompute hw list --json`")
    if not measured:
        caption += "; this machine: not measured yet, run `aicompute hw probe`"
    else:
        caption += f"; local measured into {local_spec_path()}"
    print_table(
        "hardware specs: dense tensor peaks in TFLOP/s (int8: TOP/s), memory bandwidth in GB/s",
        ["key", "name", *_RATE_COLUMNS.values(), "GB/s", "memory GiB", "figures"],
        [_row(spec) for spec in specs],
        caption=caption,
    )


@hw_app.command("probe")
def probe(
    repeats: int = typer.Option(10, "--repeats", min=1, help="Timed runs per figure (the median is kept)."),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Measure this machine: matmul and vector FLOP/s per dtype, copy bandwidth; save it as `local`."""
    from aicompute.profile.hardware import local_spec_path
    from aicompute.profile.probe import probe_local

    spec = probe_local(repeats=repeats, progress=not json)
    record = spec.to_dict()
    if json:
        print_json(record)
        return
    print_table(
        f"measured: {spec.name}",
        ["dtype", "matmul GFLOP/s", "vector GFLOP/s", "ridge (FLOP/byte)"],
        [(d, rate / 1e9, spec.vector_flops.get(d, 0.0) / 1e9 or None, rate / spec.bandwidth)
         for d, rate in spec.tensor_flops.items()],
        caption=f"copy bandwidth {spec.bandwidth / 1e9:,.1f} GB/s · memory {spec.memory_bytes / 2**30:,.1f} GiB",
    )
    console.print(f"saved to {local_spec_path()}; use it as hardware 'local'", soft_wrap=True)


def _row(spec: HardwareSpec) -> Sequence[object]:
    rates = [spec.tensor_flops[d] / 1e12 if d in spec.tensor_flops else None for d in _RATE_COLUMNS]
    return [spec.key, spec.name, *rates, spec.bandwidth / 1e9, spec.memory_bytes / 2**30, spec.origin]


def register(app: typer.Typer) -> None:
    app.add_typer(hw_app, name="hw")
