"""Fault injection in one process: when a fault is due, how each mode fails, and that ``save`` leaves a
half-written checkpoint behind. The real deaths (SIGKILL, ``os._exit``) on launched ranks are tried by
``test_data_parallel.py``, ``test_launch.py`` and ``tests/cli/test_parallel.py``."""

from __future__ import annotations

import signal

import pytest
import torch

from aicompute.errors import AicomputeError
from aicompute.parallel import faults
from aicompute.parallel.checkpoint import checkpoint_steps, save_checkpoint
from aicompute.parallel.faults import EXIT_STATUS, FAIL_MODES, Fault
from aicompute.parallel.launch import RankContext


class _Died(BaseException):
    """Stands in for the end of the process."""


@pytest.fixture
def no_dying(monkeypatch):
    """Record what a fault would do to the process instead of doing it."""
    calls = []

    def kill(pid, sig):
        calls.append(("kill", pid, sig))
        raise _Died

    def exit_(status):
        calls.append(("exit", status))
        raise _Died

    monkeypatch.setattr(faults.os, "kill", kill)
    monkeypatch.setattr(faults.os, "_exit", exit_)
    return calls


def test_a_fault_strikes_only_its_rank_and_step():
    fault = Fault(rank=2, step=5, mode="raise")
    assert fault.strikes(2, 5)
    assert not any(fault.strikes(r, s) for r, s in [(2, 4), (2, 6), (1, 5), (0, 0)])
    for rank in range(4):
        for step in range(1, 8):
            if (rank, step) != (2, 5):
                fault.inject(rank, step)  # not due: nothing happens
    with pytest.raises(RuntimeError, match="^injected failure at step 5$"):
        fault.inject(2, 5)
    Fault().inject(0, 1)  # rank -1: never


def test_exit_and_kill_end_the_process(no_dying):
    import os

    with pytest.raises(_Died):
        Fault(0, 1, "exit").inject(0, 1)
    with pytest.raises(_Died):
        Fault(1, 3, "kill").inject(1, 3)
    assert no_dying == [("exit", EXIT_STATUS), ("kill", os.getpid(), signal.SIGKILL)]


def test_hang_sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr(faults.time, "sleep", slept.append)
    Fault(0, 1, "hang").inject(0, 1)
    assert slept and slept[0] >= 3600


def test_save_kills_the_rank_after_its_shard_is_written(no_dying, tmp_path):
    ctx = RankContext.single_process()
    fault = Fault(0, 2, "save")
    fault.inject(0, 2)  # the save mode strikes in the writer only
    assert fault.storage_writer(0, 1, tmp_path) is None and Fault(0, 2, "kill").storage_writer(0, 2, tmp_path) is None
    save_checkpoint(ctx, {"w": torch.ones(3)}, 1, tmp_path, storage_writer=fault.storage_writer(0, 1, tmp_path))
    from torch.distributed.checkpoint.api import CheckpointException

    with pytest.raises(CheckpointException, match="_Died"):  # DCP reports what ended the write
        save_checkpoint(ctx, {"w": torch.ones(3)}, 2, tmp_path, storage_writer=fault.storage_writer(0, 2, tmp_path))
    assert no_dying == [("kill", no_dying[0][1], signal.SIGKILL)]
    assert checkpoint_steps(tmp_path) == [1]  # step 2 never committed
    partial = tmp_path / ".step-00000002.partial"
    assert partial.is_dir() and any(partial.iterdir()) and not (partial / ".metadata").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "explode"}, r"unknown --fail-mode 'explode'; use one of \('raise', 'exit', 'kill', 'hang', 'save'\)"),
    ({"mode": "kil"}, "did you mean 'kill'"),
    ({"rank": -2}, "--fail-rank must be a rank"),
    ({"step": 0}, "fail_step must be a positive integer, got 0"),
])
def test_bad_faults_are_explained(kwargs, message):
    with pytest.raises(AicomputeError, match=message):
        Fault(**kwargs)


def test_every_mode_is_known():
    assert FAIL_MODES == ("raise", "exit", "kill", "hang", "save")
    for mode in FAIL_MODES:
        Fault(0, 1, mode)
