"""The built-in jobs: ``allreduce-check`` survives a rank killed mid-checkpoint and resumes to the same
answer, and ``bench-comm`` reports algbw / busbw by nccl-tests' definitions beside the α-β model."""

from __future__ import annotations

import json

import pytest
import torch

from aicompute.errors import AicomputeError
from aicompute.parallel.checkpoint import checkpoint_steps
from aicompute.parallel.collectives import AlphaBeta
from aicompute.parallel.comm_bench import (
    CommBenchConfig, CommBenchResult, CommBenchRow, _step_input, busbw_factor, measure_comm, parse_size,
)
from aicompute.parallel.launch import RankContext, RankFailedError, launch

pytestmark = pytest.mark.usefixtures("two_minute_limit")


@pytest.mark.slow
def test_a_rank_killed_mid_checkpoint_leaves_the_last_one_and_resume_finishes_the_job(tmp_path):
    options = {"steps": 4, "numel": 50, "seed": 7}
    with pytest.raises(RankFailedError, match="rank 1 failed: killed by signal SIGKILL"):
        launch("allreduce-check", nproc=2, timeout=20, checkpoint_dir=tmp_path,
               options={**options, "fail_rank": 1, "fail_step": 3, "fail_mode": "save"})
    assert checkpoint_steps(tmp_path) == [1, 2]
    assert (tmp_path / ".step-00000003.partial").is_dir()  # rank 1's shard of step 3, never committed

    result = launch("allreduce-check", nproc=2, timeout=20, checkpoint_dir=tmp_path, resume=True, options=options)
    assert result.value["resumed_from"] == 2
    # the job's answer, computed here without any ring: the sum over steps and ranks of every input
    expected = sum(_step_input(7, step, rank, 50, torch.device("cpu")).sum().item()
                   for step in range(1, 5) for rank in range(2))
    assert result.value["checksum"] == pytest.approx(expected, rel=1e-12)
    assert checkpoint_steps(tmp_path) == [3, 4]
    assert not list(tmp_path.glob(".*.partial"))


def test_busbw_factors_are_nccl_tests():
    assert busbw_factor("all_reduce", 8) == pytest.approx(2 * 7 / 8)
    assert busbw_factor("reduce_scatter", 4) == busbw_factor("all_gather", 4) == pytest.approx(3 / 4)
    assert busbw_factor("broadcast", 4) == 1.0


@pytest.mark.parametrize("text, size", [("4096", 4096), ("64KiB", 65536), ("16MiB", 16 << 20), ("1G", 1 << 30),
                                        ("2 kb", 2048)])
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_bad_bench_settings_are_explained():
    with pytest.raises(AicomputeError, match="cannot read size"):
        parse_size("lots")
    with pytest.raises(AicomputeError, match="unknown algorithm 'rings'.*did you mean 'ring'"):
        CommBenchConfig(algorithms=("rings",))
    with pytest.raises(AicomputeError, match="multiples of 4 bytes"):
        CommBenchConfig(sizes_bytes=(6,))
    with pytest.raises(AicomputeError, match="repeats must be a positive integer"):
        CommBenchConfig(repeats=0)
    with pytest.raises(AicomputeError, match="at least 2 ranks"):
        measure_comm(RankContext.single_process(), CommBenchConfig())
    with pytest.raises(AicomputeError, match="unknown --fail-mode 'explode'"):
        launch("allreduce-check", nproc=1, timeout=20, options={"fail_mode": "explode"})


def test_result_series_and_record():
    rows = tuple(CommBenchRow(a, s, 1.0, s / 1e6, s / 1e6, None, s) for s in (1024, 4096) for a in ("ring", "backend"))
    result = CommBenchResult(2, "gloo", "cpu", 1, AlphaBeta(1e-5, 1e9), ((1024, 0.01), (4096, 0.02)), rows)
    assert result.series("time_ms") == {"ring": ([1024, 4096], [1.0, 1.0]), "backend": ([1024, 4096], [1.0, 1.0])}
    assert result.row("backend", 4096).busbw_gbps == 4096 / 1e6
    record = json.loads(json.dumps(result.to_dict()))
    assert record["kind"] == "comm-bench" and len(record["rows"]) == 4
    assert record["config"]["algorithms"] == list(CommBenchConfig().algorithms)
