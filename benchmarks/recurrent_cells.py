"""Claim: our RNN/LSTM/GRU layers (written step by step from the seed text's equations) compute what torch's
fused layers compute; this measures how much slower they are, honestly, per time step.

Usage: .venv/bin/python benchmarks/recurrent_cells.py [--repeats 20]

For each cell and size: max |ours − torch| of the outputs (same weights, float32) and the median time per
step of a forward pass and of a forward + backward pass, ours and torch's, with their ratio. Both run in
this process, interleaved, on the same inputs.
"""

from __future__ import annotations

import argparse

import torch
from _common import median_ms, report
from torch import nn

from aicompute.nn.recurrent import GRU, LSTM, RNN

CELLS = (("RNN", RNN, nn.RNN), ("LSTM", LSTM, nn.LSTM), ("GRU", GRU, nn.GRU))
SIZES = ((32, 28, 28, 128), (64, 64, 128, 256))  # (batch, steps, input, hidden)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for batch, steps, inp, hidden in SIZES:
        x = torch.randn(batch, steps, inp)
        for name, ours_cls, torch_cls in CELLS:
            reference = torch_cls(inp, hidden, batch_first=True)
            ours = ours_cls.from_torch(reference)
            with torch.no_grad():
                diff = float((ours(x)[0] - reference(x)[0]).abs().max())
                fwd_ours = median_ms(lambda: ours(x), repeats=args.repeats) / steps
                fwd_torch = median_ms(lambda: reference(x), repeats=args.repeats) / steps

            def train_step(m):
                m.zero_grad(set_to_none=True)
                m(x)[0].sum().backward()

            bwd_ours = median_ms(lambda: train_step(ours), repeats=args.repeats) / steps
            bwd_torch = median_ms(lambda: train_step(reference), repeats=args.repeats) / steps
            rows.append((name, f"{batch}×{steps}×{inp}→{hidden}", f"{diff:.1e}", round(fwd_ours, 4),
                         round(fwd_torch, 4), round(fwd_ours / fwd_torch, 2), round(bwd_ours, 4),
                         round(bwd_torch, 4), round(bwd_ours / bwd_torch, 2)))
    report("recurrent_cells", f"Ours vs torch fused, ms per step (median of {args.repeats})",
           ["cell", "B×T×in→hidden", "max |diff|", "fwd ours", "fwd torch", "fwd ratio", "fwd+bwd ours",
            "fwd+bwd torch", "fwd+bwd ratio"], rows, threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
