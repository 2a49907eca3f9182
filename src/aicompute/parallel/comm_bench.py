"""The collectives on live ranks: a correctness job for the launcher, and the all-reduce benchmark.

* ``allreduce-check`` (job): each step all-reduces a seeded random vector with our ring and with the backend,
  checks they agree, accumulates the result and checkpoints it. Options inject a failure (``--fail-rank R
  --fail-step S --fail-mode raise|exit|kill|hang|save``, ``aicompute.parallel.faults``) so the launcher's
  failure path and resumable checkpoints can be tried on any cluster: ``save`` kills the rank in the middle
  of writing a checkpoint.
* ``bench-comm`` (job) and ``bench_comm`` (its launcher): median time of each all-reduce algorithm over a
  sweep of sizes, as nccl-tests reports it, beside the α-β model fitted from a ping-pong.

nccl-tests' definitions (``doc/PERFORMANCE.md`` there): ``algbw = S / t`` for a message of ``S`` bytes, and
``busbw = algbw · 2(p-1)/p`` for an all-reduce: the bandwidth each link would need if the collective were
a ring, comparable across ``p`` and with the hardware's link speed. Every all-reduce algorithm gets the
same factor, so a slower algorithm shows a lower busbw. Each timed call starts after a barrier; its time is
the slowest rank's; the figure is the median over repeats. Algorithms take turns within each repeat, in a
new shuffled order each time, so neither a load change on a shared machine nor going first favours one.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from aicompute.checks import did_you_mean, non_negative_int, positive_int
from aicompute.errors import AicomputeError
from aicompute.parallel.collectives import (
    ALL_REDUCE, DEFAULT_SEGMENT_BYTES, AlphaBeta, CommStats, all_reduce_with, ring_all_reduce_, ring_workspace,
)
from aicompute.parallel.checkpoint import load_latest, save_checkpoint
from aicompute.parallel.faults import FAIL_MODES, Fault
from aicompute.parallel.jobs import register_job
from aicompute.parallel.launch import RankContext, launch

__all__ = ["CommBenchConfig", "CommBenchRow", "CommBenchResult", "bench_comm", "measure_comm", "ping_pong",
           "busbw_factor", "parse_size", "DEFAULT_SIZES", "FAIL_MODES"]

DEFAULT_SIZES = (1 << 12, 1 << 16, 1 << 20, 1 << 22, 1 << 24)  # 4 KiB … 16 MiB
PINGPONG_SIZES = (1 << 10, 1 << 14, 1 << 18, 1 << 20, 1 << 22)


def _step_input(seed: int, step: int, rank: int, numel: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(hash((seed, step, rank)) & 0xFFFF_FFFF)
    return torch.randn(numel, generator=g, dtype=torch.float64).to(device)


@register_job("allreduce-check")
def allreduce_check(ctx: RankContext, *, steps: int = 4, numel: int = 1000, seed: int = 0, fail_rank: int = -1,
                    fail_step: int = 1, fail_mode: str = "raise") -> dict[str, Any]:
    """Ring all-reduce vs the backend's, step by step, checkpointed; can inject a failure on one rank."""
    positive_int("steps", steps)
    non_negative_int("numel", numel)
    fault = Fault(fail_rank, fail_step, fail_mode)
    state = {"total": torch.zeros(numel, dtype=torch.float64, device=ctx.device)}
    start = 0
    if ctx.resume:
        start = load_latest(ctx, ctx.checkpoint_dir, state) or 0
        ctx.log(f"resuming after step {start}" if start
                else f"no checkpoint in {ctx.checkpoint_dir}; starting at step 1")
    worst = 0.0
    stats = CommStats()
    for step in range(start + 1, steps + 1):
        x = _step_input(seed, step, ctx.rank, numel, ctx.device)
        ours = ring_all_reduce_(x.clone(), group=ctx.group, stats=stats)
        ref = x.clone()
        dist.all_reduce(ref, group=ctx.group)
        worst = max(worst, (ours - ref).abs().max().item() if numel else 0.0)
        if worst > 1e-9 * ctx.world_size:
            raise RuntimeError(f"ring all-reduce differs from the backend's by {worst:.3g} at step {step}")
        state["total"] += ours
        fault.inject(ctx.rank, step)
        if ctx.checkpoint_dir is not None:
            writer = fault.storage_writer(ctx.rank, step, ctx.checkpoint_dir)
            save_checkpoint(ctx, state, step, ctx.checkpoint_dir, storage_writer=writer)
        ctx.log(f"step {step}/{steps}: ring == backend (max |diff| {worst:.2g})")
    return {"world_size": ctx.world_size, "steps": steps, "resumed_from": start, "max_abs_diff": worst,
            "checksum": state["total"].sum().item(), "bytes_sent": stats.bytes_sent, "bytes_recv": stats.bytes_recv}


def busbw_factor(collective: str, world_size: int) -> float:
    """nccl-tests' bus-bandwidth factor: all_reduce 2(p-1)/p; reduce_scatter, all_gather (p-1)/p; else 1."""
    p = world_size
    factors = {"all_reduce": 2 * (p - 1) / p, "reduce_scatter": (p - 1) / p, "all_gather": (p - 1) / p}
    return factors.get(collective, 1.0)


def parse_size(text: str) -> int:
    """``"16MiB"`` → 16777216; accepts B, KiB, MiB, GiB (and K, M, G as binary) or a plain byte count."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B?|B)?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise AicomputeError(f"cannot read size {text!r}; write e.g. 4096, 64KiB, 16MiB")
    unit = (m.group(2) or "B").upper()[0]
    return int(m.group(1)) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]


@dataclass(frozen=True, kw_only=True)
class CommBenchConfig:
    sizes_bytes: tuple[int, ...] = DEFAULT_SIZES
    """Message sizes in bytes (float32, so multiples of 4)."""
    algorithms: tuple[str, ...] = tuple(ALL_REDUCE)
    """All-reduce algorithms from ``collectives.ALL_REDUCE``; ``backend`` is the backend's own."""
    repeats: int = 10
    """Timed calls per algorithm and size; the median is reported."""
    warmup: int = 2
    """Untimed calls first (connections, allocations)."""
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    """Pipeline segment of the ``ring`` algorithm."""
    check: bool = True
    """Compare each algorithm's result with the backend's before timing it."""

    def __post_init__(self) -> None:
        for size in self.sizes_bytes:
            if not isinstance(size, int) or size < 4 or size % 4:
                raise AicomputeError(f"sizes must be whole float32 vectors (multiples of 4 bytes, ≥ 4), got {size!r}")
        for name in self.algorithms:
            if name not in ALL_REDUCE:
                raise AicomputeError(f"unknown algorithm {name!r}{did_you_mean(name, ALL_REDUCE)}; "
                                     f"use {list(ALL_REDUCE)}")
        if not self.algorithms or not self.sizes_bytes:
            raise AicomputeError("give at least one algorithm and one size")
        positive_int("repeats", self.repeats)
        non_negative_int("warmup", self.warmup)
        positive_int("segment_bytes", self.segment_bytes)


@dataclass(frozen=True)
class CommBenchRow:
    algorithm: str
    nbytes: int
    time_ms: float
    algbw_gbps: float
    busbw_gbps: float
    model_ms: float | None
    bytes_sent: int
    """Payload bytes rank 0 sent in one call (``None``-free: 0 for ``backend``, whose traffic we cannot see)."""


@dataclass(frozen=True)
class CommBenchResult:
    world_size: int
    backend: str
    device: str
    threads: int
    model: AlphaBeta | None
    """α and β fitted to ``pingpong``; ``None`` when its times did not grow with size (too noisy to fit)."""
    pingpong: tuple[tuple[int, float], ...]
    """(bytes, one-way ms) between ranks 0 and 1."""
    rows: tuple[CommBenchRow, ...]
    config: CommBenchConfig = field(default_factory=CommBenchConfig)

    def row(self, algorithm: str, nbytes: int) -> CommBenchRow:
        for r in self.rows:
            if r.algorithm == algorithm and r.nbytes == nbytes:
                return r
        raise KeyError((algorithm, nbytes))

    def series(self, metric: str = "busbw_gbps") -> dict[str, tuple[list[int], list[float]]]:
        """``algorithm -> (sizes, values)`` of one column, for a line plot."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        for r in self.rows:
            xs, ys = out.setdefault(r.algorithm, ([], []))
            xs.append(r.nbytes)
            ys.append(getattr(r, metric))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "comm-bench", "world_size": self.world_size, "backend": self.backend, "device": self.device,
                "threads": self.threads, "model": self.model.to_dict() if self.model else None,
                "pingpong": [{"bytes": b, "one_way_ms": ms} for b, ms in self.pingpong],
                "rows": [asdict(r) for r in self.rows],
                "config": {**asdict(self.config), "sizes_bytes": list(self.config.sizes_bytes),
                           "algorithms": list(self.config.algorithms)}}


def ping_pong(ctx: RankContext, sizes_bytes: tuple[int, ...] = PINGPONG_SIZES, *, repeats: int = 10,
              warmup: int = 2) -> tuple[tuple[int, float], ...]:
    """One-way message time (ms) between ranks 0 and 1 for each size: half the fastest of back-to-back round
    trips timed on rank 0, i.e. what the link can do rather than what a busy machine let it do this time
    (α and β fitted to it make the model a floor). Collective (ranks above 1 only wait); every rank gets
    rank 0's figures."""
    points = []
    for size in sizes_bytes:
        buf = torch.zeros(max(1, size // 4), dtype=torch.float32, device=ctx.device)
        ctx.barrier()
        times = []
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            if ctx.rank == 0:
                dist.send(buf, 1, group=ctx.group)
                dist.recv(buf, 1, group=ctx.group)
                _sync(ctx)
            elif ctx.rank == 1:
                dist.recv(buf, 0, group=ctx.group)
                dist.send(buf, 0, group=ctx.group)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        points.append((size, min(times) / 2 * 1e3))
    shared = [points]
    dist.broadcast_object_list(shared, src=0, group=ctx.group, device=ctx.device)
    return tuple(tuple(p) for p in shared[0])


def _sync(ctx: RankContext) -> None:
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)


def measure_comm(ctx: RankContext, config: CommBenchConfig) -> CommBenchResult:
    """Run the sweep on every rank (collective) and return the result (the same on every rank)."""
    p = ctx.world_size
    if p < 2:
        raise AicomputeError("bench-comm needs at least 2 ranks; use --nproc 2 or more")
    pingpong = ping_pong(ctx, repeats=max(config.repeats, 5), warmup=max(config.warmup, 1))
    try:
        model = AlphaBeta.fit([b for b, _ in pingpong], [ms / 1e3 for _, ms in pingpong])
    except AicomputeError:  # times too noisy to grow with size (a very busy machine): report no model
        model = None
    rows = []
    for size in config.sizes_bytes:
        g = torch.Generator().manual_seed(ctx.rank)
        x = torch.randn(size // 4, generator=g).to(ctx.device)
        kwargs = {name: {"group": ctx.group} for name in config.algorithms}
        for name in ("ring", "ring-blocking"):  # the ring keeps its scratch chunk between calls, as a DDP would
            if name in kwargs:
                kwargs[name]["workspace"] = ring_workspace(x, p)
        if "ring" in kwargs:
            kwargs["ring"]["segment_bytes"] = config.segment_bytes
        sent = {}
        for name in config.algorithms:
            stats = CommStats()
            out = all_reduce_with(name, x.clone(), stats=stats, **kwargs[name])
            sent[name] = stats.bytes_sent
            if config.check:
                ref = all_reduce_with("backend", x.clone(), group=ctx.group)
                if not torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * p):
                    raise RuntimeError(f"{name} all-reduce of {size} bytes differs from the backend's")
        buf = torch.empty_like(x)
        times = torch.zeros(len(config.algorithms), config.repeats, dtype=torch.float64)
        order = list(enumerate(config.algorithms))
        for i in range(config.warmup + config.repeats):
            random.Random(i).shuffle(order)  # the same order on every rank; a new one each repeat
            for a, name in order:
                buf.copy_(x)
                ctx.barrier()
                t0 = time.perf_counter()
                all_reduce_with(name, buf, **kwargs[name])
                _sync(ctx)
                if i >= config.warmup:
                    times[a, i - config.warmup] = time.perf_counter() - t0
        dist.all_reduce(times, op=dist.ReduceOp.MAX, group=ctx.group)  # a call ends when its slowest rank does
        for a, name in enumerate(config.algorithms):
            t = statistics.median(times[a].tolist())
            algbw = size / t / 1e9
            predicted = model.predict_s(name, size, p) if model is not None else None
            rows.append(CommBenchRow(name, size, t * 1e3, algbw, algbw * busbw_factor("all_reduce", p),
                                     None if predicted is None else predicted * 1e3, sent[name]))
    return CommBenchResult(p, ctx.backend or "none", str(ctx.device), torch.get_num_threads(), model, pingpong,
                           tuple(rows), config)


@register_job("bench-comm")
def bench_comm_job(ctx: RankContext, *, config: CommBenchConfig | None = None) -> CommBenchResult:
    """Time each all-reduce algorithm over a size sweep (algbw, busbw) beside the α-β model."""
    return measure_comm(ctx, config or CommBenchConfig())


def bench_comm(config: CommBenchConfig | None = None, *, nproc: int = 2, backend: str | None = None,
               timeout: float = 120.0) -> CommBenchResult:
    """Launch ``nproc`` ranks on this machine and run the sweep (``aicompute parallel bench-comm``)."""
    return launch("bench-comm", nproc=nproc, backend=backend, timeout=timeout,
                  options={"config": config or CommBenchConfig()}).value
