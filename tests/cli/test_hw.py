"""``aicompute hw list`` / ``hw probe`` in-process, on a private Typer app with only the hw group."""

import functools
import json

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from aicompute.cli.hw import register
from aicompute.errors import AicomputeError
from aicompute.profile import hardware, probe


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AICOMPUTE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def app():
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def tiny_probe(monkeypatch):
    """The CLI's probe at tiny sizes, so the test runs in a fraction of a second."""
    small = functools.partial(probe.probe_local, matmul_size=64, copy_mib=1, vector_kib=16, device="cpu")
    monkeypatch.setattr(probe, "probe_local", small)


def invoke(app, *argv):
    result = CliRunner().invoke(app, list(argv), terminal_width=200)
    return result


def test_list_json_has_every_datasheet_spec_with_sources(app):
    result = invoke(app, "hw", "list", "--json")
    assert result.exit_code == 0, result.output
    specs = {s["key"]: s for s in json.loads(result.output)["hardware"]}
    assert list(specs) == ["h100", "a100", "v100", "rtx4090", "ascend910b"]
    assert specs["h100"]["tensor_flops"]["bfloat16"] == pytest.approx(989.4e12)
    assert specs["ascend910b"]["origin"] == "reported"
    assert all(s["source"] for s in specs.values())


def test_list_table_says_to_probe_until_probed(app, tiny_probe):
    result = invoke(app, "hw", "list")
    assert result.exit_code == 0 and "989.4" in result.output and "aicompute hw probe" in result.output
    assert invoke(app, "hw", "probe", "--repeats", "1").exit_code == 0
    result = invoke(app, "hw", "list")
    assert "local" in result.output and "measured" in result.output


def test_probe_json_prints_and_saves_the_measured_spec(app, tiny_probe):
    result = invoke(app, "hw", "probe", "--repeats", "2", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["key"] == "local" and record["measured"] and record["details"]["repeats"] == 2
    assert record["tensor_flops"]["float32"] > 0 and record["bandwidth_bytes_per_s"] > 0
    assert hardware.get_hardware("local").to_dict() == record


def test_probe_table(app, tiny_probe):
    result = invoke(app, "hw", "probe", "--repeats", "1")
    assert result.exit_code == 0, result.output
    assert "matmul GFLOP/s" in result.output and "copy bandwidth" in result.output and "saved to" in result.output


def test_bad_repeats_is_a_usage_error(app):
    result = invoke(app, "hw", "probe", "--repeats", "0")
    assert result.exit_code == 2 and "--repeats" in result.output


def test_corrupt_local_spec_surfaces_as_a_user_error(app):
    hardware.local_spec_path().write_text("[]")
    result = invoke(app, "hw", "list")
    assert isinstance(result.exception, AicomputeError)  # main() prints it as one `error:` line, exit 2
    assert "aicompute hw probe" in str(result.exception)


def test_flag_set_is_pinned(app):
    """Adding or renaming a flag is a deliberate change: update this list with it."""
    group = typer.main.get_command(app).commands["hw"]
    flags = {name: sorted(o for p in cmd.params for o in getattr(p, "opts", []) if o.startswith("-"))
             for name, cmd in group.commands.items()}
    assert flags == {"list": ["--json"], "probe": ["--json", "--repeats"]}
