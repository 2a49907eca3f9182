"""``aicompute parallel``: ``run`` trains a data-parallel job end to end and names a rank that died, bad
input is one ``error:`` line before any rank starts, ``jobs`` lists options and ``run`` rejects unknown
ones, and ``bench-comm`` reports nccl-tests' bandwidths and plots them."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from aicompute.cli.main import main
from aicompute.cli.parallel import register
from aicompute.errors import AicomputeError
from aicompute.parallel import launch as launch_module
from aicompute.parallel.data_parallel import DataParallelConfig, DataParallelResult, train_single_process
from aicompute.parallel.launch import LaunchResult

pytestmark = pytest.mark.usefixtures("two_minute_limit")


def run(capfd, *argv):
    """``aicompute ARGV`` in this process: (exit status, stdout, stderr), the ranks' output included."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capfd.readouterr()
    return exc.value.code, out, err


@pytest.mark.slow
def test_run_trains_ddp_end_to_end(capfd):
    code, out, err = run(capfd, "parallel", "run", "--nproc", "2", "--json", "ddp", "--model", "lenet5", "--data",
                         "mnist", "--steps", "3")
    assert code == 0, err
    record = json.loads(out)  # the progress went to stderr: stdout is the record alone
    assert record["kind"] == "parallel-run" and record["world_size"] == 2 and record["backend"] == "gloo"
    value = record["value"]
    assert value["kind"] == "data-parallel" and value["steps"] == 3 and value["global_batch"] == 32
    assert value["config"]["model"] == "lenet5" and value["config"]["data"] == "mnist"
    reference = train_single_process(DataParallelConfig("ddp", model="lenet5", data="mnist", steps=3), 2)
    assert max(abs(a - b) for a, b in zip(value["losses"], reference)) < 1e-5
    assert "[ddp] epoch 1/1  step 3/3" in err  # rank 0's progress


@pytest.mark.slow
def test_run_names_a_rank_that_died(capfd):
    code, _, err = run(capfd, "parallel", "run", "--nproc", "2", "--timeout", "20", "ddp", "--steps", "3",
                       "--fail-rank", "1", "--fail-step", "2", "--fail-mode", "exit")
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error:")] == \
        ["error: rank 1 failed: exited with status 3 without an error report"]
    assert "Traceback" not in err


def test_run_prints_a_training_record_as_a_table(capfd, monkeypatch):
    config = DataParallelConfig("fsdp", model="mlp", data="digits", steps=2)
    record = DataParallelResult(config, 4, 52_650, 64, [2.5, 1.25], 1.5, 0.625, 3 * 2 * 210_600, 947_700, 947_700,
                                False, 2, {"params": 52_656, "grads": 52_656, "optimizer": 0, "total": 105_312},
                                {"total_bytes": 105_300}, 3.0, resumed_from=1)

    def fake_launch(job, **kw):
        assert job == "fsdp" and kw["options"] == {"steps": 2} and kw["nproc"] == 4
        return LaunchResult(job, 4, "gloo", 3.5, value=record)

    monkeypatch.setattr(launch_module, "launch", fake_launch)
    code, out, err = run(capfd, "parallel", "run", "--nproc", "4", "fsdp", "--steps", "2")
    assert code == 0, err
    for text in ("fsdp on 4 gloo ranks (3.50 s)", "mlp on digits, 52,650 params", "2.5000 → 1.2500",
                 "2 (resumed after step 1), global batch 64", "1.5000 / 62.50%", "ring model of the payload",
                 "102.8 KiB = 51.42 KiB + 51.42 KiB + 0 B"):
        assert text in out


@pytest.mark.parametrize("argv, message", [
    (["--nproc", "0", "ddp"], "nproc must be a positive integer, got 0"),
    (["ddp", "--model", "transformer", "--data", "mnist"], "this model reads token sequences"),
    (["fsdp", "--model", "lenet7"], "unknown model 'lenet7' (did you mean 'lenet5'?)"),
    (["ps", "--data", "imagenet"], "unknown data set 'imagenet'"),
    (["ddp", "--hook", "int8"], "unknown comm hook 'int8'"),
    (["local-sgd", "--hook", "fp16"], "--hook fp16 compresses DDP's all-reduce; use it with mode ddp, not local-sgd"),
    (["ddp", "--fail-mode", "explode"], "unknown --fail-mode 'explode'"),
    (["ddp", "--stepz", "3"], "job 'ddp' has no option --stepz (did you mean 'steps'?)"),
    (["--resume", "ddp"], "--resume needs --checkpoint-dir"),
    (["dddp"], "unknown job 'dddp' (did you mean 'ddp'?)"),
    (["ddp", "--steps", "3", "--json"], "--json is an option of `aicompute parallel run`, not of job 'ddp': put it "
                                        "before the job name (aicompute parallel run --json ... ddp ...)"),
] + ([] if torch.cuda.is_available() else
     [(["--backend", "nccl", "ddp"], "backend nccl needs CUDA GPUs and torch sees none here; use --backend gloo")]))
def test_bad_input_is_one_error_line_before_any_rank_starts(capfd, monkeypatch, argv, message):
    def spawn(*args, **kw):
        raise AssertionError("a rank was spawned")

    monkeypatch.setattr(launch_module, "_spawn", spawn)
    code, out, err = run(capfd, "parallel", "run", *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_cli_lists_jobs_and_rejects_unknown_options():
    app = typer.Typer()
    register(app)
    listing = CliRunner().invoke(app, ["parallel", "jobs", "--json"])
    assert listing.exit_code == 0
    jobs = {j["name"]: j for j in json.loads(listing.output)["jobs"]}
    assert jobs["allreduce-check"]["options"]["fail_mode"] == "'raise'"
    bad = CliRunner().invoke(app, ["parallel", "run", "allreduce-check", "--stepz", "2"])
    assert isinstance(bad.exception, AicomputeError) and "did you mean 'steps'" in str(bad.exception)


@pytest.mark.slow
def test_bench_comm_cli_reports_nccl_tests_bandwidths_and_plots(tmp_path):
    app = typer.Typer()
    register(app)
    plot = tmp_path / "busbw.png"
    out = CliRunner().invoke(app, ["parallel", "bench-comm", "--nproc", "3", "--sizes", "4KiB,12KiB", "--repeats", "2",
                                   "--warmup", "0", "--segment", "1KiB", "--plot", str(plot), "--json"])
    assert out.exit_code == 0, out.output
    record = json.loads(out.output)
    assert record["world_size"] == 3 and record["backend"] == "gloo"
    rows = {(r["algorithm"], r["nbytes"]): r for r in record["rows"]}
    assert set(rows) == {(a, s) for a in ("ring", "ring-blocking", "ps", "recursive-doubling", "backend")
                         for s in (4096, 12288)}
    for (algorithm, size), row in rows.items():
        assert row["algbw_gbps"] == pytest.approx(size / (row["time_ms"] / 1e3) / 1e9)
        assert row["busbw_gbps"] == pytest.approx(row["algbw_gbps"] * 4 / 3)  # 2(p-1)/p at p = 3
        assert (row["model_ms"] is None) == (algorithm == "backend" or record["model"] is None)
    assert rows[("ring", 12288)]["bytes_sent"] == 2 * 2 * 12288 // 3  # rank 0, even chunks
    assert rows[("ps", 4096)]["bytes_sent"] == 2 * 4096  # rank 0 is the server: (p-1)V out
    model = record["model"]  # None only if the ping-pong was too noisy to fit (a very busy machine)
    assert model is None or (model["beta_bytes_per_s"] > 0 and model["alpha_s"] >= 0)
    assert len(record["pingpong"]) == 5
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
