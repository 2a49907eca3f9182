"""The profiler's tour: what zoo models compute, where the time goes on a chip, prefill vs decode, and what
a training step holds in memory.

Every figure is computed now by :func:`aicompute.profile.profile` (fake tensors, no weights) and priced by
:func:`aicompute.profile.roofline.roofline` on a datasheet chip and on this machine, probed now.
"""

from __future__ import annotations

from typing import Any

from aicompute.profile import profile
from aicompute.profile.hardware import get_hardware
from aicompute.profile.probe import probe_local
from aicompute.profile.records import CATEGORIES
from aicompute.profile.roofline import roofline

__all__ = ["profile_tour", "TOUR_MODELS"]

TOUR_MODELS = ("lenet5", "resnet50", "mobilenet_v2", "efficientnet_b0", "gpt2-small")
"""Zoo models at their default inputs: a small CNN, a heavy CNN, two lightweight CNNs, a Transformer."""
TRAINING_SETUPS = (("float32", "sgd"), ("float32", "adam"), ("bfloat16", "adam"))
"""(trace dtype, optimizer) of the training-memory table: bf16 + Adam is mixed precision with fp32 masters."""


def profile_tour(*, models: tuple[str, ...] = TOUR_MODELS, study: str = "resnet50", llm: str = "gpt2-small",
                 kv_len: int = 1024, chip: str = "h100", probe: bool = True) -> dict[str, Any]:
    """One record: per-model totals, a category and roofline study of ``study`` on ``chip`` (and on this
    machine when ``probe``), and ``llm``'s prefill vs per-token decode."""
    rows = [_model_row(name) for name in models]
    studied = profile(study)
    hardware = [get_hardware(chip)]
    if probe:  # small sizes: a few seconds; `aicompute hw probe` measures with larger ones
        hardware.append(probe_local(repeats=5, matmul_size=1024, copy_mib=128, save=False))
    roofs = [roofline(studied, hw, depth=1) for hw in hardware]
    prefill = profile(llm, phase="prefill")
    decode = profile(llm, phase="decode", kv_len=kv_len)
    training = [profile(llm, mode="training", dtype=dtype, optimizer=opt) for dtype, opt in TRAINING_SETUPS]
    return {
        "kind": "profile-tour",
        "models": rows,
        "study": {
            "model": study,
            "summary": studied.summary(),
            "categories": _categories(studied, roofs[0]),
            "rooflines": [r.to_dict() for r in roofs],
        },
        "llm": {
            "model": llm,
            "kv_len": kv_len,
            "phases": [_phase_row(p, roofline(p, hardware[0])) for p in (prefill, decode)],
            "chip": hardware[0].name,
            "training": [_training_row(t) for t in training],
        },
    }


def _model_row(name: str) -> dict[str, Any]:
    result = profile(name)
    s = result.summary()
    return {
        "model": name,
        "input": result.inputs[0][0],
        "params": s["params"],
        "macs": s["macs"],
        "flops": s["flops"],
        "moved_bytes": s["read_bytes"] + s["written_bytes"],
        "intensity": s["intensity_flops_per_byte"],
        "tensor_flops_share": s["tensor_flops_share"],
        "peak_activation_bytes": result.peak_activation_bytes,
        "seconds": result.seconds,
    }


def _categories(result: Any, roof: Any) -> list[dict[str, Any]]:
    """Share of FLOPs, bytes moved and estimated time per op category."""
    totals = {c: [0, 0, 0.0] for c in CATEGORIES}
    for r in result.records:
        totals[r.category][0] += r.flops or 0
        totals[r.category][1] += r.moved
    for row in roof.ops:
        totals[row.category][2] += row.time_s
    flops, moved, time_s = (sum(v[i] for v in totals.values()) or 1 for i in range(3))
    return [
        {"category": c, "flops_share": f / flops, "bytes_share": b / moved, "time_share": t / time_s}
        for c, (f, b, t) in totals.items() if f or b
    ]


def _training_row(result: Any) -> dict[str, Any]:
    memory = result.memory()
    return {"dtype": result.dtype, "input": result.inputs[0][0], "params": result.params,
            **{key: memory[key] for key in ("optimizer", "mixed_precision", "params_bytes", "grads_bytes",
                                            "optimizer_state_bytes", "saved_activation_bytes",
                                            "training_total_bytes", "peak_activation_and_grads_bytes",
                                            "training_peak_bytes")}}


def _phase_row(result: Any, roof: Any) -> dict[str, Any]:
    tokens = result.inputs[0][0][0] * result.inputs[0][0][1]
    totals = roof.to_dict()["totals"]
    return {
        "phase": result.phase,
        "tokens": tokens,
        "macs": result.macs,
        "moved_bytes": result.total.moved,
        "intensity": result.total.intensity,
        "kv_cache_bytes": result.kv_cache_bytes,
        "latency_ms": totals["latency_ms"],
        "ms_per_token": totals["latency_ms"] / tokens,
        "memory_bound_share": totals["memory_bound_share"],
    }
