"""``aicompute design``: the comparison and classic-CNN tables as text and JSON, and its argument check."""

import json

import pytest
import typer
from typer.testing import CliRunner

from aicompute.cli.design import register
from aicompute.errors import AicomputeError


@pytest.fixture
def cli():
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps "design" a subcommand
    return lambda *argv: CliRunner().invoke(app, list(argv))


def test_cli_cnn_json(cli):
    result = cli("design", "--only", "cnn", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["kind"] == "cnn-table" and record["rows"][2]["params"] == 138_357_544


def test_cli_tables(cli):
    result = cli("design")
    assert result.exit_code == 0, result.output
    assert "seed says" in result.output and "15.5G" in result.output and "✓" in result.output
    assert "≠" not in result.output


def test_cli_rejects_unknown_table(cli):
    result = cli("design", "--only", "nets")
    assert isinstance(result.exception, AicomputeError)
    assert "--only takes comparisons or cnn, got 'nets'" in str(result.exception)
