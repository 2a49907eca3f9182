"""Checkpoints of the data-parallel training jobs, and resuming them to the same numbers.

A checkpoint is one atomic ``torch.distributed.checkpoint`` (DCP) folder per step, written by
``aicompute.parallel.checkpoint.save_checkpoint``. Its state dict:

* ``model``, ``optim`` — torch's distributed state dicts (``get_model_state_dict`` /
  ``get_optimizer_state_dict``): plain tensors for the replicated modes, which DCP writes once, and DTensor
  shards for FSDP, which DCP reshards on load. The parameter server's optimizer lives on rank 0 only, so
  only rank 0 contributes ``optim``. Local SGD's replicas drift apart between averages (and so do their
  momentum buffers), so each rank saves its own: ``per_rank=True`` moves both under ``rank{r}``.
* ``rank{r}`` — what is rank ``r``'s own: its random generator state (dropout continues where it stopped)
  and the job's ``rank_state`` (byte counters, so a resumed run's record covers the whole run; a comm
  hook's error feedback).
* ``run`` — steps done, the per-step loss record so far (mean over the ranks), the world size and the run's
  settings as JSON.

**Resuming.** The sampler's plan is a pure function of (seed, epoch, world size, batch size), so a run
resumed after step ``s`` skips the first ``s`` steps of its plan and sees the same batches; weights,
optimizer state and generator state are restored bit for bit, so its remaining losses are the
uninterrupted run's, bit for bit (seen for every mode at 2 ranks and for DDP with the top-k hook at 4; top-k
keeps its residuals per parameter, exact while DDP's buckets after its rebuild are those of the saved run).
DDP with the PowerSGD hook is refused: torch's PowerSGD state is not saved.
DDP's all-reducing hooks on more than 2 ranks agree to float rounding (~1e-7): DDP lays its gradient
buckets out afresh after each process's first step, so the first step after a resume sums the ring's
chunks in another order. The settings in ``MUST_MATCH`` shape the trajectory and must equal the
checkpoint's, and so must the world size; ``epochs`` and ``steps`` may grow (train on).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.parallel.checkpoint import checkpoint_steps, load_latest, read_latest, save_checkpoint
from aicompute.parallel.launch import RankContext

__all__ = ["MUST_MATCH", "Resumed", "save_training", "load_training", "refuse_stale_checkpoints", "checkpoint_due"]

MUST_MATCH = ("mode", "model", "data", "batch_size", "accumulate", "lr", "momentum", "seed", "hook", "topk_ratio",
              "powersgd_rank", "period")
"""Settings a resumed run must share with its checkpoint (they change the batches or the updates)."""


@dataclass(frozen=True)
class Resumed:
    """What a resumed rank gets back beside its restored model and optimizer."""

    step: int
    """Steps done: the run goes on with step ``step + 1``."""
    losses: torch.Tensor
    """(step,) float64: the loss record of those steps."""
    rank_state: dict[str, Any]
    """This rank's ``rank_state`` as saved."""


def checkpoint_due(step: int, every: int, *, epoch_end: bool, last: bool) -> bool:
    """Save after ``step`` (1-based)? At each epoch's end, after the last step, and every ``every`` steps
    (``every = 0``: only those two)."""
    return epoch_end or last or (every > 0 and step % every == 0)


def refuse_stale_checkpoints(directory: Path) -> None:
    """A fresh run must not mix its checkpoints with another run's (``load_latest`` takes the newest)."""
    steps = checkpoint_steps(directory)
    if steps:
        raise AicomputeError(f"{directory} already holds checkpoints of a run (steps {steps}); pass --resume to "
                             "continue it, or give an empty --checkpoint-dir")


def save_training(ctx: RankContext, directory: Path, step: int, *, model: nn.Module,
                  optimizer: torch.optim.Optimizer | None, settings: dict[str, Any], losses: torch.Tensor,
                  rank_state: dict[str, Any], per_rank: bool = False, storage_writer: Any = None) -> Path:
    """Save the run after ``step`` steps (collective): ``losses[:step]`` is its record so far; ``rank_state``
    (ints, tensors, nested dicts) is this rank's own."""
    state = _state(ctx, model, optimizer, rank_state, per_rank)
    state["run"] = {"step": step, "world_size": ctx.world_size, "settings": _settings_json(settings),
                    "losses": losses[:step].clone()}
    return save_checkpoint(ctx, state, step, directory, storage_writer=storage_writer)


def _load(load: Callable[[dict[str, Any]], int | None], directory: Path, state: dict[str, Any]) -> int | None:
    """``load(state)`` (``load_latest`` or ``read_latest`` on ``directory``), with DCP's failure to read a
    checkpoint (another job's, or a damaged one) as one line."""
    from torch.distributed.checkpoint.api import CheckpointException

    try:
        return load(state)
    except CheckpointException as err:
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise AicomputeError(
            f"the newest checkpoint in {directory} cannot be read as this job's ({first.strip()[:200]}): it is "
            "another job's or damaged; give this run an empty --checkpoint-dir"
        ) from None


def check_resumable(directory: Path, world_size: int, settings: dict[str, Any]) -> None:
    """In the launching process, before any rank starts: raise ``AicomputeError`` unless the newest
    checkpoint in ``directory`` (if any) is this job's, of ``world_size`` ranks and the same settings.
    Reads only the run record; ``load_training`` checks again, with the run's length, when it loads."""
    head = _head()
    step = _load(functools.partial(read_latest, directory), directory, head)
    if step is not None:
        _check_compatible(directory, step, head["run"], world_size, settings, total_steps=None)


def _head() -> dict[str, Any]:
    """The template of the run record read before the rest: it sizes the loss record."""
    return {"run": {"step": 0, "world_size": 0, "settings": ""}}


def load_training(ctx: RankContext, directory: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                  settings: dict[str, Any], rank_state: dict[str, Any], total_steps: int, per_rank: bool = False
                  ) -> Resumed | None:
    """Restore ``model`` and ``optimizer`` (and this rank's generator) from the newest complete checkpoint in
    ``directory``; ``None`` if there is none. ``rank_state`` is the template of what to read back (the same
    keys, tensors of the same shapes: DCP loads into them). Collective.
    Raises ``AicomputeError`` if the checkpoint is of a run with other settings, another world size, or
    more steps than ``total_steps``."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    head = _head()
    load = functools.partial(load_latest, ctx, directory)
    step = _load(load, directory, head)
    if step is None:
        return None
    _check_compatible(directory, step, head["run"], ctx.world_size, settings, total_steps)
    state = _state(ctx, model, optimizer, rank_state, per_rank)
    state["run"] = {"losses": torch.zeros(step, dtype=torch.float64)}
    again = _load(load, directory, state)
    if again != step:
        raise AicomputeError(f"{directory} changed while resuming (step {step}, then {again}); "
                             "is another run writing to it?")
    own = state[f"rank{ctx.rank}"]
    replicas = own if per_rank else state
    set_model_state_dict(model, replicas["model"])
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, replicas["optim"])
    torch.set_rng_state(own["rng"])
    if "cuda_rng" in own:
        torch.cuda.set_rng_state(own["cuda_rng"], ctx.device)
    return Resumed(step, state["run"]["losses"], own["job"])


def _state(ctx: RankContext, model: nn.Module, optimizer: torch.optim.Optimizer | None,
           rank_state: dict[str, Any], per_rank: bool) -> dict[str, Any]:
    """The DCP state dict of this rank (module docstring), holding the live tensors (DCP loads into them)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    replicas: dict[str, Any] = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        replicas["optim"] = get_optimizer_state_dict(model, optimizer)
    own: dict[str, Any] = {"rng": torch.get_rng_state(), "job": rank_state}
    if ctx.device.type == "cuda":
        own["cuda_rng"] = torch.cuda.get_rng_state(ctx.device)
    state: dict[str, Any] = {f"rank{ctx.rank}": own}
    (own if per_rank else state).update(replicas)
    return state


def _settings_json(settings: dict[str, Any]) -> str:
    return json.dumps({k: settings[k] for k in MUST_MATCH}, sort_keys=True)


def _check_compatible(directory: Path, step: int, run: dict[str, Any], world_size: int, settings: dict[str, Any],
                      total_steps: int | None) -> None:
    where = f"the checkpoint in {directory} (step {step})"
    if run["world_size"] != world_size:
        raise AicomputeError(f"{where} was written by {run['world_size']} ranks, this run has {world_size}: "
                             f"resume with --nproc {run['world_size']} (the batches depend on the world size)")
    saved = json.loads(run["settings"])
    diff = [f"{k} {settings[k]!r} here, {saved.get(k)!r} there" for k in MUST_MATCH if saved.get(k) != settings[k]]
    if diff:
        raise AicomputeError(f"{where} is of a run with other settings ({'; '.join(diff)}); resume with the "
                             "same job options or give an empty --checkpoint-dir")
    if total_steps is not None and step > total_steps:
        raise AicomputeError(f"{where} is past this run's last step ({total_steps}); raise --epochs or --steps")
