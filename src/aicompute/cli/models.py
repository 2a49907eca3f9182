"""``aicompute models`` — the zoo with parameter counts."""

from __future__ import annotations

import typer

from aicompute.cli.output import JSON_HELP, print_json, print_table
from aicompute.models import zoo_table


def models(json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the model zoo: name, family, parameters, default input shape."""
    table = zoo_table()
    if json:
        print_json(table.to_dict())
        return
    print_table(
        "aicompute model zoo",
        ["model", "family", "params", "default input", "description"],
        [(r.name, r.family, r.params, r.input_shape, r.description) for r in table.rows],
        caption="params counted on the meta device; a user model is named pkg.module:factory",
    )


def register(app: typer.Typer) -> None:
    app.command("models")(models)
