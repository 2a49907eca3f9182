"""``aicompute demo`` — the one-command tour; writes report.html and the JSON of every result."""

from __future__ import annotations

from pathlib import Path

import typer

from aicompute.cli.output import JSON_HELP, console, print_json


def demo(
    out: Path = typer.Option(Path("aicompute-demo"), "--out", "-o", help="Folder for report.html and JSON."),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run the tour on the embedded defaults and write an HTML report."""
    from aicompute.demo import run_demo

    result = run_demo(out, progress=not json)
    if json:
        print_json(result.to_dict())
        return
    total = sum(result.seconds.values())
    console.print(f"report: [bold]{result.report.resolve()}[/bold]  ({len(result.records)} chapters, {total:.0f} s)",
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
