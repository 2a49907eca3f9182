"""``aicompute parallel``: ``run`` reports a killed rank, ``jobs`` lists options and ``run`` rejects unknown
ones, and ``bench-comm`` reports nccl-tests' bandwidths and plots them."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from aicompute.cli.parallel import register
from aicompute.errors import AicomputeError
from aicompute.parallel.launch import RankFailedError

pytestmark = pytest.mark.usefixtures("two_minute_limit")


@pytest.mark.slow
def test_cli_reports_a_killed_rank(tmp_path):
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["parallel", "run", "--nproc", "2", "--timeout", "20", "allreduce-check",
                                      "--steps", "2", "--fail-rank", "1", "--fail-mode", "kill"])
    assert isinstance(result.exception, RankFailedError)
    assert str(result.exception) == "rank 1 failed: killed by signal SIGKILL"


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
