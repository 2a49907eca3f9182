"""Claim (issue 5): after `aicompute hw probe`, the roofline's estimated time for a large matmul, a softmax,
a layernorm and a conv on this machine is within 2× of their measured median time.

Usage: .venv/bin/python benchmarks/roofline_accuracy.py [--threads 1] [--rounds 5] [--repeats 5]

Each case is one ``nn.Module`` and one input shape. The same module is traced once by
``aicompute.profile.profile`` (fake tensors, no data) and timed on real float32 tensors under
``torch.inference_mode()`` with ``aicompute.timing.median_ms``:

* matmul: ``nn.Linear(2048, 2048, bias=False)`` on 2048×2048 (one ``aten.mm``, priced at the probed matmul rate);
* softmax: ``nn.Softmax(-1)`` on 1024×4096 and layernorm: ``nn.LayerNorm(4096)`` on 1024×4096 (vector ops:
  priced at the probed ``addcmul`` rate or the copy bandwidth, whichever is slower; the "bound" column says which);
* conv: ``nn.Conv2d(64, 64, 3, padding=1)`` on 8×64×56×56 (priced at the probed matmul rate).

Every tensor is at most 16 MiB. Larger outputs (≥ 32 MiB, glibc's largest mmap threshold) are mapped fresh by
each call and page-faulted in, a cost the roofline does not model and the claim is not about.

The probe and the measurements run in the same process, on the same thread count, interleaved: each of
``--rounds`` rounds runs ``probe_local(save=False)`` (float32 only; nothing is written to the user cache), then
times every case (the case order rotates per round), then prices each case's profile with ``roofline`` on
that round's spec. The table gives the medians over rounds of the predicted and of the measured time, their
ratio (the claim's figure: it passes when measured ÷ predicted is within [0.5, 2]) and the range of the
per-round ratios. Every per-round figure and the probed specs are in the JSON record.

``--threads`` defaults to 1 because this machine has two cores shared with other work. On one thread the
probe and the op each run on one core and do not wait for anything else. With two threads and another process
busy, every parallel region waits until the scheduler gives its second thread a core: short kernels then take
whole scheduler ticks (multiples of ~4 ms here), whatever their size. That hits the probe's vector figure
(twenty 1 MiB ``addcmul`` calls per timed run, each its own parallel region) hardest, and the ops differently,
so measured ÷ predicted swings with the load, not with the model: in two 2-thread runs at load ~2 the
per-round ratios of softmax and layernorm ran from 0.02 (the vector probe stalled) to 6.9, conv's from 0.76
to 2.2, while the matmul (few, long parallel regions) stayed within 0.95–1.24. Run ``--threads 2`` to see
it; its record is written beside the default one (``results/roofline_accuracy_2threads.json``), not over it.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from _common import report
from torch import nn

from aicompute.profile import ProfileResult, profile
from aicompute.profile.probe import probe_local
from aicompute.profile.roofline import roofline
from aicompute.timing import median_ms

CLAIM_FACTOR = 2.0
MAX_TENSOR_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]


CASES = (
    Case("matmul", lambda: nn.Linear(2048, 2048, bias=False), (2048, 2048)),
    Case("softmax", lambda: nn.Softmax(dim=-1), (1024, 4096)),
    Case("layernorm", lambda: nn.LayerNorm(4096), (1024, 4096)),
    Case("conv", lambda: nn.Conv2d(64, 64, 3, padding=1), (8, 64, 56, 56)),
)


@dataclass
class Prepared:
    """One case ready to run: its module, a real input, its profile and the per-round figures."""

    case: Case
    module: nn.Module
    x: torch.Tensor
    profiled: ProfileResult
    predicted_ms: list[float] = field(default_factory=list)
    measured_ms: list[float] = field(default_factory=list)
    bounds: list[str] = field(default_factory=list)
    """``"compute"`` or ``"memory"`` on each round's spec."""
    flops: int = 0
    moved: int = 0

    def run(self) -> None:
        self.module(self.x)


def prepare(case: Case) -> Prepared:
    module = case.build().eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(case.shape, generator=gen)
    with torch.inference_mode():
        out = module(x)
    for t in (x, out):  # a larger tensor would be page-faulted in on every call (see the module docstring)
        if t.numel() * t.element_size() > MAX_TENSOR_BYTES:
            raise SystemExit(f"{case.name}: a {tuple(t.shape)} tensor is over {MAX_TENSOR_BYTES >> 20} MiB")
    return Prepared(case, module, x, profile(module, input_shape=case.shape))


def run_round(cases: list[Prepared], index: int, repeats: int) -> dict:
    """Probe, then time every case (order rotated by ``index``), then price each on this round's spec."""
    spec = probe_local(repeats=repeats, dtypes=("float32",), save=False)
    order = cases[index % len(cases):] + cases[:index % len(cases)]
    with torch.inference_mode():
        for p in order:
            p.measured_ms.append(median_ms(p.run, repeats=repeats, warmup=2))
    for p in cases:
        rf = roofline(p.profiled, spec)
        p.predicted_ms.append(rf.latency_s * 1e3)
        p.bounds.append(rf.ops[0].bound)  # each case is one op (checked in main)
        p.flops, p.moved = rf.flops, rf.moved
    return spec.to_dict()


def row(p: Prepared) -> tuple:
    predicted, measured = statistics.median(p.predicted_ms), statistics.median(p.measured_ms)
    ratio = measured / predicted
    per_round = [m / e for m, e in zip(p.measured_ms, p.predicted_ms)]
    within = 1 / CLAIM_FACTOR <= ratio <= CLAIM_FACTOR
    bound = "/".join(sorted(set(p.bounds)))  # both names if the probe moved the op across the ridge
    return (p.case.name, "×".join(map(str, p.case.shape)), f"{p.flops / 1e9:.3f}", f"{p.moved / 2**20:.1f}",
            bound, f"{predicted:.3f}", f"{measured:.3f}", f"{ratio:.2f}",
            f"{min(per_round):.2f}–{max(per_round):.2f}", "pass" if within else "FAIL")


def main() -> None:
    os.environ.setdefault("COLUMNS", "160")  # rich takes the table width from here when piped
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the probe and the ops (default 1)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved probe + measure rounds")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per probe figure and per op, per round")
    args = ap.parse_args()
    for flag in ("threads", "rounds", "repeats"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag} must be a positive integer, got {getattr(args, flag)}")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    cases = [prepare(c) for c in CASES]
    for p in cases:
        ops = {r.op for r in p.profiled.records}
        if len(ops) != 1:
            raise SystemExit(f"{p.case.name}: expected one op, the profile has {sorted(ops)}")
    specs = [run_round(cases, i, args.repeats) for i in range(args.rounds)]
    load_after = os.getloadavg()
    rows = [row(p) for p in cases]
    name = "roofline_accuracy" if args.threads == 1 else f"roofline_accuracy_{args.threads}threads"
    peaks = [(s["tensor_flops"]["float32"], s["vector_flops"]["float32"], s["bandwidth_bytes_per_s"]) for s in specs]
    tensor, vector, bandwidth = (statistics.median(col) for col in zip(*peaks))
    report(name, f"Roofline vs measured on this CPU, {args.threads} thread(s), ms "
                 f"(medians of {args.rounds} interleaved rounds)",
           ["op", "input", "GFLOP", "MiB moved", "bound", "predicted ms", "measured ms", "measured ÷ predicted",
            "per-round range", "within 2×"], rows,
           rounds=args.rounds, repeats=args.repeats, load_average_before=load_before, load_average_after=load_after,
           per_round={p.case.name: {"predicted_ms": p.predicted_ms, "measured_ms": p.measured_ms} for p in cases},
           probed_specs=specs)
    passed = sum(r[-1] == "pass" for r in rows)
    print(f"  probe medians: matmul {tensor / 1e9:.1f} GFLOP/s, vector {vector / 1e9:.1f} GFLOP/s, "
          f"copy {bandwidth / 1e9:.1f} GB/s; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"  claim (within {CLAIM_FACTOR:g}× of the measured median): {passed}/{len(rows)} cases pass")


if __name__ == "__main__":
    main()
