"""Checkpoints in one process without a process group: the newest ``keep`` survive, the latest loads, and a
crash mid-save leaves the previous checkpoint intact (multi-rank saves are tried by ``test_comm_bench``)."""

from __future__ import annotations

import pytest
import torch

from aicompute.parallel.checkpoint import checkpoint_steps, load_latest, save_checkpoint
from aicompute.parallel.launch import RankContext


def _state(step: int) -> dict:
    return {"w": torch.full((3, 4), float(step)), "step": step}


def test_checkpoints_keep_the_newest_and_load_the_latest(tmp_path):
    ctx = RankContext.single_process()
    for step in range(1, 5):
        save_checkpoint(ctx, _state(step), step, tmp_path, keep=2)
    assert checkpoint_steps(tmp_path) == [3, 4]
    state = {"w": torch.zeros(3, 4), "step": 0}
    assert load_latest(ctx, tmp_path, state) == 4
    assert torch.equal(state["w"], torch.full((3, 4), 4.0)) and state["step"] == 4
    assert load_latest(ctx, tmp_path / "empty", state) is None


def test_a_crash_mid_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    from torch.distributed.checkpoint import FileSystemWriter
    from torch.distributed.checkpoint.api import CheckpointException

    ctx = RankContext.single_process()
    save_checkpoint(ctx, _state(1), 1, tmp_path)
    real_write = FileSystemWriter.write_data

    def write_then_crash(self, plan, planner):
        real_write(self, plan, planner).wait()  # this rank's data is on disk; the metadata is not
        raise OSError("disk on fire")

    monkeypatch.setattr(FileSystemWriter, "write_data", write_then_crash)
    with pytest.raises(CheckpointException) as info:
        save_checkpoint(ctx, _state(2), 2, tmp_path)
    assert "disk on fire" in str(info.value.failures)
    assert checkpoint_steps(tmp_path) == [1]
    assert (tmp_path / ".step-00000002.partial").is_dir()
    state = _state(0)
    assert load_latest(ctx, tmp_path, state) == 1 and torch.equal(state["w"], torch.ones(3, 4))
    monkeypatch.setattr(FileSystemWriter, "write_data", real_write)
    save_checkpoint(ctx, _state(2), 2, tmp_path)
    assert checkpoint_steps(tmp_path) == [1, 2]
    assert not list(tmp_path.glob(".*.partial"))
