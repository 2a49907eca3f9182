"""The launcher: bad input, a clean run, every failure path (raise, kill, hang in a collective, stuck outside
one) ending within the timeout with the failed rank named and no process or port left behind, and in-place
runs under torchrun.

Functions named ``_job_*`` here are jobs run as ``this_file.py:function`` in spawned ranks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aicompute.errors import AicomputeError
from aicompute.parallel.checkpoint import checkpoint_steps
from aicompute.parallel.launch import RankFailedError, launch

pytestmark = pytest.mark.usefixtures("two_minute_limit")


def _job_lingers(ctx, *, seconds: float = 60.0) -> str:
    ctx.barrier()
    if ctx.rank == 1:
        time.sleep(seconds)
    return "done"


def _assert_gone(pids):
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- bad input (no ranks) -------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"nproc": 0}, "nproc must be a positive integer, got 0"),
    ({"backend": "mpi"}, "unknown backend 'mpi'"),
    ({"options": {"stepz": 1}}, "no option 'stepz'.*did you mean 'steps'"),
    ({"resume": True}, "--resume needs --checkpoint-dir"),
    ({"timeout": 0}, "timeout must be > 0"),
])
def test_bad_input_fails_before_any_rank_starts(kwargs, message):
    with pytest.raises(AicomputeError, match=message):
        launch("allreduce-check", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_nccl_without_cuda_says_to_use_gloo():
    with pytest.raises(AicomputeError, match="nccl needs CUDA GPUs.*--backend gloo"):
        launch("allreduce-check", nproc=2, backend="nccl")


def test_nproc_must_agree_with_an_outer_torchrun(monkeypatch):
    for key, value in {"RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(AicomputeError, match="torchrun with 2 processes per node; drop --nproc or make it 2"):
        launch("allreduce-check", nproc=4)


# --- spawned ranks --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_clean_run_returns_rank_0s_value_and_frees_everything():
    result = launch("allreduce-check", nproc=2, timeout=30, options={"steps": 3, "numel": 100})
    assert result.spawned and result.world_size == 2 and result.backend == "gloo"
    assert result.value["max_abs_diff"] == 0.0
    assert result.value["bytes_sent"] == 3 * 100 * 8  # 2(p-1)V/p = V per step at p = 2
    json.dumps(result.to_dict())
    _assert_gone(result.pids)
    with socket.socket() as s:  # the rendezvous port is closed: it can be listened on again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", result.master_port))
        s.listen()


@pytest.mark.slow
def test_a_rank_that_raises_is_named_with_its_error(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(RankFailedError, match=r"rank 1 failed: RuntimeError: injected failure at step 2 "
                                              r"\(faults.py:\d+ in inject\)") as info:
        launch("allreduce-check", nproc=3, timeout=20, checkpoint_dir=tmp_path,
               options={"steps": 4, "fail_rank": 1, "fail_step": 2})
    assert time.monotonic() - t0 < 20  # nobody waited for the collective timeout
    assert info.value.rank == 1 and info.value.exitcode == 1
    assert "Traceback" in info.value.traceback and "allreduce_check" in info.value.traceback
    _assert_gone(info.value.pids)
    assert checkpoint_steps(tmp_path) == [1]


@pytest.mark.slow
def test_a_rank_blocked_on_a_hung_peer_times_out_and_the_hung_rank_is_killed():
    t0 = time.monotonic()
    with pytest.raises(RankFailedError, match=r"rank 0 failed: RuntimeError: .*Timed out.* \(collectives.py:\d+ "
                                              r"in _ring\); still running then: rank 1 \(stuck\?\)") as info:
        launch("allreduce-check", nproc=2, timeout=4, options={"steps": 2, "fail_rank": 1, "fail_mode": "hang"})
    assert time.monotonic() - t0 < 4 + 15  # the timeout, plus start-up on a busy machine
    _assert_gone(info.value.pids)


@pytest.mark.slow
def test_a_rank_stuck_outside_collectives_is_reported():
    with pytest.raises(RankFailedError, match="rank 1 failed: still running 2 s after rank 0 finished") as info:
        launch(f"{__file__}:_job_lingers", nproc=2, timeout=2)
    _assert_gone(info.value.pids)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its new parent may be slow to reap it)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_ranks_exit_when_the_launcher_dies(tmp_path):
    script = tmp_path / "launcher.py"
    script.write_text("from aicompute.parallel.launch import launch\n"
                      "launch('allreduce-check', nproc=2, timeout=60, options={'fail_rank': 1, 'fail_mode': 'hang'})\n")
    # a SIGKILLed launcher cannot remove its run folder: keep it in tmp_path
    launcher = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 30
        ranks = []
        while len(ranks) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            ranks = _children(launcher.pid)
        assert len(ranks) == 2
    finally:
        launcher.kill()
        launcher.wait()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in ranks) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for pid in ranks)


@pytest.mark.slow
def test_under_torchrun_the_job_runs_in_the_given_ranks(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "from aicompute.parallel.launch import launch\n"
        "r = launch('allreduce-check', timeout=30, options={'steps': 2, 'numel': 10})\n"
        "Path(sys.argv[1], 'rank' + os.environ['RANK'] + '.json').write_text(json.dumps(\n"
        "    {'rank': int(os.environ['RANK']), 'spawned': r.spawned, 'world': r.world_size,\n"
        "     'diff': r.value['max_abs_diff']}))\n")
    # Each rank reports through its own file: the ranks share torchrun's stdout, where lines may interleave.
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(script), str(tmp_path)], capture_output=True, text=True, timeout=90,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    found = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert found == [{"rank": r, "spawned": False, "world": 2, "diff": 0.0} for r in (0, 1)]
