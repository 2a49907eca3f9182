"""Data-parallel training on ``torch.distributed``: parameter server, DDP, FSDP2 and local SGD.

Every mode trains a zoo model on a data set with plain SGD, each rank on its own shard of each batch:

* ``ps`` — parameter-server DP: every rank sends its gradient to rank 0 (``ps_reduce_``), which averages,
  steps the only optimizer, and sends the parameters back (``ps_broadcast_``). Rank 0's link carries
  ``(p-1)V`` each way per step: the bottleneck the seed describes. Bytes are counted message by message.
* ``ddp`` — ``torch.nn.parallel.DistributedDataParallel``: bucketed gradient all-reduce overlapped with the
  backward pass. ``hook`` compresses the buckets on the wire (``aicompute.parallel.compression``: torch's
  fp16 / bf16 / PowerSGD hooks, our top-k with error feedback; ``topk_ratio``, ``powersgd_rank``);
  gradient accumulation skips the all-reduce with ``no_sync`` on all but the last
  micro-batch of a step.
* ``fsdp`` — FSDP2 ``fully_shard`` on each layer and the root (ZeRO stage 3): parameters, gradients and
  optimizer states are sharded; parameters are all-gathered for forward and backward, gradients
  reduce-scattered. Works on CPU/gloo with torch ≥ 2.6.
* ``local-sgd`` — no gradient sync: each rank steps its own replica and the replicas are averaged every
  ``period`` steps (and after the last) with the ring all-reduce of ``aicompute.parallel.collectives``.
  With ``period=1`` and plain SGD this is exactly synchronous SGD.

**Sharding.** Each epoch, ``DistributedSampler(shuffle=True, seed=seed, drop_last=True)`` permutes the
train split with ``seed + epoch`` and deals it out round-robin; rank ``r``'s micro-batch ``i`` holds its
positions ``i·b … (i+1)·b - 1``. So step ``t`` (``accumulate`` micro-batches of ``batch_size`` per rank)
covers exactly the permutation's slice ``[t·B, (t+1)·B)`` with global batch ``B = p·batch_size·accumulate``:
``train_single_process`` trains on that slice in one process, and DDP / PS / FSDP / local SGD (period 1)
match it to float rounding. A model with batch norm would see per-rank statistics instead (not checked).

**Bytes** (``DataParallelResult.bytes_sent`` / ``bytes_recv``, rank 0, whole run): counted per message for
``ps`` and ``local-sgd`` (our own send/recv); for ``ddp`` and ``fsdp`` the backend's collectives are opaque,
so the bytes are the ring model applied to the payload handed to them: DDP's hook all-reduces each bucket
(``2(p-1)/p`` of it sent; top-k all-gathers, ``(p-1)`` times its piece: ``CommHook.sent_bytes``), FSDP
all-gathers the parameters twice per micro-batch (forward, backward) and reduce-scatters the gradients once per
step (``(p-1)/p`` each).
``bytes_measured`` says which. ``payload_bytes`` is the gradient / parameter bytes given to the wire in its
wire format (half for fp16 / bf16, top-k's (value, index) pairs, PowerSGD's P and Q).

**Checkpoints and faults.** Launched with a checkpoint folder, a job saves at each epoch's end, after its
last step and every ``checkpoint_every`` steps; with ``resume`` it continues after the newest complete
checkpoint and ends with the numbers of an uninterrupted run (``aicompute.parallel.dp_checkpoint``).
``fail_rank`` / ``fail_step`` / ``fail_mode`` make one rank fail in a step, after its backward pass
(``aicompute.parallel.faults``). **Models.** Any zoo model (or ``pkg.module:factory``) whose input fits the
data set: classifiers on image / signal / vector data, language models on ``chars`` (the loss is then
over every token). The job's pre-flight check builds the model on the meta device and runs it once there
(``check_fits``), checks the failing rank and the checkpoint folder against the world (``check_world``)
and reads a resumed checkpoint's run record (ranks, settings), so a mismatch fails in the launching
process before any rank starts.
"""

from __future__ import annotations

import functools
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.functional import cross_entropy
from torch.utils.data import DistributedSampler

from aicompute.checks import non_negative_int, positive_int, positive_number
from aicompute.data import dataset_info, get_dataset
from aicompute.errors import AicomputeError
from aicompute.models.registry import build_for_dataset, count_params, resolve_model
from aicompute.parallel.checkpoint import checkpoint_steps
from aicompute.parallel.collectives import CommStats
from aicompute.parallel.compression import CommHook
from aicompute.parallel.dp_checkpoint import (
    check_resumable,
    checkpoint_due,
    load_training,
    refuse_stale_checkpoints,
    save_training,
)
from aicompute.parallel.dp_modes import SyncState, average_parameters, ps_step, wrap
from aicompute.parallel.faults import Fault
from aicompute.parallel.jobs import World, register_job
from aicompute.parallel.launch import RankContext, launch
from aicompute.parallel.zero import model_state_bytes, zero_memory
from aicompute.train.seeding import seeded

__all__ = ["MODES", "DataParallelConfig", "DataParallelResult", "run_data_parallel", "train_data_parallel",
           "train_single_process", "global_batches", "check_fits"]

MODES = ("ps", "ddp", "fsdp", "local-sgd")
_EVAL_BATCH = 256  # test examples per forward pass when scoring the test split


@dataclass(frozen=True)
class DataParallelConfig:
    """One data-parallel run. ``batch_size`` is per rank and micro-batch; ``steps`` caps optimizer steps
    (``None``: every full step of ``epochs`` epochs); ``hook`` is DDP's only, ``topk_ratio`` its top-k's and
    ``powersgd_rank`` its PowerSGD's (``None``: ``CommHook``'s default), ``period`` local SGD's only;
    ``checkpoint_every`` adds saves every N steps to those at each epoch's end (when checkpointing)."""

    mode: str
    model: str = "mlp"
    data: str = "digits"
    epochs: int = 1
    steps: int | None = None
    batch_size: int = 16
    accumulate: int = 1
    lr: float = 0.1
    momentum: float = 0.0
    seed: int = 0
    hook: str = "none"
    topk_ratio: float | None = None
    powersgd_rank: int | None = None
    period: int = 1
    checkpoint_every: int = 0
    progress: bool = True

    def check(self) -> DataParallelConfig:
        _check_mode(self.mode)
        self.comm_hook()  # an unknown hook name (CommHook's one check of it) or bad settings of its own fail here
        if self.hook != "none" and self.mode != "ddp":
            raise AicomputeError(f"--hook {self.hook} compresses DDP's all-reduce; use it with mode ddp, "
                                 f"not {self.mode}")
        for option, hook in (("topk_ratio", "topk"), ("powersgd_rank", "powersgd")):
            if getattr(self, option) is not None and self.hook != hook:
                raise AicomputeError(f"--{option.replace('_', '-')} sets the {hook} hook; add --hook {hook} "
                                     f"(the hook is {self.hook!r})")
        for name in ("epochs", "batch_size", "accumulate", "period"):
            positive_int(name, getattr(self, name))
        if self.steps is not None:
            positive_int("steps", self.steps)
        non_negative_int("checkpoint_every", self.checkpoint_every)
        positive_number("lr", self.lr)
        if not 0.0 <= self.momentum < 1.0:
            raise AicomputeError(f"momentum must be in [0, 1), got {self.momentum!r}")
        return self

    def comm_hook(self) -> CommHook:
        """A fresh ``CommHook`` for this run's DDP model (``hook`` and its settings)."""
        given = {"topk_ratio": self.topk_ratio, "powersgd_rank": self.powersgd_rank}
        return CommHook(self.hook, seed=self.seed, **{k: v for k, v in given.items() if v is not None})


@dataclass(frozen=True)
class DataParallelResult:
    """Rank 0's record of a run. ``losses[t]`` is step ``t``'s loss on the whole global batch (the mean of
    the ranks' shard losses); ``syncs`` counts synchronisations (steps whose gradients or parameters were
    exchanged; local SGD: its averages); ``model_state`` is what rank 0 held at the end
    (``zero.model_state_bytes``), ``zero_model`` what ``zero.zero_memory`` predicts for it (fp32 SGD). A
    resumed run's record covers the whole run; ``resumed_from`` is the step its checkpoint was taken after
    (0: not resumed)."""

    config: DataParallelConfig
    world_size: int
    params: int
    global_batch: int
    losses: list[float]
    test_loss: float
    test_accuracy: float
    payload_bytes: int
    bytes_sent: int
    bytes_recv: int
    bytes_measured: bool
    syncs: int
    model_state: dict[str, int]
    zero_model: dict[str, Any]
    wall_s: float
    resumed_from: int = 0

    @property
    def steps(self) -> int:
        return len(self.losses)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = asdict(self.config)
        return {"kind": "data-parallel", "mode": self.config.mode, "steps": self.steps, **d}


def check_world(config: DataParallelConfig, fault: Fault, world: World) -> None:
    """Raise ``AicomputeError`` unless ``config`` can run in ``world``: the failing rank exists, a fresh run
    gets a folder without another run's checkpoints, and a resumed one is not PowerSGD's (its state is not
    checkpointed). Cheap: the job's pre-flight check runs it, and every rank again. The pre-flight check also
    reads the checkpoint's run record (``check_resumable``); ranks check it as they load."""
    p = world.size
    if fault.rank >= p:
        raise AicomputeError(f"--fail-rank {fault.rank} names no rank of {p} (ranks 0 to {p - 1}); use one of them")
    folder = world.checkpoint_dir
    if folder is None:
        return
    if not world.resume:
        refuse_stale_checkpoints(folder)
        return
    if config.hook == "powersgd" and checkpoint_steps(folder):
        raise AicomputeError(
            "--resume with --hook powersgd: PowerSGD's own state (error feedback, P/Q memories, random "
            "generator) is not checkpointed, so the resumed run would not continue the interrupted one; start "
            "again in an empty --checkpoint-dir, or use --hook topk, whose error feedback is checkpointed")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise AicomputeError(f"unknown data-parallel mode {mode!r}; use one of {list(MODES)}")


def check_fits(config: DataParallelConfig) -> None:
    """Raise ``AicomputeError`` unless ``config.model`` can train on ``config.data``: both names known, the
    model small enough to build, and its output on a meta batch of the data set's inputs the logits the
    loss needs, ``(N, classes)`` or ``(N, T, vocab)``. Allocates nothing (the meta device)."""
    info = dataset_info(config.data)
    _, spec = resolve_model(config.model)
    if spec is not None and spec.meta_only:
        raise AicomputeError(f"model {config.model!r} is too large to train here (it is only built on the meta "
                             "device, for sizing); pick a smaller one (`aicompute models`)")
    model, _ = build_for_dataset(config.model, info, device="meta")
    dtype = torch.int64 if info.input_dtype == "int64" else torch.float32
    x = torch.empty((2, *info.input_shape), dtype=dtype, device="meta")
    try:
        out = model(x)
    except NotImplementedError:  # an op without a meta kernel: the ranks will find out for real
        return
    except Exception as e:  # noqa: BLE001 — a shape mismatch deep in the model is the user's mismatch
        why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise AicomputeError(f"model {config.model!r} cannot read data set {config.data!r}: its inputs are "
                             f"{tuple(info.input_shape)} ({info.input_dtype}), and the model failed on them "
                             f"({why}); pick a model of the data's kind") from None
    want = (2, info.num_classes) if info.task == "classification" else (2, *info.input_shape, info.num_classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise AicomputeError(f"model {config.model!r} gives {got} on a batch of 2 from {config.data!r}, but "
                             f"training needs logits of shape {want}; build it for {info.num_classes} classes")


def global_batches(num_examples: int, world_size: int, config: DataParallelConfig) -> list[torch.Tensor]:
    """The example indices of every optimizer step, in order (the module docstring's slices): what the
    ranks' ``DistributedSampler`` shards, put back together."""
    per_step = world_size * config.batch_size * config.accumulate
    batches: list[torch.Tensor] = []
    for epoch in range(config.epochs):
        g = torch.Generator().manual_seed(config.seed + epoch)  # as DistributedSampler.__iter__ seeds it
        perm = torch.randperm(num_examples, generator=g)
        usable = (num_examples // world_size) * world_size // per_step * per_step
        batches += [perm[s:s + per_step] for s in range(0, usable, per_step)]
    return batches[:config.steps] if config.steps is not None else batches


def _build(config: DataParallelConfig) -> tuple[nn.Module, Any, Any]:
    train = get_dataset(config.data, "train", seed=config.seed)
    test = get_dataset(config.data, "test", seed=config.seed)
    with seeded(config.seed):  # every rank (and the single-process reference) starts from the same weights
        model, _ = build_for_dataset(config.model, train.info)
    return model, train, test


def _optimizer(params: Any, config: DataParallelConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)


def _loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over every prediction: (N, C) against (N,), or a language model's (N, T, V) against (N, T)."""
    return cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction=reduction)


@torch.no_grad()
def _test(model: nn.Module, test: Any, device: torch.device) -> tuple[float, float]:
    """Loss and accuracy over the whole test split, in fixed chunks (every rank runs it: FSDP gathers)."""
    model.eval()
    total, correct, count = 0.0, 0, 0
    for lo in range(0, len(test), _EVAL_BATCH):
        x, y = test.inputs[lo:lo + _EVAL_BATCH].to(device), test.targets[lo:lo + _EVAL_BATCH].to(device)
        logits = model(x)
        total += _loss(logits, y, "sum").item()
        correct += int((logits.argmax(-1) == y).sum())
        count += y.numel()
    model.train()
    return total / count, correct / count


def train_single_process(config: DataParallelConfig, world_size: int) -> list[float]:
    """The reference: plain SGD in this process on the same global batches a ``world_size``-rank run sees
    (``global_batches``); returns each step's loss, the value ``DataParallelResult.losses`` reports."""
    config = config.check()
    model, train, _ = _build(config)
    opt = _optimizer(model.parameters(), config)
    losses = []
    for idx in global_batches(len(train), world_size, config):
        opt.zero_grad()
        loss = _loss(model(train.inputs[idx]), train.targets[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _local_plan(sampler: DistributedSampler, config: DataParallelConfig) -> tuple[list[list[torch.Tensor]], list[int]]:
    """This rank's micro-batch indices grouped per optimizer step over all epochs (capped at ``steps``), and
    each step's epoch. A pure function of (seed, epoch, world size, sizes): a resumed run replays it."""
    steps: list[list[torch.Tensor]] = []
    epochs: list[int] = []
    per_step = config.batch_size * config.accumulate
    for epoch in range(config.epochs):
        sampler.set_epoch(epoch)
        idx = torch.tensor(list(sampler), dtype=torch.long)
        for s in range(0, len(idx) // per_step * per_step, per_step):
            chunk = idx[s:s + per_step]  # (accumulate · batch_size,) → accumulate micro-batches
            steps.append(list(chunk.split(config.batch_size)))
            epochs.append(epoch)
    n = len(steps) if config.steps is None else min(config.steps, len(steps))
    return steps[:n], epochs[:n]


def _mean_over_ranks(local: torch.Tensor, ctx: RankContext) -> torch.Tensor:
    """The element-wise mean of every rank's ``local``, summed in rank order: the same bits however the
    record is cut into pieces (a checkpointed or resumed run reports an uninterrupted run's losses)."""
    parts = [torch.empty_like(local, device=ctx.device) for _ in range(ctx.world_size)]
    dist.all_gather(parts, local.to(ctx.device), group=ctx.group)
    return (functools.reduce(torch.add, parts) / ctx.world_size).cpu()


def run_data_parallel(ctx: RankContext, config: DataParallelConfig, *, fault: Fault | None = None
                      ) -> DataParallelResult:
    """Train on this rank as one of ``ctx.world_size`` (call it on every rank); every rank returns the
    same losses and test figures, and its own bytes and model state. Checkpoints and resumes when ``ctx``
    has a checkpoint folder (module docstring); ``fault`` makes a rank fail on purpose."""
    config, fault = config.check(), fault or Fault()
    p, r = ctx.world_size, ctx.rank
    check_world(config, fault, World(p, ctx.checkpoint_dir, ctx.resume))
    start = time.perf_counter()
    model, train, test = _build(config)
    params = count_params(model)
    hook = config.comm_hook() if config.mode == "ddp" else None
    net = wrap(model, config.mode, ctx.device, hook)
    opt = _optimizer(net.parameters(), config) if config.mode != "ps" or r == 0 else None
    sampler = DistributedSampler(train, num_replicas=p, rank=r, shuffle=True, seed=config.seed, drop_last=True)
    plan, epoch_of = _local_plan(sampler, config)
    if not plan:
        raise AicomputeError(f"no full step: {len(train)} examples over {p} ranks cannot fill one global batch of "
                             f"{p * config.batch_size * config.accumulate}; lower --batch-size or --accumulate")
    sync = SyncState(CommStats(), hook, list(model.parameters()))
    local = torch.zeros(len(plan), dtype=torch.float64)  # this rank's shard loss per step
    record = torch.zeros(len(plan), dtype=torch.float64)  # the mean over ranks, filled up to `filled`
    done = filled = 0
    saving = dict(model=net, optimizer=opt, settings=asdict(config), per_rank=config.mode == "local-sgd")
    if ctx.checkpoint_dir is not None and ctx.resume:
        resumed = load_training(ctx, ctx.checkpoint_dir, total_steps=len(plan), rank_state=sync.state(), **saving)
        if resumed is not None:
            done = filled = resumed.step
            record[:done] = resumed.losses
            sync.restore(resumed.rank_state)
        ctx.log(f"[{config.mode}] resuming after step {done}" if done
                else f"[{config.mode}] no checkpoint in {ctx.checkpoint_dir}; starting at step 1")
    for t in range(done, len(plan)):
        step = t + 1
        local[t] = _train_step(net, opt, plan[t], train, config, ctx.device)
        fault.inject(r, step)  # after the backward pass: this step's update never happens
        if config.mode == "ps":
            ps_step(net, opt, r, sync.stats)
        else:
            opt.step()
        if config.mode == "local-sgd" and (step % config.period == 0 or step == len(plan)):
            average_parameters(net, sync.stats)
            sync.syncs += 1
        if config.progress and (t % max(1, len(plan) // 10) == 0 or step == len(plan)):
            ctx.log(f"[{config.mode}] epoch {epoch_of[t] + 1}/{config.epochs}  step {step}/{len(plan)}  "
                    f"loss (rank 0 shard) {local[t]:.4f}")
        last = step == len(plan)
        if ctx.checkpoint_dir is not None and checkpoint_due(
                step, config.checkpoint_every, epoch_end=last or epoch_of[step] != epoch_of[t], last=last):
            record[filled:step], filled = _mean_over_ranks(local[filled:step], ctx), step
            save_training(ctx, ctx.checkpoint_dir, step, losses=record, rank_state=sync.state(),
                          storage_writer=fault.storage_writer(r, step, ctx.checkpoint_dir), **saving)
    record[filled:] = _mean_over_ranks(local[filled:], ctx)
    test_loss, test_accuracy = _test(net, test, ctx.device)
    return _result(config, p, params, record.tolist(), test_loss, test_accuracy, sync, net, opt, start, done)


def _train_step(net: nn.Module, opt: torch.optim.Optimizer | None, micro: list[torch.Tensor], train: Any,
                config: DataParallelConfig, device: torch.device) -> float:
    """Forward and backward over one step's micro-batches (gradients synchronised on the last only);
    returns this rank's shard loss."""
    if opt is not None:
        opt.zero_grad()
    else:
        net.zero_grad()
    shard_loss = 0.0
    for a, idx in enumerate(micro):
        last = a == len(micro) - 1
        with (net.no_sync() if config.mode == "ddp" and not last else nullcontext()):
            if config.mode == "fsdp":
                net.set_requires_gradient_sync(last)
            loss = _loss(net(train.inputs[idx].to(device)), train.targets[idx].to(device)) / len(micro)
            loss.backward()
        shard_loss += loss.item()
    return shard_loss


def _result(config: DataParallelConfig, p: int, params: int, losses: list[float], test_loss: float,
            test_accuracy: float, sync: SyncState, net: nn.Module, opt: torch.optim.Optimizer | None, start: float,
            resumed_from: int) -> DataParallelResult:
    """The record: bytes by mode (module docstring), measured model state beside the ZeRO model."""
    steps, flat_bytes, stats = len(losses), params * 4, sync.stats
    if config.mode == "ddp":
        payload, sent = sync.hook.payload_bytes, sync.hook.sent_bytes
        recv, measured, syncs = sent, False, sync.hook.steps  # every rank sends and takes in as much
    elif config.mode == "fsdp":
        # all-gather for forward and for backward in every micro-batch, reduce-scatter once per step
        payload = (2 * config.accumulate + 1) * steps * flat_bytes
        sent = recv = round((p - 1) / p * payload)
        measured, syncs = False, steps
    else:
        syncs = steps if config.mode == "ps" else sync.syncs
        payload = flat_bytes * syncs
        sent, recv, measured = stats.bytes_sent, stats.bytes_recv, True
    stage = 3 if config.mode == "fsdp" else 0
    opt_bytes = 4 if config.momentum > 0 else 0
    zero = zero_memory(params, p, stage, param_bytes=4, grad_bytes=4, optimizer_bytes=opt_bytes).to_dict()
    return DataParallelResult(config, p, params, p * config.batch_size * config.accumulate, losses, test_loss,
                              test_accuracy, payload, sent, recv, measured, syncs, model_state_bytes(net, opt),
                              zero, time.perf_counter() - start, resumed_from)


_FAULT_OPTIONS = {"fail_rank": "rank", "fail_step": "step", "fail_mode": "mode"}


def _from_options(mode: str, options: dict[str, Any]) -> tuple[DataParallelConfig, Fault]:
    """A job's options (``train_data_parallel``'s keywords) → the run's config and its fault, both checked."""
    rest = dict(options)
    fault = Fault(**{field: rest.pop(key) for key, field in _FAULT_OPTIONS.items() if key in rest})
    return DataParallelConfig(mode, **rest).check(), fault


def _job(mode: str):
    def job(ctx: RankContext, *, model: str = "mlp", data: str = "digits", epochs: int = 1, steps: int | None = None,
            batch_size: int = 16, accumulate: int = 1, lr: float = 0.1, momentum: float = 0.0, seed: int = 0,
            hook: str = "none", topk_ratio: float | None = None, powersgd_rank: int | None = None, period: int = 1,
            checkpoint_every: int = 0, progress: bool = True,
            fail_rank: int = -1, fail_step: int = 1, fail_mode: str = "raise") -> DataParallelResult:
        config = DataParallelConfig(mode, model, data, epochs, steps, batch_size, accumulate, lr, momentum, seed,
                                    hook, topk_ratio, powersgd_rank, period, checkpoint_every, progress)
        return run_data_parallel(ctx, config, fault=Fault(fail_rank, fail_step, fail_mode))

    def check(world: World, **options: Any) -> None:
        """Before any rank starts: the options make a valid run in ``world``, and the model fits the data."""
        config, fault = _from_options(mode, options)
        check_fits(config)
        check_world(config, fault, world)
        if world.resume and world.checkpoint_dir is not None:
            check_resumable(world.checkpoint_dir, world.size, asdict(config))

    job.__name__ = job.__qualname__ = f"{mode.replace('-', '_')}_job"
    return job, check


def _register(mode: str, description: str):
    job, check = _job(mode)
    return register_job(mode, description=description, check=check)(job)


ddp_job = _register("ddp", "DistributedDataParallel training (comm hooks, gradient accumulation)")
ps_job = _register("ps", "Parameter-server data parallel: gradients to rank 0, parameters back")
fsdp_job = _register("fsdp", "FSDP2 fully_shard training (ZeRO-3: everything sharded)")
local_sgd_job = _register("local-sgd", "Local SGD: replicas averaged every --period steps")


def train_data_parallel(mode: str, model_name: str = "mlp", data: str = "digits", *, nproc: int = 2,
                        backend: str | None = None, timeout: float = 60.0, checkpoint_dir: Any = None,
                        resume: bool = False, **options: Any) -> DataParallelResult:
    """Launch job ``mode`` on ``nproc`` ranks and return rank 0's record. ``options`` are the job's
    (``epochs``, ``steps``, ``batch_size``, ``accumulate``, ``lr``, ``momentum``, ``seed``, ``hook``,
    ``topk_ratio``, ``powersgd_rank``, ``period``, ``checkpoint_every``, ``progress``, ``fail_rank``,
    ``fail_step``, ``fail_mode``); ``checkpoint_dir`` and ``resume`` are the launcher's. Bad settings fail
    before any rank starts."""
    _check_mode(mode)
    result = launch(mode, nproc=nproc, backend=backend, timeout=timeout, checkpoint_dir=checkpoint_dir,
                    resume=resume, options={"model": model_name, "data": data, **options})
    return replace(result.value, wall_s=result.wall_s)
