"""The ZeRO memory model: per-rank bytes of model states under DDP and ZeRO stages 1, 2 and 3.

Model states are the parameters, their gradients and the optimizer's states. With ``Ψ`` parameters,
``N_d`` data-parallel ranks and mixed-precision Adam (the ZeRO paper's set-up) a rank holds

    parameters 2Ψ (fp16)  +  gradients 2Ψ (fp16)  +  optimizer states KΨ, K = 12
    (an fp32 master copy of the parameters, Adam's momentum and variance: 4 + 4 + 4 bytes per parameter)

* **DDP** (stage 0) replicates all three on every rank: ``(2 + 2 + K)Ψ``.
* **Stage 1** (P_os) shards the optimizer states over the ``N_d`` ranks: ``2Ψ + 2Ψ + KΨ/N_d``.
* **Stage 2** (P_os+g) also shards the gradients: ``2Ψ + (2 + K)Ψ/N_d``.
* **Stage 3** (P_os+g+p, what FSDP does) also shards the parameters: ``(2 + 2 + K)Ψ/N_d``.

The per-parameter byte counts are arguments (``param_bytes``, ``grad_bytes``, ``optimizer_bytes``) so that
other set-ups fit the same formulas: plain fp32 Adam is 4 + 4 + 8, fp32 SGD with momentum 4 + 4 + 4.
Activations, temporary buffers and fragmentation are not model states and are not counted. Bytes are
exact integers when ``Ψ`` divides evenly; sharding rounds up, as one rank must hold the odd element.

``model_state_bytes(module, optimizer)`` measures what a rank actually holds (local shards of DTensors
included), to set beside the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from aicompute.checks import positive_int
from aicompute.errors import AicomputeError

__all__ = ["ZERO_STAGES", "ZeroMemory", "zero_memory", "zero_table", "model_state_bytes", "MIXED_ADAM",
           "FP32_ADAM", "FP32_SGD_MOMENTUM"]

ZERO_STAGES = {0: "DDP (nothing sharded)", 1: "ZeRO-1 P_os (optimizer states)",
               2: "ZeRO-2 P_os+g (+ gradients)", 3: "ZeRO-3 P_os+g+p (+ parameters)"}
"""Stage number → what it shards. Stage 0 is plain data parallel (DDP)."""

MIXED_ADAM = (2, 2, 12)
"""Bytes per parameter (parameters, gradients, optimizer states) of mixed-precision Adam: the paper's K = 12."""
FP32_ADAM = (4, 4, 8)
"""fp32 Adam: fp32 parameters and gradients, momentum + variance in fp32 (no master copy)."""
FP32_SGD_MOMENTUM = (4, 4, 4)
"""fp32 SGD with momentum: one fp32 buffer per parameter."""


@dataclass(frozen=True)
class ZeroMemory:
    """Model-state bytes one rank holds under one ZeRO stage (``total`` = the three parts)."""

    stage: int
    num_params: int
    world_size: int
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int

    @property
    def total(self) -> int:
        return self.param_bytes + self.grad_bytes + self.optimizer_bytes

    @property
    def name(self) -> str:
        return ZERO_STAGES[self.stage]

    def to_dict(self) -> dict[str, object]:
        return {"kind": "zero-memory", **asdict(self), "name": self.name, "total_bytes": self.total}


def _shard(nbytes: int, world_size: int) -> int:
    return math.ceil(nbytes / world_size)


def zero_memory(num_params: int, world_size: int, stage: int, *, param_bytes: int = MIXED_ADAM[0],
                grad_bytes: int = MIXED_ADAM[1], optimizer_bytes: int = MIXED_ADAM[2]) -> ZeroMemory:
    """Per-rank model-state bytes of ``num_params`` parameters on ``world_size`` data-parallel ranks under
    ZeRO ``stage`` (0 = DDP, 1, 2, 3); the ``*_bytes`` arguments are bytes per parameter (default:
    mixed-precision Adam, 2 + 2 + 12)."""
    positive_int("num_params", num_params)
    positive_int("world_size", world_size)
    if stage not in ZERO_STAGES:
        raise AicomputeError(f"ZeRO stage must be one of {sorted(ZERO_STAGES)} (0 = DDP), got {stage!r}")
    for name, value in (("param_bytes", param_bytes), ("grad_bytes", grad_bytes),
                        ("optimizer_bytes", optimizer_bytes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise AicomputeError(f"{name} must be a non-negative whole number of bytes per parameter, got {value!r}")
    p, g, o = num_params * param_bytes, num_params * grad_bytes, num_params * optimizer_bytes
    if stage >= 1:
        o = _shard(o, world_size)
    if stage >= 2:
        g = _shard(g, world_size)
    if stage >= 3:
        p = _shard(p, world_size)
    return ZeroMemory(stage, num_params, world_size, p, g, o)


def zero_table(num_params: int, world_size: int, **bytes_per_param: int) -> list[ZeroMemory]:
    """``zero_memory`` for DDP and each of stages 1-3, in order (the ZeRO paper's Table 1 row)."""
    return [zero_memory(num_params, world_size, stage, **bytes_per_param) for stage in sorted(ZERO_STAGES)]


def _local_bytes(t: torch.Tensor) -> int:
    """Bytes this rank stores for ``t``: a DTensor's local shard, else the tensor itself."""
    local = t.to_local() if hasattr(t, "to_local") else t
    return local.numel() * local.element_size()


def model_state_bytes(module: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Measured model-state bytes on this rank: ``params``, ``grads`` (those allocated now) and ``optimizer``
    (every tensor in the optimizer's state, e.g. Adam's ``exp_avg`` / ``exp_avg_sq``; scalar ``step``
    counters included), and their ``total``. DTensor parameters (FSDP2) count their local shard only."""
    params = list(module.parameters())
    counted = {
        "params": sum(_local_bytes(p) for p in params),
        "grads": sum(_local_bytes(p.grad) for p in params if p.grad is not None),
        "optimizer": 0,
    }
    if optimizer is not None:
        counted["optimizer"] = sum(_local_bytes(v) for state in optimizer.state.values()
                                   for v in state.values() if isinstance(v, torch.Tensor))
    counted["total"] = counted["params"] + counted["grads"] + counted["optimizer"]
    return counted
