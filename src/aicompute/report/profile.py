"""The profiler's chapters: what zoo models compute, where the time goes on a chip, prefill vs decode; the
lightweight-design comparisons and the classic-CNN table."""

from __future__ import annotations

from typing import Any

from aicompute.report.html import Chapter
from aicompute.report.roofline import roofline_png

__all__ = ["profile_chapter", "design_chapter"]

MiB = 2**20


def profile_chapter(tour: dict[str, Any]) -> Chapter:
    ch = Chapter("What models compute: MACs, bytes, intensity and roofline")
    ch.text(
        "Each model was traced now on fake tensors (shapes only, no weights) at batch 1 in float32. MACs are "
        "the multiply-accumulates of matmul, conv and attention; FLOPs add the vector ops (elementwise, "
        "normalization, softmax, pooling) by per-element formulas; bytes are every tensor read and written; "
        "intensity is FLOPs per byte."
    )
    ch.table(
        ["model", "input", "params", "GMACs", "GFLOPs", "MiB moved", "FLOP/byte", "tensor-op FLOP share",
         "peak activations MiB"],
        [(r["model"], r["input"], r["params"], r["macs"] / 1e9, r["flops"] / 1e9, r["moved_bytes"] / MiB,
          r["intensity"], f"{100 * r['tensor_flops_share']:.1f}%", r["peak_activation_bytes"] / MiB)
         for r in tour["models"]],
    )
    study = tour["study"]
    first = study["rooflines"][0]
    ch.text(
        f"{study['model']}: share of FLOPs, bytes moved and estimated time per op category on "
        f"{first['hardware']['name']}. The dense ops do nearly all the arithmetic; the vector ops move a "
        "large share of the bytes, so on a fast chip they take far more of the time than of the FLOPs."
    )
    ch.table(
        ["category", "FLOPs", "bytes moved", f"time on {first['hardware']['key']}"],
        [(c["category"], f"{100 * c['flops_share']:.1f}%", f"{100 * c['bytes_share']:.1f}%",
          f"{100 * c['time_share']:.1f}%") for c in study["categories"]],
    )
    rows = []
    for roof in study["rooflines"]:
        t = roof["totals"]
        rows.append((roof["hardware"]["name"], "measured now" if roof["hardware"]["measured"] else "datasheet",
                     t["latency_ms"], f"{100 * t['compute_bound_share']:.0f}%", f"{100 * t['memory_bound_share']:.0f}%",
                     t["achieved_flops_per_s"] / 1e9))
    ch.table(["hardware", "spec", "estimated ms", "compute-bound time", "memory-bound time", "GFLOP/s achieved"],
             rows, caption="roofline estimate: max(FLOPs / peak, bytes / bandwidth) per op call, summed")
    for roof in study["rooflines"]:
        ch.figure(roofline_png(roof, by="op"),
                  f"{study['model']} per op on {roof['hardware']['name']}: each point one aten op, sized by its time")
    llm = tour["llm"]
    ch.text(
        f"{llm['model']} on {llm['chip']}: prefill of the whole context vs one decode step attending over "
        f"{llm['kv_len']} positions read from the KV cache. Decode does little arithmetic per byte of weights "
        "and cache it reads, which is why LLM inference is memory-bound."
    )
    ch.table(
        ["phase", "tokens", "GMACs", "MiB moved", "FLOP/byte", "KV cache MiB", "estimated ms", "ms per token",
         "memory-bound time"],
        [(p["phase"], p["tokens"], p["macs"] / 1e9, p["moved_bytes"] / MiB, p["intensity"],
          p["kv_cache_bytes"] / MiB, p["latency_ms"], p["ms_per_token"], f"{100 * p['memory_bound_share']:.0f}%")
         for p in llm["phases"]],
    )
    training = llm.get("training") or []
    if training:
        first = training[0]
        shape = "×".join(map(str, first["input"]))
        ch.text(
            f"What one training step of {llm['model']} (input {shape}) holds, traced now through the real "
            "backward. The seed's sum is parameters + gradients + optimizer states + the activations saved "
            "for backward; the measured peak is parameters + optimizer states + the most that activations "
            "and gradients occupy together as backward frees the one and makes the other. Mixed precision "
            "(bf16 + Adam) keeps fp32 master weights and states: 16 bytes per parameter, as in ZeRO."
        )
        GiB = 2**30
        ch.table(
            ["dtype", "optimizer", "params GiB", "grads GiB", "optimizer states GiB", "saved activations GiB",
             "seed's sum GiB", "measured step peak GiB", "model state bytes / param"],
            [(t["dtype"], t["optimizer"], t["params_bytes"] / GiB, t["grads_bytes"] / GiB,
              t["optimizer_state_bytes"] / GiB, t["saved_activation_bytes"] / GiB, t["training_total_bytes"] / GiB,
              t["training_peak_bytes"] / GiB,
              (t["params_bytes"] + t["grads_bytes"] + t["optimizer_state_bytes"]) / t["params"])
             for t in training],
        )
    return ch


def design_chapter(record: dict[str, Any]) -> Chapter:
    """``{"comparisons": DesignResult.to_dict(), "cnn": CNNTableResult.to_dict()}``."""
    ch = Chapter("Lightweight design and the classic CNNs, by the numbers")
    ch.text(
        "Each design the seed text walks through, built as real modules and profiled now; the closed-form "
        "column is the seed's formula at these sizes (✓ where the profiler's params and MACs equal it)."
    )
    rows = []
    for c in record["comparisons"]["comparisons"]:
        for i, r in enumerate(c["rows"]):
            exact = r["params"] == r["formula_params"] and r["macs"] == r["formula_macs"]
            rows.append((c["title"] if i == 0 else "", r["variant"], r["formula"], r["params"], r["macs"],
                         "✓" if exact else f"{r['formula_params']:,} / {r['formula_macs']:,}",
                         r["intensity_flops_per_byte"], r["params_ratio"], r["macs_ratio"]))
    ch.table(["design", "variant", "params formula", "params", "MACs", "closed form", "FLOP/byte", "params ×",
              "MACs ×"], rows, caption="× = ratio to the first variant of each design")
    ch.text("The seed's table of classic CNNs, regenerated from the zoo at the seed's input sizes; the seed's "
            "printed figures beside ours, and where they differ, why.")
    cnn = record["cnn"]["rows"]
    ch.table(["model", "year", "input", "params", "seed says", "MACs", "seed says", "ours / seed (MACs)"],
             [(r["model"], str(r["year"]), r["input_shape"][1:], r["params"], r["seed_params"], r["macs"],
               r["seed_macs"], r["macs_ratio"]) for r in cnn])
    for r in cnn:
        if r.get("note"):
            ch.text(f"{r['model']}: {r['note']}")
    return ch
