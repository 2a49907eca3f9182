"""``aicompute`` — the command-line face of the library.

Each command parses its arguments, calls one library function, and prints the result record: as a table,
or as JSON with ``--json``. A user mistake (``AicomputeError``) prints one ``error: …`` line on stderr and
exits with status 2, without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from aicompute.cli import demo as demo_cmd
from aicompute.cli import design as design_cmd
from aicompute.cli import formats as formats_cmd
from aicompute.cli import hw as hw_cmd
from aicompute.cli import models as models_cmd
from aicompute.cli import parallel as parallel_cmd
from aicompute.cli import profile as profile_cmd
from aicompute.cli import quantize as quantize_cmd
from aicompute.cli import train as train_cmd
from aicompute.errors import AicomputeError

app = typer.Typer(
    name="aicompute",
    help="The three compute modes of modern AI: model structure, compression, distributed parallelism.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_cmd.register(app)
train_cmd.register(app)
profile_cmd.register(app)
design_cmd.register(app)
hw_cmd.register(app)
formats_cmd.register(app)
quantize_cmd.register(app)
parallel_cmd.register(app)
demo_cmd.register(app)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point; exits with the command's status."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="aicompute")
    except AicomputeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
