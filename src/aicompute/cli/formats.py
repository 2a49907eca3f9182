"""``aicompute formats [CKPT]`` — the number-format table and, for a checkpoint, what each format costs it."""

from __future__ import annotations

from pathlib import Path

import typer

from aicompute.cli.output import JSON_HELP, binary_size, print_json, print_table


def formats(
    checkpoint: Path = typer.Argument(None, help="A checkpoint from `aicompute train`: measure each format on it."),
    data: str = typer.Option(None, "--data", "-d", help="Data set to measure on (default: the checkpoint's)."),
    allow_import: bool = typer.Option(False, "--allow-import", help="Trust a pkg.module:factory checkpoint."),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """FP32 / TF32 / FP16 / BF16 / FP8 / INT / binary: bits, range, precision; with CKPT, their effect on it."""
    from aicompute.compress.formats import format_table

    table = format_table()
    effects = None
    if checkpoint is not None:
        from aicompute.compress.format_effects import format_effects

        effects = format_effects(checkpoint, data, allow_import=allow_import)
    if json:
        print_json({"kind": "formats", "formats": table, "effects": effects.to_dict() if effects else None})
        return
    print_table(
        "number formats",
        ["format", "sign", "exponent", "mantissa", "bytes/value", "max", "min normal", "min subnormal", "eps"],
        [(f["name"], f["sign_bits"], f["exponent_bits"], f["mantissa_bits"], f["bytes_per_value"], _g(f["max"]),
          _g(f["min_normal"]), _g(f["min_subnormal"]), _g(f["eps"])) for f in table],
    )
    if effects is not None:
        print_table(
            f"{effects.model} on {effects.data}: weights cast to each format ({effects.params:,} weights)",
            ["format", "weight bytes", "rel. RMS error", "max abs error", "overflow", "flushed to 0", "accuracy",
             "loss"],
            [(e.format, binary_size(e.weight_bytes), e.rel_rms_error, e.max_abs_error, e.overflow_fraction,
              e.flushed_to_zero_fraction, e.accuracy, e.loss) for e in effects.effects],
            caption="activations and arithmetic stay float32: this is the cost of storing the weights in each format",
        )


def _g(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def register(app: typer.Typer) -> None:
    app.command("formats")(formats)
