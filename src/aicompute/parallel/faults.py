"""Fault injection: make one rank fail on purpose, at a chosen step, the way real failures look.

Jobs take ``--fail-rank R --fail-step S --fail-mode MODE`` and hand them to a ``Fault``; rank ``R`` then
fails in step ``S`` (1-based) in one of these ways:

* ``raise`` — a ``RuntimeError``: the rank writes its error report, so the launcher names the message;
* ``exit`` — ``os._exit(3)``: the interpreter ends at once without a report (a crash in native code);
* ``kill`` — ``SIGKILL`` of itself: what the OOM killer or a lost machine looks like from outside;
* ``hang`` — sleeps for good: its peers time out in their next collective;
* ``save`` — ``SIGKILL`` in the middle of writing step ``S``'s checkpoint, after its own shard is on disk
  and before the save is committed (``storage_writer``); it strikes only if a checkpoint is saved at ``S``.

``rank = -1`` (the default) injects nothing. The launcher's handling of each is tried in
``tests/parallel/test_launch.py`` and by the training jobs' fault test.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from aicompute.checks import did_you_mean, positive_int
from aicompute.errors import AicomputeError

__all__ = ["FAIL_MODES", "EXIT_STATUS", "Fault"]

FAIL_MODES = ("raise", "exit", "kill", "hang", "save")
EXIT_STATUS = 3
"""The status an ``exit`` fault ends its process with."""


@dataclass(frozen=True)
class Fault:
    """Rank ``rank`` fails in step ``step`` (1-based) by ``mode`` (module docstring); ``rank=-1``: never."""

    rank: int = -1
    step: int = 1
    mode: str = "raise"

    def __post_init__(self) -> None:
        if self.mode not in FAIL_MODES:
            raise AicomputeError(f"unknown --fail-mode {self.mode!r}{did_you_mean(self.mode, FAIL_MODES)}; "
                                 f"use one of {FAIL_MODES}")
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < -1:
            raise AicomputeError(f"--fail-rank must be a rank (0, 1, ...) or -1 for no failure, got {self.rank!r}")
        positive_int("fail_step", self.step)

    def strikes(self, rank: int, step: int) -> bool:
        """Whether this fault is due on ``rank`` in ``step``."""
        return rank == self.rank and step == self.step

    def inject(self, rank: int, step: int) -> None:
        """Fail now if due on ``rank`` in ``step`` (every mode but ``save``, which ``storage_writer`` does)."""
        if not self.strikes(rank, step) or self.mode == "save":
            return
        if self.mode == "raise":
            raise RuntimeError(f"injected failure at step {step}")
        if self.mode == "exit":
            os._exit(EXIT_STATUS)
        if self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # the signal is delivered asynchronously; never run on past it
        if self.mode == "hang":
            time.sleep(10**6)

    def storage_writer(self, rank: int, step: int, path: str | os.PathLike) -> Any:
        """A DCP writer that kills this rank mid-save when a ``save`` fault is due, else ``None`` (DCP's own)."""
        if self.mode != "save" or not self.strikes(rank, step):
            return None
        return _die_mid_save_writer(str(path))


def _die_mid_save_writer(path: str) -> Any:
    """A DCP ``FileSystemWriter`` that writes this rank's files, then kills the process before the save ends
    (imported lazily: ``torch.distributed.checkpoint`` takes most of a second to import)."""
    from torch.distributed.checkpoint import FileSystemWriter

    class DieMidSave(FileSystemWriter):
        def write_data(self, plan, planner):
            super().write_data(plan, planner).wait()
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)

    return DieMidSave(path)
