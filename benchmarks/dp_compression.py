"""Survey: test accuracy against bytes sent per rank for DDP's comm hooks (none, fp16, bf16, PowerSGD rank 1
and 2, our top-k with error feedback at ratios 0.1 and 0.01) and for local SGD (averaging every 1, 4, 16 steps).

Usage: .venv/bin/python benchmarks/dp_compression.py [--model mlp] [--data mnist] [--epochs 2] [--nproc 2]

Every run is one `train_data_parallel` launch on `--nproc` gloo ranks of this machine, same model, data,
seed, batch (16 per rank) and plain SGD (lr 0.1), so the rows differ only in how gradients or parameters
travel. `sent MiB` is rank 0's whole run: for DDP the ring model applied to what the hook handed to the wire
(2(p−1)/p of an all-reduce's payload, (p−1)× an all-gather's: top-k), for local SGD counted message by
message on our ring. `× none` is sent over DDP-none's sent. Accuracy is on the held-out split after the last
step; `loss` is the mean training loss of the last 10 steps. At p = 2 top-k sends less than plain all-reduce
only while ratio < 1/p (module docstring of `aicompute.parallel.compression`). Writes results/dp_compression.json.
"""

from __future__ import annotations

import argparse
import statistics

from _common import report

from aicompute.parallel.data_parallel import train_data_parallel

RUNS = [  # (label, mode, options)
    ("DDP none", "ddp", {"hook": "none"}),
    ("DDP fp16", "ddp", {"hook": "fp16"}),
    ("DDP bf16", "ddp", {"hook": "bf16"}),
    ("DDP PowerSGD r=1", "ddp", {"hook": "powersgd", "powersgd_rank": 1}),
    ("DDP PowerSGD r=2", "ddp", {"hook": "powersgd", "powersgd_rank": 2}),
    ("DDP top-k 0.1", "ddp", {"hook": "topk", "topk_ratio": 0.1}),
    ("DDP top-k 0.01", "ddp", {"hook": "topk", "topk_ratio": 0.01}),
    ("local SGD H=1", "local-sgd", {"period": 1}),
    ("local SGD H=4", "local-sgd", {"period": 4}),
    ("local SGD H=16", "local-sgd", {"period": 16}),
]

MIB = 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows, records, baseline = [], [], None
    for label, mode, options in RUNS:
        result = train_data_parallel(mode, args.model, args.data, nproc=args.nproc, timeout=300, epochs=args.epochs,
                                     batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=False, **options)
        records.append({"label": label, **result.to_dict()})
        if baseline is None:  # the first row, DDP none
            baseline = result.bytes_sent
        rows.append((label, result.steps, round(statistics.fmean(result.losses[-10:]), 4),
                     round(100 * result.test_accuracy, 2), round(result.payload_bytes / MIB, 3),
                     round(result.bytes_sent / MIB, 3), round(result.bytes_sent / baseline, 4),
                     "measured" if result.bytes_measured else
                     "all-gather model" if result.config.hook == "topk" else "ring model", round(result.wall_s, 1)))
        print(f"{label}: acc {100 * result.test_accuracy:.2f}%  sent {result.bytes_sent / MIB:.2f} MiB", flush=True)
    report("dp_compression",
           f"{args.model} on {args.data}, {args.nproc} gloo ranks, {args.epochs} epochs, batch {args.batch_size}/rank: "
           "accuracy vs bytes sent (rank 0)",
           ["run", "steps", "loss (last 10)", "test acc %", "payload MiB", "sent MiB", "× none", "bytes", "wall s"],
           rows, args=vars(args), runs=records)


if __name__ == "__main__":
    main()
