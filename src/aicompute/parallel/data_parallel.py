"""Data-parallel training on ``torch.distributed``: parameter server, DDP, FSDP2 and local SGD.

Every mode trains a zoo model on a data set with plain SGD, each rank on its own shard of each batch:

* ``ps`` — parameter-server DP: every rank sends its gradient to rank 0 (``ps_reduce_``), which averages,
  steps the only optimizer, and sends the parameters back (``ps_broadcast_``). Rank 0's link carries
  ``(p-1)V`` each way per step: the bottleneck the seed describes. Bytes are counted message by message.
* ``ddp`` — ``torch.nn.parallel.DistributedDataParallel``: bucketed gradient all-reduce overlapped with the
  backward pass. ``hook="fp16"`` / ``"bf16"`` compress the buckets on the wire (torch's
  ``ddp_comm_hooks``); gradient accumulation skips the all-reduce with ``no_sync`` on all but the last
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
so the bytes are the ring model applied to the payload handed to them: DDP all-reduces each bucket
(``2(p-1)/p`` of it sent), FSDP all-gathers the parameters twice (forward, backward) and reduce-scatters the
gradients (``(p-1)/p`` each). ``bytes_measured`` says which. ``payload_bytes`` is the gradient / parameter
bytes given to the wire in its wire format (half for fp16 / bf16 hooks).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.functional import cross_entropy
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from torch.utils.data import DistributedSampler

from aicompute.checks import positive_int, positive_number
from aicompute.data import get_dataset
from aicompute.errors import AicomputeError
from aicompute.models.registry import build_for_dataset, count_params
from aicompute.parallel.collectives import CommStats, chunk_bounds, ps_broadcast_, ps_reduce_, ring_all_reduce_
from aicompute.parallel.jobs import register_job
from aicompute.parallel.launch import RankContext, launch
from aicompute.parallel.zero import model_state_bytes, zero_memory
from aicompute.train.seeding import seeded

__all__ = ["MODES", "HOOKS", "DataParallelConfig", "DataParallelResult", "run_data_parallel", "train_data_parallel",
           "train_single_process", "global_batches", "ring_bytes_sent"]

MODES = ("ps", "ddp", "fsdp", "local-sgd")
HOOKS = {"none": 4, "fp16": 2, "bf16": 2}
"""DDP comm hook name → bytes per gradient element on the wire."""


@dataclass(frozen=True)
class DataParallelConfig:
    """One data-parallel run. ``batch_size`` is per rank and micro-batch; ``steps`` caps optimizer steps
    (``None``: every full step of ``epochs`` epochs); ``hook`` is DDP's only, ``period`` local SGD's only."""

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
    period: int = 1
    progress: bool = True

    def check(self) -> DataParallelConfig:
        if self.mode not in MODES:
            raise AicomputeError(f"unknown data-parallel mode {self.mode!r}; use one of {list(MODES)}")
        if self.hook not in HOOKS:
            raise AicomputeError(f"unknown comm hook {self.hook!r}; use one of {list(HOOKS)}")
        if self.hook != "none" and self.mode != "ddp":
            raise AicomputeError(f"--hook {self.hook} compresses DDP's all-reduce; use it with mode ddp, not {self.mode}")
        for name in ("epochs", "batch_size", "accumulate", "period"):
            positive_int(name, getattr(self, name))
        if self.steps is not None:
            positive_int("steps", self.steps)
        positive_number("lr", self.lr)
        if not 0.0 <= self.momentum < 1.0:
            raise AicomputeError(f"momentum must be in [0, 1), got {self.momentum!r}")
        return self


@dataclass(frozen=True)
class DataParallelResult:
    """Rank 0's record of a run. ``losses[t]`` is step ``t``'s loss on the whole global batch (the mean of
    the ranks' shard losses); ``model_state`` is what rank 0 held at the end (``zero.model_state_bytes``),
    ``zero_model`` what ``zero.zero_memory`` predicts for it (fp32 SGD)."""

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

    @property
    def steps(self) -> int:
        return len(self.losses)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = asdict(self.config)
        return {"kind": "data-parallel", "mode": self.config.mode, "steps": self.steps, **d}


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


@torch.no_grad()
def _test(model: nn.Module, test: Any) -> tuple[float, float]:
    """Loss and accuracy on the whole test split in one batch (every rank runs it: FSDP gathers)."""
    model.eval()
    logits = model(test.inputs)
    model.train()
    return float(cross_entropy(logits, test.targets)), float((logits.argmax(-1) == test.targets).float().mean())


def train_single_process(config: DataParallelConfig, world_size: int) -> list[float]:
    """The reference: plain SGD in this process on the same global batches a ``world_size``-rank run sees
    (``global_batches``); returns each step's loss, the value ``DataParallelResult.losses`` reports."""
    config = config.check()
    model, train, _ = _build(config)
    opt = _optimizer(model.parameters(), config)
    losses = []
    for idx in global_batches(len(train), world_size, config):
        opt.zero_grad()
        loss = cross_entropy(model(train.inputs[idx]), train.targets[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


class _CountingHook:
    """DDP comm-hook state: runs one of torch's hooks and adds up the bytes of the buckets it sends."""

    def __init__(self, name: str):
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        self.inner = {"none": default_hooks.allreduce_hook, "fp16": default_hooks.fp16_compress_hook,
                      "bf16": default_hooks.bf16_compress_hook}[name]
        self.wire_bytes = HOOKS[name]
        self.payload = 0
        self.calls = 0

    @staticmethod
    def hook(state, bucket):  # no annotations: DDP checks them, and this module's are strings
        """``fn(state, bucket) -> Future[Tensor]``, the form ``register_comm_hook`` takes."""
        state.payload += bucket.buffer().numel() * state.wire_bytes
        state.calls += 1
        return state.inner(dist.group.WORLD, bucket)


def _wrap(model: nn.Module, config: DataParallelConfig) -> tuple[nn.Module, _CountingHook | None]:
    if config.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model)
        counter = _CountingHook(config.hook)
        ddp.register_comm_hook(counter, _CountingHook.hook)
        return ddp, counter
    if config.mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for module in model.modules():  # one FSDP unit per parametrised leaf, then the root for the rest
            if module is not model and any(True for _ in module.parameters(recurse=False)) \
                    and not any(True for _ in module.children()):
                fully_shard(module)
        fully_shard(model)
    return model, None


def _local_batches(sampler: DistributedSampler, config: DataParallelConfig) -> list[list[torch.Tensor]]:
    """This rank's micro-batch indices, grouped per optimizer step, over all epochs (capped at ``steps``)."""
    steps: list[list[torch.Tensor]] = []
    per_step = config.batch_size * config.accumulate
    for epoch in range(config.epochs):
        sampler.set_epoch(epoch)
        idx = torch.tensor(list(sampler), dtype=torch.long)
        for s in range(0, len(idx) // per_step * per_step, per_step):
            chunk = idx[s:s + per_step]  # (accumulate · batch_size,) → accumulate micro-batches
            steps.append(list(chunk.split(config.batch_size)))
    return steps[:config.steps] if config.steps is not None else steps


def run_data_parallel(ctx: RankContext, config: DataParallelConfig) -> DataParallelResult:
    """Train on this rank as one of ``ctx.world_size`` (call it on every rank); every rank returns the
    same losses and test figures, and its own bytes and model state."""
    config = config.check()
    p, r = ctx.world_size, ctx.rank
    start = time.perf_counter()
    model, train, test = _build(config)
    params = count_params(model)
    net, counter = _wrap(model, config)
    opt = _optimizer(net.parameters(), config) if config.mode != "ps" or r == 0 else None
    sampler = DistributedSampler(train, num_replicas=p, rank=r, shuffle=True, seed=config.seed, drop_last=True)
    plan = _local_batches(sampler, config)
    if not plan:
        raise AicomputeError(f"no full step: {len(train)} examples over {p} ranks cannot fill one global batch of "
                             f"{p * config.batch_size * config.accumulate}; lower --batch-size or --accumulate")
    stats, syncs = CommStats(), 0
    flat_bytes = params * 4
    local_losses = torch.zeros(len(plan), dtype=torch.float64)
    for t, micro in enumerate(plan):
        if opt is not None:
            opt.zero_grad()
        else:
            net.zero_grad()
        for a, idx in enumerate(micro):
            last = a == len(micro) - 1
            with (net.no_sync() if config.mode == "ddp" and not last else nullcontext()):
                if config.mode == "fsdp":
                    net.set_requires_gradient_sync(last)
                loss = cross_entropy(net(train.inputs[idx]), train.targets[idx]) / len(micro)
                loss.backward()
            local_losses[t] += loss.item()
        if config.mode == "ps":
            _ps_step(net, opt, r, stats)
        else:
            opt.step()
        if config.mode == "local-sgd" and ((t + 1) % config.period == 0 or t == len(plan) - 1):
            _average_parameters(net, stats)
            syncs += 1
        if config.progress and (t % max(1, len(plan) // 10) == 0 or t == len(plan) - 1):
            ctx.log(f"[{config.mode}] step {t + 1}/{len(plan)}  loss (rank 0 shard) {local_losses[t]:.4f}")
    dist.all_reduce(local_losses)  # one collective for the whole record: the mean of equal shards
    losses = (local_losses / p).tolist()
    test_loss, test_accuracy = _test(net, test)
    steps = len(plan)
    if config.mode == "ddp":
        payload, sent = counter.payload, round(2 * (p - 1) / p * counter.payload)
        recv, measured, syncs = sent, False, counter.calls
    elif config.mode == "fsdp":
        payload = 3 * steps * flat_bytes  # all-gather twice, reduce-scatter once per step
        sent = recv = round((p - 1) / p * payload)
        measured, syncs = False, steps
    else:
        payload = flat_bytes * (steps if config.mode == "ps" else syncs)
        sent, recv, measured = stats.bytes_sent, stats.bytes_recv, True
        syncs = steps if config.mode == "ps" else syncs
    stage = 3 if config.mode == "fsdp" else 0
    opt_bytes = 4 if config.momentum > 0 else 0
    zero = zero_memory(params, p, stage, param_bytes=4, grad_bytes=4, optimizer_bytes=opt_bytes).to_dict()
    return DataParallelResult(config, p, params, p * config.batch_size * config.accumulate, losses, test_loss,
                              test_accuracy, payload, sent, recv, measured, syncs, model_state_bytes(net, opt),
                              zero, time.perf_counter() - start)


def _ps_step(model: nn.Module, opt: torch.optim.Optimizer | None, rank: int, stats: CommStats) -> None:
    """Gradients to the server (rank 0), averaged there; the server steps; parameters back to everyone."""
    params = list(model.parameters())
    grads = parameters_to_vector([q.grad for q in params])  # (Ψ,) one message per worker
    ps_reduce_(grads, server=0, op="avg", stats=stats)
    if rank == 0:
        vector_to_parameters(grads, [q.grad for q in params])
        opt.step()
    flat = parameters_to_vector(params).detach()
    ps_broadcast_(flat, server=0, stats=stats)
    with torch.no_grad():
        vector_to_parameters(flat, params)


@torch.no_grad()
def _average_parameters(model: nn.Module, stats: CommStats) -> None:
    params = list(model.parameters())
    flat = parameters_to_vector(params)  # (Ψ,)
    ring_all_reduce_(flat, op="avg", stats=stats)
    vector_to_parameters(flat, params)


def ring_bytes_sent(numel: int, element_size: int, world_size: int, rank: int) -> int:
    """Bytes ``rank`` sends in one ring all-reduce of ``numel`` elements (chunks as ``chunk_bounds``): in each
    of the ``2(p-1)`` steps it sends one chunk, every chunk but one per phase."""
    bounds = chunk_bounds(numel, world_size)
    sizes = [hi - lo for lo, hi in bounds]
    p = world_size
    reduce_phase = sum(sizes[(rank - s - 1) % p] for s in range(p - 1))
    gather_phase = sum(sizes[(rank - s - 1) % p] for s in range(p - 1, 2 * p - 2))
    return (reduce_phase + gather_phase) * element_size


def _job(mode: str):
    def job(ctx: RankContext, *, model: str = "mlp", data: str = "digits", epochs: int = 1, steps: int | None = None,
            batch_size: int = 16, accumulate: int = 1, lr: float = 0.1, momentum: float = 0.0, seed: int = 0,
            hook: str = "none", period: int = 1, progress: bool = True) -> DataParallelResult:
        config = DataParallelConfig(mode, model, data, epochs, steps, batch_size, accumulate, lr, momentum, seed,
                                    hook, period, progress)
        return run_data_parallel(ctx, config)

    job.__name__ = job.__qualname__ = f"{mode.replace('-', '_')}_job"
    return job


ddp_job = register_job("ddp", description="DistributedDataParallel training (comm hooks, gradient accumulation)")(
    _job("ddp"))
ps_job = register_job("ps", description="Parameter-server data parallel: gradients to rank 0, parameters back")(
    _job("ps"))
fsdp_job = register_job("fsdp", description="FSDP2 fully_shard training (ZeRO-3: everything sharded)")(_job("fsdp"))
local_sgd_job = register_job("local-sgd", description="Local SGD: replicas averaged every --period steps")(
    _job("local-sgd"))


def train_data_parallel(mode: str, model_name: str = "mlp", data: str = "digits", *, nproc: int = 2,
                        backend: str | None = None, timeout: float = 60.0, **options: Any) -> DataParallelResult:
    """Launch job ``mode`` on ``nproc`` ranks and return rank 0's record; ``options`` are the job's
    (``epochs``, ``steps``, ``batch_size``, ``accumulate``, ``lr``, ``momentum``, ``seed``, ``hook``,
    ``period``, ``progress``)."""
    DataParallelConfig(mode, model_name, data, **options).check()  # fail here, before spawning anything
    result = launch(mode, nproc=nproc, backend=backend, timeout=timeout,
                    options={"model": model_name, "data": data, **options})
    return replace(result.value, wall_s=result.wall_s)
