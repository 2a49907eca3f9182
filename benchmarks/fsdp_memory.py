"""Claim: FSDP's per-rank model-state memory is ≤ (1/p + 0.10) × DDP's at p = 4 (read as a fraction of DDP's).

Usage: .venv/bin/python benchmarks/fsdp_memory.py [--nprocs 2,4] [--models mlp,lenet5] [--data mnist]

For each model and world size, `train_data_parallel` runs DDP and FSDP2 (`fully_shard` per layer, ZeRO-3) for a
few steps of SGD with momentum 0.9 on gloo ranks, then reads rank 0's `model_state` (`zero.model_state_bytes`:
parameters + gradients + optimizer states actually held, an FSDP DTensor counting its local shard) and
sets it beside `result.zero_model`, `zero.zero_memory`'s prediction for fp32 SGD with momentum (4 + 4 + 4 bytes
per parameter; stage 0 for DDP, 3 for FSDP). FSDP cuts each tensor along dim 0 into p pieces of ceil(rows/p)
rows, and rank 0 holds a full first piece, so it holds a little more than Ψ/p where a dim 0 does not divide
by p: `× DDP` shows it against the bound 1/p + 0.10. Activations and temporary buffers are not model states.
Writes results/fsdp_memory.json.
"""

from __future__ import annotations

import argparse

from _common import report

from aicompute.parallel.data_parallel import train_data_parallel

KIB = 2**10
MOMENTUM = 0.9
SLACK = 0.10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nprocs", default="2,4")
    ap.add_argument("--models", default="mlp,lenet5")
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    rows, records, claim = [], [], {}
    for model in args.models.split(","):
        for p in (int(n) for n in args.nprocs.split(",")):
            runs = {mode: train_data_parallel(mode, model, args.data, nproc=p, timeout=300, steps=args.steps,
                                              batch_size=8, momentum=MOMENTUM, progress=False)
                    for mode in ("ddp", "fsdp")}
            ddp_total = runs["ddp"].model_state["total"]
            bound = 1 / p + SLACK
            for mode, result in runs.items():
                state, predicted = result.model_state, result.zero_model
                fraction = state["total"] / ddp_total
                ok = fraction <= bound if mode == "fsdp" else None
                rows.append((model, p, mode, result.params, round(state["params"] / KIB, 2),
                             round(state["grads"] / KIB, 2), round(state["optimizer"] / KIB, 2),
                             round(state["total"] / KIB, 2), round(predicted["total_bytes"] / KIB, 2),
                             round(fraction, 4),
                             "—" if ok is None else f"{'pass' if ok else 'FAIL'} (≤ {bound:.2f})"))
                records.append({"model": model, "world_size": p, **result.to_dict()})
                if mode == "fsdp":
                    claim[f"{model}/p{p}"] = {"fsdp_over_ddp": round(fraction, 4), "bound": bound, "pass": ok}
    report("fsdp_memory",
           f"per-rank model state (rank 0) on {args.data}, SGD momentum {MOMENTUM}: measured vs ZeRO model",
           ["model", "ranks", "mode", "params", "params KiB", "grads KiB", "optim KiB", "total KiB", "model KiB",
            "× DDP", "claim"], rows, fsdp_over_ddp=claim, runs=records)
    for key, c in claim.items():
        print(f"FSDP / DDP model state {key:12s} {c['fsdp_over_ddp']:.4f}  bound {c['bound']:.2f}  "
              f"{'pass' if c['pass'] else 'FAIL'}")


if __name__ == "__main__":
    main()
