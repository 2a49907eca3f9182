"""The distributed tour: ring all-reduce vs a parameter server — bytes through the busiest link as the
number of devices grows (the seed's analysis), and all-reduce time measured now on 2 CPU ranks (gloo)."""

from __future__ import annotations

from typing import Any

from aicompute.parallel.collectives import cost_terms
from aicompute.parallel.comm_bench import CommBenchConfig, bench_comm

__all__ = ["parallel_tour"]

MiB = 2**20


def parallel_tour(*, nbytes: int = 64 * MiB, devices: tuple[int, ...] = (2, 4, 8, 16, 64),
                  sizes: tuple[int, ...] = (64 * 1024, MiB, 4 * MiB), repeats: int = 5, nproc: int = 2) -> dict[str, Any]:
    """One record: the traffic model for ``nbytes`` over ``devices`` ranks, and a measured sweep."""
    traffic = []
    for p in devices:
        ring, ps = cost_terms("ring", nbytes, p), cost_terms("ps", nbytes, p)
        traffic.append({"devices": p, "ring_bytes_per_rank": ring.bytes, "ring_steps": ring.steps,
                        "ring_total_bytes": ring.bytes * p, "ps_server_bytes": ps.bytes})
    measured = bench_comm(CommBenchConfig(sizes_bytes=sizes, repeats=repeats, warmup=1), nproc=nproc)
    return {"kind": "parallel-tour", "nbytes": nbytes, "traffic": traffic, "comm": measured.to_dict()}
