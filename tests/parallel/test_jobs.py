"""The job registry and ``--option VALUE`` parsing (no ranks): registration, lookup by name or by file,
conversion by annotation, and the messages for bad options.

``_job_options`` here is loaded as ``this_file.py:_job_options``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aicompute.errors import AicomputeError
from aicompute.parallel.jobs import Job, get_job, list_jobs, parse_job_options, register_job


def _job_options(ctx, *, steps: int = 1, lr: float = 0.1, name: str = "x", verbose: bool = False,
                 out: Path | None = None) -> None:
    """Only here for its signature."""


@pytest.fixture
def private_registry(monkeypatch):
    module = sys.modules["aicompute.parallel.jobs"]
    monkeypatch.setattr(module, "_JOBS", dict(module._JOBS))


def test_builtin_jobs_are_registered():
    names = [job.name for job in list_jobs()]
    assert {"allreduce-check", "bench-comm", "ddp", "ps", "fsdp", "local-sgd"} <= set(names)
    assert list(get_job("allreduce-check").options())[:2] == ["steps", "numel"]


def test_register_job_is_idempotent_and_rejects_a_second_owner(private_registry):
    def work(ctx, *, n: int = 1):
        """Does work."""

    register_job("test-work")(work)
    register_job("test-work")(work)  # a spawned rank re-imports the registering module
    assert get_job("test-work").description == "Does work."

    def other(ctx):
        pass

    with pytest.raises(RuntimeError, match="already registered"):
        register_job("test-work")(other)


def test_unknown_job_suggests_a_name_and_file_jobs_load_by_path():
    with pytest.raises(AicomputeError, match="unknown job 'allreduce-chek'.*did you mean 'allreduce-check'"):
        get_job("allreduce-chek")
    job = get_job(f"{__file__}:_job_options")
    assert job.file == str(Path(__file__).resolve()) and "steps" in job.options()
    with pytest.raises(AicomputeError, match="has no function 'nope'"):
        get_job(f"{__file__}:nope")
    with pytest.raises(AicomputeError, match="does not exist"):
        get_job("missing/file.py:fn")


def test_options_are_converted_by_annotation():
    job = Job("opts", _job_options)
    got = parse_job_options(job, ["--steps", "3", "--lr", "0.5", "--name", "a-b", "--verbose", "--out", "o.pt"])
    assert got == {"steps": 3, "lr": 0.5, "name": "a-b", "verbose": True, "out": Path("o.pt")}
    assert parse_job_options(job, ["--no-verbose"]) == {"verbose": False}
    assert parse_job_options(job, ["--verbose", "false", "--steps", "-2"]) == {"verbose": False, "steps": -2}

    def untyped(ctx, *, tag="x"):
        pass

    assert parse_job_options(Job("untyped", untyped), ["--tag", "5"]) == {"tag": "5"}  # no annotation: text


@pytest.mark.parametrize("argv, message", [
    (["--step", "3"], "no option --step.*did you mean 'steps'"),
    (["--steps"], "needs a value"),
    (["--steps", "three"], "takes int, got 'three'"),
    (["--verbose", "maybe"], "takes true or false"),
    (["steps"], "unexpected argument 'steps'"),
])
def test_bad_options_are_explained(argv, message):
    with pytest.raises(AicomputeError, match=message):
        parse_job_options(Job("opts", _job_options), argv)


def test_a_jobs_check_sees_every_option_with_defaults_before_anything_runs(private_registry):
    from aicompute.parallel.jobs import World, check_options

    seen = []

    def check(world, **options):
        seen.append((world, options))
        if options["steps"] > 10:
            raise AicomputeError("steps must be at most 10")

    register_job("test-checked", check=check)(_job_options)
    job = get_job("test-checked")
    world = World(4, Path("ckpt"), resume=True)
    assert check_options(job, {"lr": 0.5}, world) == {"lr": 0.5}  # the options given, not the filled-in ones
    assert seen == [(world, {"steps": 1, "lr": 0.5, "name": "x", "verbose": False, "out": None})]
    with pytest.raises(AicomputeError, match="steps must be at most 10"):
        check_options(job, {"steps": 11}, world)

    def options_only(**options):  # a check that does not ask for the world
        seen.append(options)

    register_job("test-checked-options", check=options_only)(_job_options)
    check_options(get_job("test-checked-options"), {}, world)
    assert seen[-1] == {"steps": 1, "lr": 0.1, "name": "x", "verbose": False, "out": None}
