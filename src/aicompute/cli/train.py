"""``aicompute train`` and ``aicompute eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aicompute.cli.output import JSON_HELP, print_json, print_table


def train(
    model: str = typer.Argument(..., help="Zoo model name (see `aicompute models`) or pkg.module:factory."),
    data: str = typer.Option(..., "--data", "-d", help="Data set: mnist, digits, mnist1d, chars, synthetic."),
    epochs: int = typer.Option(1, "--epochs", "-e", min=1, help="Passes over the training split."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the checkpoint here."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", min=0.0, help="Weight decay (decoupled for adamw)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam, adamw or sgd."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same CPU result."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps."),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train MODEL on a data set; evaluate on its test split; optionally save a checkpoint."""
    from aicompute.train import train_model

    result = train_model(
        model, data, epochs=epochs, out=out, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
        optimizer=optimizer,
        seed=seed, progress=not json, max_steps=max_steps,
    )
    record = result.to_dict()
    if json:
        print_json(record)
        return
    history = record.get("history", [])
    print_table(
        f"{model} on {data}",
        ["epoch", "train loss", "train acc", "val loss", "val acc", "seconds"],
        [
            (i + 1, h.get("train_loss"), h.get("train_accuracy"), h.get("val_loss"),
             h.get("val_accuracy"), h.get("seconds"))
            for i, h in enumerate(history)
        ],
        caption=_summary(record),
    )


def evaluate(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `aicompute train --out`."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Data set (default: the checkpoint's own)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    allow_import: bool = typer.Option(
        False, "--allow-import",
        help="Let a checkpoint of a pkg.module:factory model import and call that code (trusted files only).",
    ),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Evaluate a checkpoint on the test split of a data set."""
    from aicompute.train import evaluate_checkpoint

    record = evaluate_checkpoint(checkpoint, data, batch_size=batch_size, allow_import=allow_import).to_dict()
    if json:
        print_json(record)
        return
    print_table(f"evaluation of {checkpoint}", ["metric", "value"],
                [(k, v) for k, v in record.items() if k != "kind" and not isinstance(v, (dict, list))])


def _summary(record: dict) -> str:
    parts = [f"{k}: {record[k]}" for k in ("params", "test_accuracy", "test_loss", "checkpoint")
             if record.get(k) is not None]
    return " · ".join(parts)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(evaluate)
