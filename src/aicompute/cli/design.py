"""``aicompute design`` — the lightweight-design comparisons and the seed's classic-CNN table, profiled now.

    aicompute design                      # both tables
    aicompute design --only cnn --json    # the CNN table as JSON
"""

from __future__ import annotations

import typer

from aicompute.cli.output import JSON_HELP, console, print_json, print_table
from aicompute.errors import AicomputeError

TABLES = ("comparisons", "cnn")


def design(
    only: str | None = typer.Option(None, "--only", help="Print one table: comparisons or cnn."),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Params, MACs and bytes of each lightweight design beside its closed form; the classic-CNN table."""
    from aicompute.profile.cnn_table import cnn_table
    from aicompute.profile.design import DesignResult, design_comparisons

    if only is not None and only not in TABLES:
        raise AicomputeError(f"--only takes {' or '.join(TABLES)}, got {only!r}; leave it out for both tables")
    comparisons = design_comparisons() if only in (None, "comparisons") else None
    cnn = cnn_table() if only in (None, "cnn") else None
    if json:
        records = [r.to_dict() for r in (comparisons, cnn) if r is not None]
        print_json(records[0] if len(records) == 1 else {"kind": "design", "tables": records})
        return
    if comparisons is not None:
        print_table(
            "lightweight designs (batch 1, float32)", DesignResult.COLUMNS, comparisons.rows(),
            caption="closed form = the design's formula at these sizes; × = ratio to the first variant",
        )  # fmt: skip
        for c in comparisons.comparisons:
            console.print(f"[bold]{c.title}[/bold] ({c.setting}): {c.shared()}; {c.note}", soft_wrap=True)
    if cnn is not None:
        print_table(
            "classic CNNs from the zoo at the seed's input sizes", cnn.COLUMNS, cnn.rows(),
            caption="'seed says' is the seed text's printed figure; ours are profiled now (batch 1, meta)",
        )  # fmt: skip
        for note in cnn.notes():
            console.print(note, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("design")(design)
