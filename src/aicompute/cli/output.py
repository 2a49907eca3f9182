"""Printing result records: a rich table for people, JSON for programs (``--json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from aicompute.report.html import fmt

__all__ = ["console", "print_json", "print_table", "si", "binary_size", "JSON_HELP"]

console = Console(highlight=False)
if not console.is_terminal:  # piped or captured: rich would wrap at 80 columns and truncate wide tables
    console = Console(highlight=False, width=160)
JSON_HELP = "Print the result record as JSON instead of a table."


def print_json(record: dict[str, Any]) -> None:
    """Plain JSON on stdout (no colour codes), so it can be piped."""
    print(json.dumps(record, indent=2, default=str))


def si(value: float, unit: str = "") -> str:
    """``1_814_000_000`` → ``"1.814 G"``: 4 significant digits with a decimal (SI) prefix."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}".rstrip()


def binary_size(nbytes: float) -> str:
    """``3_500_000`` → ``"3.338 MiB"``: bytes with a binary prefix, 4 significant digits."""
    for power, prefix in ((5, "PiB"), (4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if abs(nbytes) >= 1024**power:
            return f"{nbytes / 1024**power:.4g} {prefix}"
    return f"{nbytes:.4g} B"


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None
) -> None:
    table = Table(title=title, caption=caption)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    console.print(table)
