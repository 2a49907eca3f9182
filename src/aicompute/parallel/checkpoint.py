"""Atomic, resumable ``torch.distributed.checkpoint`` (DCP) checkpoints for jobs on launched ranks.

A checkpoint is the DCP directory ``DIR/step-NNNNNNNN``. Every rank writes its shards into
``DIR/.step-NNNNNNNN.partial``; after a barrier rank 0 renames it into place, so a crash mid-save leaves the
previous checkpoint intact and only folders holding DCP's ``.metadata`` count as complete. ``load_latest``
loads the newest complete one on every rank (rank 0 chooses, the others follow). One job per checkpoint
directory. The helpers also work in a world of one without a process group
(``RankContext.single_process()``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch.distributed as dist

from aicompute.checks import non_negative_int
from aicompute.parallel.launch import RankContext

__all__ = ["save_checkpoint", "load_latest", "checkpoint_steps"]


def save_checkpoint(ctx: RankContext, state: dict[str, Any], step: int, directory: str | os.PathLike, *,
                    keep: int | None = 2, storage_writer: Any = None) -> Path:
    """Save ``state`` (a DCP state dict: tensors, DTensors, ``Stateful`` objects, plain values) as
    ``directory/step-NNNNNNNN`` on every rank, atomically, and return that path. Collective.

    Every rank writes into ``.step-NNNNNNNN.partial``; after a barrier rank 0 renames it into place and drops
    all but the ``keep`` newest checkpoints (``None``: keep all). ``storage_writer`` replaces DCP's
    ``FileSystemWriter`` (it is pointed at the partial folder; the rename needs a file system)."""
    import torch.distributed.checkpoint as dcp

    directory = Path(directory)
    name = f"step-{non_negative_int('step', step):08d}"
    partial, final = directory / f".{name}.partial", directory / name
    if ctx.is_main:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(".step-*.partial"):  # left by a save that crashed
            shutil.rmtree(stale, ignore_errors=True)
    ctx.barrier()
    with _single_process_is_intended():
        dcp.save(state, checkpoint_id=partial, storage_writer=storage_writer, process_group=ctx.group,
                 no_dist=not dist.is_initialized())
    ctx.barrier()  # every rank's shards, and rank 0's .metadata, are on disk
    if ctx.is_main:
        if final.exists():  # saving a step again (after a resume): move the old one aside first
            old = directory / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(partial, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, final)
        _fsync_dir(directory)
        if keep is not None:
            for old_step in checkpoint_steps(directory)[:-keep] if keep > 0 else []:
                shutil.rmtree(directory / f"step-{old_step:08d}", ignore_errors=True)
    ctx.barrier()
    return final


def checkpoint_steps(directory: str | os.PathLike) -> list[int]:
    """Steps of the complete checkpoints in ``directory``, oldest first (partial saves are not listed)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name[5:]) for p in directory.iterdir()
                  if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit() and (p / ".metadata").exists())


def load_latest(ctx: RankContext, directory: str | os.PathLike, state: dict[str, Any]) -> int | None:
    """Load the newest complete checkpoint in ``directory`` into ``state`` in place (DCP loads into the
    tensors it is given, resharding as needed) and return its step; ``None`` if there is none. Collective:
    rank 0 picks the step and tells the others, so every rank loads the same one."""
    import torch.distributed.checkpoint as dcp

    steps = checkpoint_steps(directory) if ctx.is_main else []
    choice = [steps[-1] if steps else None]
    if dist.is_initialized():
        dist.broadcast_object_list(choice, src=0, group=ctx.group, device=ctx.device)
    step = choice[0]
    if step is None:
        return None
    with _single_process_is_intended():
        dcp.load(state, checkpoint_id=Path(directory) / f"step-{step:08d}", process_group=ctx.group,
                 no_dist=not dist.is_initialized())
    return step


def read_latest(directory: str | os.PathLike, state: dict[str, Any]) -> int | None:
    """``load_latest`` in this process alone, never a collective (even with a process group up): for a
    launcher checking a checkpoint before its ranks start."""
    import torch.distributed.checkpoint as dcp

    steps = checkpoint_steps(directory)
    if not steps:
        return None
    with _single_process_is_intended():
        dcp.load(state, checkpoint_id=Path(directory) / f"step-{steps[-1]:08d}", no_dist=True)
    return steps[-1]


@contextlib.contextmanager
def _single_process_is_intended() -> Iterator[None]:
    """Without a process group DCP warns that it assumes one process; for ``single_process`` that is the plan."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
