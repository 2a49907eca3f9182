"""Distributed parallelism on ``torch.distributed``: the launcher and the collectives.

* ``launch`` — run a registered job on N ranks: spawned on this machine with a parent that notices a failed
  rank and stops the rest, or in place under ``torchrun``.
* ``jobs`` — the job registry (``@register_job``, ``get_job``, ``list_jobs``) and ``--option VALUE``
  parsing by the job's annotations.
* ``checkpoint`` — atomic, resumable ``torch.distributed.checkpoint`` checkpoints (``save_checkpoint`` /
  ``load_latest``).
* ``collectives`` — the seed's algorithms on point-to-point send/recv: ring reduce-scatter, all-gather and
  all-reduce (pipelined), parameter-server reduce + broadcast, recursive doubling; byte counts per rank;
  the α-β cost model.
* ``comm_bench`` — the built-in jobs ``allreduce-check`` (correctness, checkpoints, fault injection) and
  ``bench-comm`` (algbw / busbw per algorithm and size beside the model).

Importing this package registers the built-in jobs, in the launching process and in every spawned rank.
The launcher itself is ``aicompute.parallel.launch.launch`` (not re-exported here, so that
``aicompute.parallel.launch`` stays the module).
"""

from aicompute.parallel.collectives import (
    ALL_REDUCE,
    AlphaBeta,
    CommStats,
    CostTerms,
    all_reduce_with,
    chunk_bounds,
    cost_terms,
    ps_all_reduce_,
    ps_broadcast_,
    ps_reduce_,
    recursive_doubling_all_reduce_,
    ring_all_gather,
    ring_all_reduce_,
    ring_reduce_scatter,
)
from aicompute.parallel.checkpoint import checkpoint_steps, load_latest, save_checkpoint
from aicompute.parallel.jobs import Job, get_job, list_jobs, parse_job_options, register_job
from aicompute.parallel.launch import LaunchResult, RankContext, RankFailedError
from aicompute.parallel.comm_bench import (  # registers the built-in jobs
    CommBenchConfig,
    CommBenchResult,
    CommBenchRow,
    bench_comm,
    busbw_factor,
    measure_comm,
    ping_pong,
)

from aicompute.parallel.compression import CommHook
from aicompute.parallel.data_parallel import (  # registers the ddp / ps / fsdp / local-sgd jobs
    DataParallelConfig,
    DataParallelResult,
    train_data_parallel,
)
from aicompute.parallel.zero import zero_memory, zero_table

__all__ = [
    "CommHook", "DataParallelConfig", "DataParallelResult", "train_data_parallel", "zero_memory", "zero_table",
    "ALL_REDUCE", "AlphaBeta", "CommStats", "CostTerms", "all_reduce_with", "chunk_bounds", "cost_terms",
    "ps_all_reduce_", "ps_broadcast_", "ps_reduce_", "recursive_doubling_all_reduce_", "ring_all_gather",
    "ring_all_reduce_", "ring_reduce_scatter",
    "Job", "LaunchResult", "RankContext", "RankFailedError", "checkpoint_steps", "get_job", "list_jobs",
    "load_latest", "parse_job_options", "register_job", "save_checkpoint",
    "CommBenchConfig", "CommBenchResult", "CommBenchRow", "bench_comm", "busbw_factor", "measure_comm", "ping_pong",
]
