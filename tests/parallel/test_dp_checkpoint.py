"""Training checkpoints in one process (no process group): a model with dropout and an SGD-momentum
optimizer saved after 3 steps and loaded into a fresh copy continues bit for bit as the original does;
what does not match the checkpoint is refused with the setting to change. Launched ranks (DDP, PS, FSDP,
local SGD) are tried in ``test_data_parallel.py``."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.parallel.checkpoint import checkpoint_steps
from aicompute.parallel.data_parallel import DataParallelConfig
from aicompute.parallel.dp_checkpoint import (
    MUST_MATCH, checkpoint_due, load_training, refuse_stale_checkpoints, save_training,
)
from aicompute.parallel.launch import RankContext
from aicompute.train.seeding import seeded

SETTINGS = asdict(DataParallelConfig("ddp", lr=0.1, momentum=0.9))


def _model(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    with seeded(seed):
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _steps(model: nn.Module, opt: torch.optim.Optimizer, n: int) -> list[float]:
    """``n`` SGD steps on random data drawn from the global generator, as dropout's masks are."""
    losses = []
    for _ in range(n):
        x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("per_rank", [False, True])
def test_a_resumed_model_continues_exactly_as_the_original(tmp_path, per_rank):
    ctx = RankContext.single_process()
    torch.manual_seed(11)
    model, opt = _model(0)
    record = torch.tensor(_steps(model, opt, 3) + [0.0, 0.0], dtype=torch.float64)
    own = {"bytes_sent": 1200, "syncs": 3, "hook": {"residuals": {0: torch.arange(4.0)}}}
    save_training(ctx, tmp_path, 3, model=model, optimizer=opt, settings=SETTINGS, losses=record,
                  rank_state=own, per_rank=per_rank)
    original = _steps(model, opt, 2)

    fresh, fresh_opt = _model(1)  # other weights, no momentum yet
    assert not torch.equal(fresh[0].weight, model[0].weight)
    resumed = load_training(ctx, tmp_path, model=fresh, optimizer=fresh_opt, settings=SETTINGS,
                            rank_state={"bytes_sent": 0, "syncs": 0, "hook": {"residuals": {0: torch.zeros(4)}}},
                            total_steps=5, per_rank=per_rank)
    assert resumed.step == 3 and torch.equal(resumed.losses, record[:3])
    assert resumed.rank_state["bytes_sent"] == 1200 and resumed.rank_state["syncs"] == 3
    assert torch.equal(resumed.rank_state["hook"]["residuals"][0], torch.arange(4.0))
    assert _steps(fresh, fresh_opt, 2) == original  # same weights, momentum, dropout masks and data
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    model, opt = _model(0)
    assert load_training(RankContext.single_process(), tmp_path / "none", model=model, optimizer=opt,
                         settings=SETTINGS, rank_state={}, total_steps=5) is None


def test_a_run_with_other_settings_or_ranks_is_refused(tmp_path):
    ctx = RankContext.single_process()
    model, opt = _model(0)
    _steps(model, opt, 1)
    save_training(ctx, tmp_path, 4, model=model, optimizer=opt, settings=SETTINGS,
                  losses=torch.zeros(4, dtype=torch.float64), rank_state={})
    kwargs = dict(model=model, optimizer=opt, rank_state={}, total_steps=10)
    with pytest.raises(AicomputeError, match=r"other settings \(lr 0.2 here, 0.1 there; seed 5 here, 0 there\)"):
        load_training(ctx, tmp_path, settings={**SETTINGS, "lr": 0.2, "seed": 5}, **kwargs)
    # epochs, steps and how often to save may change: they do not change the trajectory
    assert set(MUST_MATCH).isdisjoint({"epochs", "steps", "checkpoint_every", "progress"})
    assert load_training(ctx, tmp_path, settings={**SETTINGS, "epochs": 9, "steps": 10}, **kwargs).step == 4
    two_ranks = replace(ctx, world_size=2)  # only the check runs: it fails before anything is loaded
    with pytest.raises(AicomputeError, match="written by 1 ranks, this run has 2: resume with --nproc 1"):
        load_training(two_ranks, tmp_path, settings=SETTINGS, **kwargs)
    with pytest.raises(AicomputeError, match=r"past this run's last step \(3\); raise --epochs or --steps"):
        load_training(ctx, tmp_path, settings=SETTINGS, **{**kwargs, "total_steps": 3})


def test_a_fresh_run_refuses_a_folder_with_checkpoints(tmp_path):
    refuse_stale_checkpoints(tmp_path / "new")  # nothing there: fine
    model, opt = _model(0)
    save_training(RankContext.single_process(), tmp_path, 2, model=model, optimizer=opt, settings=SETTINGS,
                  losses=torch.zeros(2, dtype=torch.float64), rank_state={})
    assert checkpoint_steps(tmp_path) == [2]
    with pytest.raises(AicomputeError, match=r"already holds checkpoints of a run \(steps \[2\]\); pass --resume"):
        refuse_stale_checkpoints(tmp_path)


@pytest.mark.parametrize("step, every, epoch_end, last, due", [
    (3, 0, False, False, False),
    (3, 0, True, False, True),   # each epoch's end
    (7, 0, False, True, True),   # the last step
    (8, 4, False, False, True),  # every 4 steps
    (9, 4, False, False, False),
])
def test_when_a_checkpoint_is_due(step, every, epoch_end, last, due):
    assert checkpoint_due(step, every, epoch_end=epoch_end, last=last) is due
