"""Claim: the profiler's MACs of conv/linear/matmul equal `torch.utils.flop_counter.FlopCounterMode`
(FLOPs = 2 × MACs) on every zoo model, and its parameter count equals `sum(p.numel())` exactly.

Usage: .venv/bin/python benchmarks/profile_flopcounter.py [--models resnet50 lstm ...] [--training all|none|NAME...]

Every zoo model is built once on meta (gpt3-175b too: meta-only) with its default input at batch 1 and
counted in inference and, for the models `--training` names, in training (forward plus the backward of a
gradient of ones on the outputs, as the profiler does; the input needs no gradient):

* **ours**: `profile(model, x, mode=...)`, the MACs of its matmul + conv + attention records;
* **FC meta**: stock `FlopCounterMode` running the model on meta tensors, FLOPs ÷ 2. On meta,
  `scaled_dot_product_attention` takes the math path (`bmm`, softmax, `bmm`);
* **FC adjusted**: `FlopCounterMode` over the same fake-CPU trace the profiler runs, with two formulas
  added through its `custom_mapping`: torch's own `sdpa_flop_count` / `sdpa_backward_flop_count` for
  the CPU flash kernels `_scaled_dot_product_flash_attention_for_cpu[_backward]` (stock FlopCounterMode
  has no entry for them), and its `convolution_backward` formula with the weight-gradient term divided
  by `groups` (torch 2.13's formula drops the groups, so a depthwise conv's weight gradient is counted
  `groups` times over; pytorch/pytorch#183405 adds that division).

Two differences between ours and FC meta are expected and measured, not assumed: the flash backward
recomputes QKᵀ (torch's `sdpa_backward_flop_count` counts 5 score-sized matmuls; the math path's
backward runs 4), and FlopCounterMode's grouped-conv weight-gradient overcount. A row passes as
"pass (adjusted)" only when ours equals FC adjusted and ours − FC meta is exactly the recompute minus the
overcount, both summed from the shapes FlopCounterMode's formulas receive. Anything else fails, and the
ops that differ are listed under the table. "tensor FLOPs − 2×MACs" sums, over our matmul/conv records,
the FLOPs beyond 2 × MACs: 0 wherever the records' "flops = 2 × macs" convention holds; the profiler adds
the bias gradient (one FLOP per grad_out element) to `convolution_backward` and the gate arithmetic to the
fused RNN kernels (`mkldnn_rnn_layer[_backward]`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from _common import report
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import (
    FlopCounterMode,
    conv_flop_count,
    flop_registry,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

from aicompute.models import example_input, get_model, list_models, model_spec
from aicompute.profile.api import output_tensors, profile
from aicompute.profile.records import is_tensor_category

aten = torch.ops.aten
TRAINING_DEFAULT = ("lenet5", "resnet50", "mobilenet_v2", "densenet121", "efficientnet_b0", "googlenet", "rnn",
                    "lstm", "char-gru", "transformer", "gpt2-small", "gpt3-175b")
"""Models checked in training by default: a plain CNN, residual, depthwise, dense, SE + SiLU, inception,
recurrent (three kinds), and the three GPTs."""
_STOCK_CONV_BACKWARD = flop_registry[aten.convolution_backward]


def _run(model: nn.Module, state: dict[str, torch.Tensor] | None, x: torch.Tensor, training: bool) -> None:
    """One forward (``state`` replaces parameters and buffers when given) and, for training, the backward
    of a gradient of ones on every output that needs one (as the profiler does)."""
    grad = contextlib.nullcontext() if training else torch.no_grad()
    with grad:
        out = torch.func.functional_call(model, state, (x,)) if state is not None else model(x)
        if training:
            outs = [t for t in output_tensors(out) if t.requires_grad]
            torch.autograd.backward(outs, [torch.ones_like(t) for t in outs])


def _macs_per_op(fc: FlopCounterMode) -> dict[str, int]:
    """FlopCounterMode's FLOPs per aten op packet ÷ 2, keyed like our records (``aten.mm``)."""
    return {str(op): flops // 2 for op, flops in fc.get_flop_counts()["Global"].items()}


def fc_meta(model: nn.Module, x: torch.Tensor, training: bool) -> dict[str, int]:
    """Stock FlopCounterMode on the meta model: MACs per op."""
    model.train(training)
    with FlopCounterMode(display=False) as fc:
        _run(model, None, x, training)
    return _macs_per_op(fc)


@dataclass
class Adjusted:
    per_op: dict[str, int]
    recompute: int = 0
    """MACs of the QKᵀ the flash backward recomputes: B·H·S_q·S_k·D per backward call."""
    groups_overcount: int = 0
    """MACs stock FlopCounterMode adds for grouped convs' weight gradients: (groups − 1)/groups of its term."""
    fused_rnn: int = 0
    """MACs the fused oneDNN RNN backward spends on gradients autograd would prune when the layer runs
    unfused (cell by cell, as on meta): the initial state's, B·G·H·H, and, when the layer's input needs
    no gradient, the input's, T·B·G·H·F."""


def fc_adjusted(model: nn.Module, x: torch.Tensor, training: bool, *, rnn_input_grad: bool) -> Adjusted:
    """FlopCounterMode over a fake-CPU trace with torch's SDPA formulas for the CPU flash kernels and the
    grouped-conv weight-gradient fix; records how much each adjustment moved the count."""
    found = Adjusted({})

    def sdpa(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_flop_count(q, k, v)

    def sdpa_backward(grad_out: Any, q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        b, h, s_q, d = q  # (B, H, S_q, D) queries over (B, H_kv, S_k, D) keys
        found.recompute += b * h * s_q * k[-2] * d
        return sdpa_backward_flop_count(grad_out, q, k, v)

    def conv_backward(grad_out: Any, x: Any, w: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
                      transposed: bool, output_padding: Any, groups: int, mask: Any, out_shape: Any = None,
                      **kwargs: Any) -> int:
        stock = _STOCK_CONV_BACKWARD(grad_out, x, w, bias, stride, padding, dilation, transposed,
                                     output_padding, groups, mask, out_val=out_shape)
        if not mask[1] or groups == 1:
            return stock

        def t(shape: Any) -> list[int]:  # swap batch and channel dims, as torch's formula does
            return [shape[1], shape[0], *shape[2:]]

        grad_w = out_shape[1]
        term = (conv_flop_count(t(grad_out), t(x), t(grad_w)) if transposed
                else conv_flop_count(t(x), t(grad_out), t(grad_w)))
        excess = term - term // groups
        found.groups_overcount += excess // 2
        return stock - excess

    def rnn_layer(x: Any, w_ih: Any, w_hh: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * x[0] * x[1] * (w_ih[0] * w_ih[1] + w_hh[0] * w_hh[1])  # T·B steps of both matmuls

    def rnn_layer_backward(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, hx: Any, *args: Any,
                           out_shape: Any = None, **kwargs: Any) -> int:
        found.fused_rnn += hx[-2] * w_hh[0] * w_hh[1]  # dh0; hx is (B, H)
        if not rnn_input_grad:
            found.fused_rnn += x[0] * x[1] * w_ih[0] * w_ih[1]  # dX, which the unfused backward prunes
        return 2 * rnn_layer(x, w_ih, w_hh)  # every gradient of both matmuls, as the fused kernel runs them

    mapping = {aten.mkldnn_rnn_layer: rnn_layer,
               aten.mkldnn_rnn_layer_backward: rnn_layer_backward,
               aten._scaled_dot_product_flash_attention_for_cpu: sdpa,
               aten._scaled_dot_product_flash_attention_for_cpu_backward: sdpa_backward,
               aten.convolution_backward: conv_backward}
    model.train(training)
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    with fake:
        state = {name: torch.empty(t.shape, dtype=t.dtype, device="cpu").requires_grad_(training and t.requires_grad)
                 for name, t in [*model.named_parameters(), *model.named_buffers()]}
        xs = torch.empty(x.shape, dtype=x.dtype, device="cpu")
    with fake, FlopCounterMode(display=False, custom_mapping=mapping) as fc:
        _run(model, state, xs, training)
    found.per_op = _macs_per_op(fc)
    return found


def ours(model: nn.Module, x: torch.Tensor, mode: str) -> tuple[dict[str, int], int, int, list[str]]:
    """Our MACs per op (matmul/conv/attention records), params, the FLOPs of matmul/conv records beyond
    2 × MACs (attention adds its softmax on purpose, so it is left out), and the ops left uncounted."""
    result = profile(model, x, mode=mode)
    per_op: Counter[str] = Counter()
    extra = 0
    for r in result.records:
        if is_tensor_category(r.category):
            per_op[r.op] += r.macs
            if r.category != "attention":
                extra += r.flops - 2 * r.macs
    uncounted = [u["op"] for u in result.coverage()["uncounted"]]
    return dict(per_op), result.params, extra, uncounted


def _verdict(total: int, meta: int, adjusted: Adjusted) -> str:
    if total == meta:
        return "pass"
    explained = adjusted.recompute - adjusted.groups_overcount + adjusted.fused_rnn
    if total == sum(adjusted.per_op.values()) and total - meta == explained:
        return "pass (adjusted)"
    return "FAIL"


def _adjustments(adjusted: Adjusted) -> str:
    parts = []
    if adjusted.recompute:
        parts.append(f"QKᵀ recompute +{adjusted.recompute:,}")
    if adjusted.groups_overcount:
        parts.append(f"groups fix −{adjusted.groups_overcount:,}")
    if adjusted.fused_rnn:
        parts.append(f"fused RNN dX, dh0 +{adjusted.fused_rnn:,}")
    return "; ".join(parts) or "none"


def check(name: str, modes: list[str]) -> tuple[list[tuple], list[str]]:
    """Rows (one per mode) and notes on every row that differs from stock FlopCounterMode."""
    spec = model_spec(name)
    model = get_model(name, device="meta")  # built once, shared by all counts
    x = example_input(spec, 1, device="meta")
    numel = sum(p.numel() for p in model.parameters())
    rows, notes = [], []
    for mode in modes:
        training = mode == "training"
        mine, params, extra, uncounted = ours(model, x, mode)
        meta = fc_meta(model, x, training)
        # a zoo RNN reading token ids gets its input from a trainable embedding: that dX is needed anyway
        adjusted = fc_adjusted(model, x, training, rnn_input_grad=spec.input_dtype == "int64")
        total, total_meta = sum(mine.values()), sum(meta.values())
        verdict = _verdict(total, total_meta, adjusted)
        if total != total_meta:
            notes.append(f"{name} {mode} [{verdict}]: ours by op {mine}; FC meta by op {meta}; FC adjusted by op "
                         f"{adjusted.per_op}; ops ours left uncounted: {uncounted or 'none'}")
        rows.append((name, mode, f"{total:,}", f"{total_meta:,}", f"{sum(adjusted.per_op.values()):,}",
                     _adjustments(adjusted), verdict, f"{extra:,}", f"{params:,}", f"{numel:,}",
                     "pass" if params == numel else "FAIL"))
    return rows, notes


def main() -> None:
    os.environ.setdefault("COLUMNS", "220")  # the table is wide; rich takes its width from here when piped
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", help="zoo names (default: every zoo model)")
    ap.add_argument("--training", nargs="*", default=list(TRAINING_DEFAULT),
                    help="models also checked in training: names, 'all' or 'none'")
    args = ap.parse_args()
    names = args.models or [s.name for s in list_models()]
    training = set(names if args.training == ["all"] else [] if args.training == ["none"] else args.training)
    started = time.perf_counter()
    rows, notes = [], []
    for name in names:
        r, n = check(name, ["inference", "training"] if name in training else ["inference"])
        rows += r
        notes += n
    seconds = time.perf_counter() - started
    failed = sum(1 for r in rows if r[6] == "FAIL" or r[10] == "FAIL")
    report("profile_flopcounter", "Our MACs (matmul + conv + attention) vs FlopCounterMode FLOPs ÷ 2, batch 1",
           ["model", "mode", "ours MACs", "FC meta ÷ 2", "FC adjusted ÷ 2", "adjustments (MACs)", "MACs",
            "tensor FLOPs − 2×MACs", "ours params", "Σ numel", "params"], rows,
           notes=notes, failed_rows=failed, seconds=seconds)
    for note in notes:
        print("  " + note)
    print(f"{len(rows)} rows, {failed} failing, {seconds:.1f} s")


if __name__ == "__main__":
    main()
