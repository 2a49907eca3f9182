"""The distributed chapter: ring vs parameter-server traffic, and all-reduce measured on this machine."""

from __future__ import annotations

from typing import Any

from aicompute.report.html import Chapter
from aicompute.report.plots import line_plot

__all__ = ["parallel_chapter"]

MiB = 2**20


def parallel_chapter(tour: dict[str, Any]) -> Chapter:
    ch = Chapter("Distributed: ring all-reduce vs a parameter server")
    v = tour["nbytes"] / MiB
    ch.text(
        f"All-reducing V = {v:g} MiB of gradients over p devices. Ring all-reduce (reduce-scatter then "
        "all-gather) sends and receives 2(p−1)V/p per device — nearly 2V whatever p is — while a parameter "
        "server must take in and send out (p−1)V, so its link becomes the bottleneck as p grows; the ring's "
        "total traffic 2(p−1)V still grows with p."
    )
    ch.table(["devices p", "ring: MiB per device", "ring: steps", "ring: MiB in total", "PS: MiB at the server"],
             [(t["devices"], t["ring_bytes_per_rank"] / MiB, t["ring_steps"], t["ring_total_bytes"] / MiB,
               t["ps_server_bytes"] / MiB) for t in tour["traffic"]])
    comm = tour["comm"]
    ch.text(
        f"Measured now: {comm['world_size']} ranks on this machine's CPU ({comm['backend']}), median of "
        f"{comm['config']['repeats']} calls per size; busbw follows nccl-tests (algbw × 2(p−1)/p). 'backend' is "
        "gloo's own all_reduce; the others are ours, written on point-to-point send/recv."
    )
    rows = comm["rows"]
    ch.table(["algorithm", "size (KiB)", "time (ms)", "busbw (GB/s)", "model (ms)", "bytes sent by rank 0"],
             [(r["algorithm"], r["nbytes"] / 1024, r["time_ms"], r["busbw_gbps"], r["model_ms"], r["bytes_sent"])
              for r in rows])
    series: dict[str, tuple[list[float], list[float]]] = {}
    for r in rows:
        xs, ys = series.setdefault(r["algorithm"], ([], []))
        xs.append(r["nbytes"] / 1024)
        ys.append(r["busbw_gbps"])
    ch.figure(line_plot(series, title="All-reduce bus bandwidth", xlabel="message size (KiB)",
                        ylabel="busbw (GB/s)", logx=True),
              "Small messages are latency-bound; large ones approach the link's bandwidth.")
    runs = tour.get("training") or []
    if runs:
        ch.text("Data-parallel training of LeNet-300-100 on digits on 2 ranks, step by step against plain SGD in "
                "one process on the same global batches: the losses agree to float rounding.")
        ch.table(["mode", "ranks", "steps", "final loss", "max |loss − single process|", "bytes sent by rank 0",
                  "test accuracy", "seconds"],
                 [(r["mode"], r["world_size"], r["steps"], r["final_loss"], r["max_loss_diff"],
                   f"{r['bytes_sent']:,}" + ("" if r["bytes_measured"] else " (modelled)"), r["test_accuracy"],
                   r["wall_s"]) for r in runs])
    return ch
