"""Shared by the benchmark scripts: print a table and write the JSON record (atomically)."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from aicompute.fileio import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }


def report(name: str, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], **extra: Any) -> Path:
    """Print ``rows`` as a table and write ``results/<name>.json`` with the machine description."""
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    Console(width=max(120, Console().width)).print(table)
    record = {"benchmark": name, "machine": machine(), "columns": list(columns), "rows": [list(r) for r in rows],
              **extra}
    path = atomic_write_text(RESULTS / f"{name}.json", json.dumps(record, indent=2, default=str))
    print(f"wrote {path}")
    return path
