"""The distributed tour: ring all-reduce vs a parameter server — bytes through the busiest link as the
number of devices grows (the seed's analysis), all-reduce time measured now on 2 CPU ranks (gloo), and DDP
and parameter-server training on 2 ranks against the same steps in one process."""

from __future__ import annotations

from typing import Any

from aicompute.parallel.collectives import cost_terms
from aicompute.parallel.comm_bench import CommBenchConfig, bench_comm
from aicompute.parallel.data_parallel import train_data_parallel, train_single_process

__all__ = ["parallel_tour"]

MiB = 2**20


def parallel_tour(*, nbytes: int = 64 * MiB, devices: tuple[int, ...] = (2, 4, 8, 16, 64),
                  sizes: tuple[int, ...] = (64 * 1024, MiB, 4 * MiB), repeats: int = 5, nproc: int = 2,
                  steps: int = 20) -> dict[str, Any]:
    """One record: the traffic model for ``nbytes`` over ``devices`` ranks, a measured sweep, and ``steps``
    of DDP and PS training of the MLP on digits beside single-process training on the same global batches."""
    traffic = []
    for p in devices:
        ring, ps = cost_terms("ring", nbytes, p), cost_terms("ps", nbytes, p)
        traffic.append({"devices": p, "ring_bytes_per_rank": ring.bytes, "ring_steps": ring.steps,
                        "ring_total_bytes": ring.bytes * p, "ps_server_bytes": ps.bytes})
    measured = bench_comm(CommBenchConfig(sizes_bytes=sizes, repeats=repeats, warmup=1), nproc=nproc)
    runs = []
    for mode in ("ddp", "ps"):
        run = train_data_parallel(mode, "mlp", "digits", nproc=nproc, steps=steps, progress=False)
        reference = train_single_process(run.config, nproc)
        runs.append({"mode": mode, "world_size": run.world_size, "steps": run.steps, "final_loss": run.losses[-1],
                     "max_loss_diff": max(abs(a - b) for a, b in zip(run.losses, reference)),
                     "bytes_sent": run.bytes_sent, "bytes_measured": run.bytes_measured,
                     "test_accuracy": run.test_accuracy, "wall_s": run.wall_s})
    return {"kind": "parallel-tour", "nbytes": nbytes, "traffic": traffic, "comm": measured.to_dict(),
            "training": runs}
