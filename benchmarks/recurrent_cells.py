"""Claim: our RNN/LSTM/GRU layers (written step by step from the seed text's equations) compute what torch's
fused layers compute; this measures how much slower they are, honestly, per time step.

Usage: .venv/bin/python benchmarks/recurrent_cells.py [--repeats 20]

For each cell and size: max |ours − torch| of the outputs (same weights, float32) and the median time per
step of a forward pass and of a forward + backward pass, ours and torch's, with their ratio. Both run in
this process, interleaved, on the same inputs (`aicompute.demo.foundation.recurrent_check`).
"""

from __future__ import annotations

import argparse

from _common import report

from aicompute.demo.foundation import recurrent_check

SIZES = ((32, 28, 28, 128), (64, 64, 128, 256))  # (batch, steps, input, hidden)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    rows = []
    for batch, steps, inp, hidden in SIZES:
        check = recurrent_check(batch=batch, steps=steps, input_size=inp, hidden_size=hidden, repeats=args.repeats)
        for c in check.cells:
            rows.append((c.cell, f"{batch}×{steps}×{inp}→{hidden}", f"{c.max_abs_diff:.1e}",
                         round(c.ours_ms_per_step, 4), round(c.torch_ms_per_step, 4), round(c.ratio, 2),
                         round(c.ours_train_ms_per_step, 4), round(c.torch_train_ms_per_step, 4),
                         round(c.train_ratio, 2)))
    report("recurrent_cells", f"Ours vs torch fused, ms per step (median of {args.repeats})",
           ["cell", "B×T×in→hidden", "max |diff|", "fwd ours", "fwd torch", "fwd ratio", "fwd+bwd ours",
            "fwd+bwd torch", "fwd+bwd ratio"], rows, threads=check.threads)


if __name__ == "__main__":
    main()
