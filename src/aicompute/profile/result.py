"""``ProfileResult``: a traced model's op records with their roll-ups, memory, coverage and conventions."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.profile.counter import OpCounter
from aicompute.profile.memory import ModelStates
from aicompute.profile.ops import UNTRACED_TRAINING_MEMORY
from aicompute.profile.records import OpRecord
from aicompute.profile.rollup import Cost, ModuleRow, OpRow, by_module, by_op, sum_records

__all__ = ["ProfileResult", "CONVENTION", "STORAGE_BITS"]

CONVENTION = (
    "MACs = multiply-accumulates of matmul/conv/attention; their FLOPs = 2 x MACs (fused bias adds not "
    "counted); vector ops (elementwise, reduction, norm, softmax, pooling) add FLOPs by per-element "
    "formulas; bytes = tensors read + written at the traced dtype; intensity = FLOPs / bytes"
)
STORAGE_BITS: dict[str, float] = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4}
"""Bits per weight of the formats the weight-bytes table lists."""


@dataclass
class ProfileResult:
    model: str
    model_class: str
    inputs: list[tuple[list[int], str]]
    dtype: str
    mode: str
    phase: str | None
    kv_len: int | None
    device: str
    params: int
    trainable_params: int
    records: list[OpRecord]
    modules: dict[str, tuple[str, int]]
    """path → (type name, params of the subtree), in ``named_modules()`` order."""
    module_outputs: dict[str, int]
    """path → bytes of the tensors its forward returned, summed over its calls."""
    ignored: Counter
    peak_activation_bytes: int
    """Peak of live bytes while tracing other than parameters, buffers and accumulated parameter gradients:
    inputs, activations, KV cache and, in backward, incoming gradients and temporaries."""
    peak_with_grads_bytes: int = 0
    """Training: peak of the same bytes plus the parameter gradients accumulated so far."""
    saved_activation_bytes: int | None = None
    """Training: bytes alive when forward returns, i.e. saved for backward (plus the outputs)."""
    kv_cache_bytes: int = 0
    states: ModelStates | None = None
    seconds: float = 0.0
    _total: Cost | None = field(default=None, repr=False)

    @classmethod
    def build(cls, *, model: nn.Module, label: str, counter: OpCounter, input_specs: list, dtype: torch.dtype,
              mode: str, phase: str | None, kv_len: int | None, device: torch.device,
              states: ModelStates | None, saved_activation_bytes: int | None, kv_cache_bytes: int,
              seconds: float) -> ProfileResult:
        modules = {}
        for path, module in model.named_modules():
            modules[path] = (type(module).__name__, sum(p.numel() for p in module.parameters()))
        return cls(
            model=label,
            model_class=type(model).__name__,
            inputs=[(list(shape), str(dt).removeprefix("torch.")) for shape, dt in input_specs],
            dtype=str(dtype).removeprefix("torch."),
            mode=mode,
            phase=phase,
            kv_len=kv_len,
            device=str(device),
            params=modules[""][1],
            trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
            records=counter.records,
            modules=modules,
            module_outputs=dict(counter.module_outputs),
            ignored=counter.ignored,
            peak_activation_bytes=counter.memory.peak_activation,
            peak_with_grads_bytes=counter.memory.peak,
            saved_activation_bytes=saved_activation_bytes,
            kv_cache_bytes=kv_cache_bytes,
            states=states,
            seconds=seconds,
        )

    # ------------------------------------------------------------------------------------------ totals

    @property
    def total(self) -> Cost:
        if self._total is None:
            self._total = sum_records(self.records)
        return self._total

    @property
    def macs(self) -> int:
        return self.total.macs

    @property
    def flops(self) -> int:
        return self.total.flops

    def phase_cost(self, phase: str) -> Cost:
        """Cost of the ``"forward"`` or ``"backward"`` records only."""
        return sum_records(r for r in self.records if r.phase == phase)

    def weight_bytes(self) -> dict[str, int]:
        """Bytes of all parameters stored in each format (int4 packs two per byte)."""
        return {fmt: math.ceil(self.params * bits / 8) for fmt, bits in STORAGE_BITS.items()}

    # --------------------------------------------------------------------------------------- roll-ups

    def by_op(self) -> list[OpRow]:
        return by_op(self.records)

    def by_module(self, depth: int | None = None) -> list[ModuleRow]:
        return by_module(self.records, self.modules, depth=depth, outputs=self.module_outputs)

    def coverage(self) -> dict[str, Any]:
        """How many calls were priced, ignored on purpose, or left uncounted (with their bytes share); and,
        in training, the ops whose kernels hold memory the trace does not see (``memory_not_traced``)."""
        total_bytes = self.total.moved or 1
        uncounted: dict[str, list[int]] = {}
        for r in self.records:
            if r.flops is None:
                entry = uncounted.setdefault(r.op, [0, 0])
                entry[0] += 1
                entry[1] += r.moved
        counted = sum(1 for r in self.records if r.flops is not None)
        untraced = Counter(r.op for r in self.records
                           if self.mode == "training" and r.phase == "forward" and r.op in UNTRACED_TRAINING_MEMORY)
        return {
            "memory_not_traced": [{"op": op, "calls": calls, "why": UNTRACED_TRAINING_MEMORY[op]}
                                  for op, calls in untraced.items()],
            "counted_calls": counted,
            "ignored_calls": sum(self.ignored.values()),
            "ignored_ops": dict(self.ignored.most_common()),
            "uncounted_calls": sum(c for c, _ in uncounted.values()),
            "uncounted": [
                {"op": op, "calls": calls, "bytes": nbytes, "bytes_share": nbytes / total_bytes}
                for op, (calls, nbytes) in sorted(uncounted.items(), key=lambda kv: -kv[1][1])
            ],
        }

    def check_strict(self) -> None:
        uncounted = self.coverage()["uncounted"]
        if uncounted:
            names = ", ".join(f"{u['op']} ({u['calls']} calls)" for u in uncounted)
            raise AicomputeError(
                f"{self.model} runs ops with no cost formula: {names}; "
                "profile without --strict to see them reported as uncounted"
            )

    def memory(self) -> dict[str, Any]:
        """Bytes: parameters at the traced dtype, measured activation peak, KV cache; for training the
        modelled gradients and optimizer state, the measured saved activations, their sum (the seed's
        params + grads + optimizer states + saved activations), and the measured step peak: parameters and
        optimizer state plus the peak of activations and gradients together, as gradients appear in backward
        while activations are freed."""
        out: dict[str, Any] = {
            "params_bytes": self.params * torch.finfo(getattr(torch, self.dtype)).bits // 8,
            "peak_activation_bytes": self.peak_activation_bytes,
        }
        if self.kv_cache_bytes:
            out["kv_cache_bytes"] = self.kv_cache_bytes
        if self.states is not None:
            out.update(self.states.to_dict())
            out["saved_activation_bytes"] = self.saved_activation_bytes
            out["training_total_bytes"] = self.states.total + (self.saved_activation_bytes or 0)
            out["peak_activation_and_grads_bytes"] = self.peak_with_grads_bytes
            out["training_peak_bytes"] = self.states.params + self.states.optimizer + self.peak_with_grads_bytes
        return out

    def tensor_share(self) -> float:
        """Share of counted FLOPs done by matmul/conv/attention (the seed's "~90% is MACs")."""
        return self.total.tensor_flops / self.total.flops if self.total.flops else 0.0

    # ------------------------------------------------------------------------------------------ output

    def summary(self) -> dict[str, Any]:
        total = self.total
        return {
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": total.macs,
            "flops": total.flops,
            "tensor_flops_share": self.tensor_share(),
            "read_bytes": total.read,
            "weight_read_bytes": total.weight_read,
            "written_bytes": total.written,
            "intensity_flops_per_byte": total.intensity,
            "op_calls": total.calls,
        }

    def to_dict(self, *, depth: int | None = None, records: bool = False) -> dict[str, Any]:
        out = {
            "kind": "profile",
            "model": self.model,
            "model_class": self.model_class,
            "inputs": [{"shape": shape, "dtype": dt} for shape, dt in self.inputs],
            "dtype": self.dtype,
            "mode": self.mode,
            "phase": self.phase,
            "kv_len": self.kv_len,
            "device": self.device,
            "convention": CONVENTION,
            "summary": self.summary(),
            "forward": self.phase_cost("forward").to_dict(),
            "backward": self.phase_cost("backward").to_dict() if self.mode == "training" else None,
            "weight_bytes": self.weight_bytes(),
            "memory": self.memory(),
            "coverage": self.coverage(),
            "by_op": [row.to_dict() for row in self.by_op()],
            "by_module": [row.to_dict() for row in self.by_module(depth)],
            "seconds": self.seconds,
        }
        if records:
            out["records"] = [r.to_dict() for r in self.records]
        return out
