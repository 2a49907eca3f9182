"""DDP gradient compression as comm hooks: torch's fp16 / bf16 / PowerSGD, and our top-k with error feedback.

``CommHook(name, ...)`` is the state of one DDP communication hook. ``hook.register(ddp_model)`` installs it
with ``DistributedDataParallel.register_comm_hook``; from then on DDP hands it every gradient bucket (a flat
fp32 tensor holding the gradients of some parameters back to back) and the hook returns a
``torch.futures.Future`` of the averaged bucket, while counting what it put on the wire.

* ``none`` — torch's ``allreduce_hook``: the bucket all-reduced as it is.
* ``fp16`` / ``bf16`` — torch's ``fp16_compress_hook`` / ``bf16_compress_hook``: cast to 16 bits for the
  all-reduce, back to fp32 after. Half the bytes; the sum is rounded to 16 bits.
* ``powersgd`` — torch's ``powerSGD_hook`` (Vogels et al., 2019) with error feedback and warm start: each
  gradient viewed as an ``n × m`` matrix ``M`` (``tensor.view(shape[0], -1)``) is approximated by ``P Qᵀ``
  with ``P = M Q`` (``n × r``) and ``Q = Mᵀ P`` (``m × r``), and only ``P`` and ``Q`` are all-reduced; torch
  compresses a matrix only when ``(n + m)·r·min_compression_rate < n·m``, so biases (``m = 1``) and small
  matrices go through a plain all-reduce beside them. For its first ``powersgd_start_iter`` iterations the
  hook runs a vanilla all-reduce of the whole bucket: its memories are keyed by bucket index and DDP
  rebuilds its buckets after the first iteration, so torch refuses a start below 2 with error feedback.
* ``topk`` — ours, top-k sparsification with error feedback (Stich et al., 2018; Lin et al., 2018). For each
  bucket of ``n`` elements, on every rank::

      a   = g + e                          add what was left behind last time (error feedback)
      S   = the k = ceil(ratio·n) indices of the largest |a_i|
      send (a_S, S);  e ← a with a_S := 0   the rest stays behind for a later step
      all-gather every rank's (values, indices), sum the p sparse vectors into a dense one, divide by p

  Nothing is dropped, only delayed: on every rank ``Σ_t sent_t + e_T = Σ_t g_t`` (up to the rounding of the
  additions). With ``ratio = 1`` nothing stays behind and the result is the plain all-reduce average. The
  residual ``e`` is kept **per parameter**, not per bucket index: DDP rebuilds its buckets after the first
  iteration (ordered as gradients became ready in backward), so "bucket 0" holds its parameters in another
  order from step 1 on. Per-parameter residuals survive that, and top-k compresses from the first step.

**Bytes** (this rank, whole run). ``payload_bytes`` is what the hook handed to collectives, in wire format:
per bucket of ``n`` fp32 elements ``4n`` (none), ``2n`` (fp16, bf16), ``k·(4 + 4)`` (topk: fp32 values and
int32 indices), and for powersgd ``4n`` during its vanilla iterations, then
``4·(Σ (n_i + m_i)·r_i over compressed matrices + Σ numel over the rest)`` with ``r_i = min(n_i, m_i, rank)``
(``powersgd_payload_elements``). ``sent_bytes`` applies the ring model to it, since the backend's
collectives are opaque: an all-reduce of ``V`` bytes sends ``2(p-1)/p·V`` per rank (reduce-scatter then
all-gather); an all-gather of ``V`` bytes from each rank sends ``(p-1)·V`` (each piece reaches the ``p - 1``
others). So top-k's traffic grows with ``p`` where the all-reduce's does not: it sends fewer bytes than
``none`` only while ``8k·(p-1) < 8n·(p-1)/p``, i.e. ``ratio < 1/p``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from aicompute.checks import did_you_mean, positive_int, positive_number, seed_value
from aicompute.errors import AicomputeError

__all__ = ["HOOKS", "CommHook", "topk_select", "topk_decompress", "powersgd_payload_elements"]

HOOKS = {
    "none": "plain all-reduce of each fp32 bucket (torch's allreduce_hook)",
    "fp16": "all-reduce in fp16, half the bytes (torch's fp16_compress_hook)",
    "bf16": "all-reduce in bf16, half the bytes (torch's bf16_compress_hook)",
    "powersgd": "rank-r PowerSGD, error feedback: all-reduce P (n×r), Q (m×r) per matrix (torch's powerSGD_hook)",
    "topk": "top-k sparsification with error feedback: all-gather k (value, index) pairs per rank (ours)",
}
"""DDP comm hook name → what it does, in one line."""

_WIRE_DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16}
"""The dtype the 16-bit hooks all-reduce in; ``none`` sends the bucket's own dtype."""

_INDEX_DTYPE = torch.int32
"""Top-k indices on the wire: a bucket holds far fewer than 2³¹ elements."""

_COUNTERS = ("calls", "steps", "grad_bytes", "allreduce_payload_bytes", "allgather_payload_bytes")


def topk_select(tensor: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` entries of a 1-D ``tensor`` largest in magnitude: ``(values, indices)``, indices int32,
    ``values == tensor[indices]``. Ties are broken as ``torch.topk`` breaks them."""
    _, indices = torch.topk(tensor.abs(), k, sorted=False)
    return tensor[indices], indices.to(_INDEX_DTYPE)


def topk_decompress(values: torch.Tensor, indices: torch.Tensor, numel: int, *,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """The average of ``p`` sparse vectors of length ``numel``: row ``r`` of ``values`` / ``indices``
    (both ``(p, k)``) is rank ``r``'s pairs. Ranks are added in order (deterministic); a rank's own indices
    are distinct, two ranks' may coincide and then add. Written into ``out`` when given."""
    p = values.shape[0]
    dense = values.new_zeros(numel) if out is None else out.zero_()  # (numel,)
    for r in range(p):
        dense.index_add_(0, indices[r].long(), values[r])
    return dense.div_(p)


def powersgd_payload_elements(shapes: Iterable[Sequence[int]], rank: int, min_compression_rate: float = 2.0) -> int:
    """Elements torch's ``powerSGD_hook`` all-reduces for one bucket of gradients of these ``shapes``, once
    compression has started: ``(n + m)·r`` for each matrix it compresses (``P`` and ``Q``), ``numel`` for
    every other tensor. Mirrors ``powerSGD_hook``: each gradient is viewed as ``(shape[0], -1)``,
    ``r = min(n, m, rank)``, compressed iff ``(n + m)·r·min_compression_rate < n·m``."""
    total = 0
    for shape in shapes:
        n = shape[0] if len(shape) else 1
        m = math.prod(shape[1:]) if len(shape) > 1 else 1
        r = min(n, m, rank)
        total += (n + m) * r if (n + m) * r * min_compression_rate < n * m else n * m
    return total


class CommHook:
    """The state of one DDP comm hook ``name`` (a key of ``HOOKS``) and its byte counts (module docstring).

    ``topk_ratio`` (in (0, 1]) is the fraction of each bucket's elements top-k sends; ``powersgd_rank`` the
    rank ``r`` of PowerSGD's approximation; ``powersgd_start_iter`` (≥ 2, torch's minimum with error
    feedback) how many iterations PowerSGD all-reduces uncompressed first; ``min_compression_rate`` and
    ``seed`` go to torch's ``PowerSGDState`` as they are.

    Counters (this rank, over the run): ``payload_bytes`` and ``sent_bytes`` (module docstring), ``calls``
    (buckets handled), ``steps`` (iterations: DDP marks each one's final bucket ``is_last()``),
    ``grad_bytes`` (bytes of the gradient buckets handed in, before compression).
    """

    def __init__(self, name: str, *, topk_ratio: float = 0.01, powersgd_rank: int = 1, powersgd_start_iter: int = 2,
                 min_compression_rate: float = 2.0, seed: int = 0):
        if name not in HOOKS:
            raise AicomputeError(f"unknown comm hook {name!r}{did_you_mean(name, HOOKS)}; use one of {list(HOOKS)}")
        if isinstance(topk_ratio, bool) or not isinstance(topk_ratio, (int, float)) or not 0 < topk_ratio <= 1:
            raise AicomputeError(f"topk_ratio is the fraction of each bucket top-k sends and must be in (0, 1], "
                                 f"e.g. 0.01; got {topk_ratio!r}")
        positive_int("powersgd_rank", powersgd_rank)
        if isinstance(powersgd_start_iter, bool) or not isinstance(powersgd_start_iter, int) or powersgd_start_iter < 2:
            raise AicomputeError(f"powersgd_start_iter must be an integer ≥ 2 (torch's PowerSGD needs two vanilla "
                                 f"iterations while DDP rebuilds its buckets), got {powersgd_start_iter!r}")
        positive_number("min_compression_rate", min_compression_rate)
        self.name = name
        self.topk_ratio = float(topk_ratio)
        self.powersgd_rank = powersgd_rank
        self.powersgd_start_iter = powersgd_start_iter
        self.min_compression_rate = float(min_compression_rate)
        self.seed = seed_value(seed)
        self.world_size = 1
        self.group: dist.ProcessGroup | None = None
        self.powersgd_state: Any = None  # torch's PowerSGDState once registered with "powersgd"
        self.residuals: dict[nn.Parameter, torch.Tensor] = {}  # top-k's error feedback, per parameter
        self._params: list[nn.Parameter] = []  # the DDP model's, in order (state_dict keys by position)
        self.calls = self.steps = self.grad_bytes = 0
        self.allreduce_payload_bytes = 0  # handed to all-reduces
        self.allgather_payload_bytes = 0  # handed to all-gathers (this rank's piece)

    @property
    def payload_bytes(self) -> int:
        return self.allreduce_payload_bytes + self.allgather_payload_bytes

    @property
    def sent_bytes(self) -> int:
        p = self.world_size
        return round(2 * (p - 1) / p * self.allreduce_payload_bytes) + (p - 1) * self.allgather_payload_bytes

    @property
    def compression_ratio(self) -> float:
        """Gradient bytes handed in per byte handed to the wire (1 for ``none``, 2 for fp16); 0 before any call."""
        return self.grad_bytes / self.payload_bytes if self.payload_bytes else 0.0

    def register(self, ddp_model: nn.Module) -> None:
        """Install this hook on ``ddp_model`` (a ``DistributedDataParallel``), once."""
        from torch.nn.parallel import DistributedDataParallel

        if not isinstance(ddp_model, DistributedDataParallel):
            raise AicomputeError(f"a comm hook goes on a DistributedDataParallel model, got "
                                 f"{type(ddp_model).__name__}; wrap it first: DistributedDataParallel(model)")
        if self.group is not None:
            raise AicomputeError(f"comm hook {self.name!r} is already registered; make one CommHook per DDP model")
        self.group = ddp_model.process_group
        self._params = list(ddp_model.module.parameters())
        self.world_size = self.group.size()
        if self.name == "powersgd":
            from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import PowerSGDState

            self.powersgd_state = PowerSGDState(self.group, matrix_approximation_rank=self.powersgd_rank,
                                                start_powerSGD_iter=self.powersgd_start_iter,
                                                min_compression_rate=self.min_compression_rate, random_seed=self.seed)
        ddp_model.register_comm_hook(self, _comm_hook)

    def counters(self) -> dict[str, int]:
        """The byte and call counters, plain ints: what a checkpoint saves so a resumed run counts on."""
        return {key: getattr(self, key) for key in _COUNTERS}

    def load_counters(self, counters: dict[str, int]) -> None:
        for key in _COUNTERS:
            setattr(self, key, int(counters[key]))

    def state_dict(self) -> dict[str, Any]:
        """Top-k's error-feedback state, ``{"residuals": {i: tensor}}`` with ``i`` the parameter's position in
        ``ddp_model.module.parameters()``: what a resumed run needs to continue as an uninterrupted one.
        PowerSGD's own state (torch's ``PowerSGDState``) is not included: a PowerSGD run is not resumable."""
        position = {param: i for i, param in enumerate(self._params)}
        return {"residuals": {position[param]: r.clone() for param, r in self.residuals.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s residuals (after ``register``: they attach to the model's parameters)."""
        if self.group is None:
            raise AicomputeError("register the comm hook on its DDP model before loading its state")
        self.residuals = {self._params[int(i)]: r.clone() for i, r in state["residuals"].items()}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "comm-hook", "name": self.name, "topk_ratio": self.topk_ratio,
                "powersgd_rank": self.powersgd_rank, "powersgd_start_iter": self.powersgd_start_iter,
                "world_size": self.world_size, "calls": self.calls, "steps": self.steps, "grad_bytes": self.grad_bytes,
                "payload_bytes": self.payload_bytes, "sent_bytes": self.sent_bytes,
                "compression_ratio": self.compression_ratio}

    # -- per bucket ---------------------------------------------------------------------------------------

    def communicate(self, bucket: dist.GradBucket) -> torch.futures.Future:
        """Average one bucket over the ranks with this hook's method, counting its bytes."""
        buffer = bucket.buffer()  # (n,) this rank's gradients of bucket.parameters(), back to back
        self.calls += 1
        self.steps += int(bucket.is_last())
        self.grad_bytes += buffer.numel() * buffer.element_size()
        if self.name == "topk":
            return self._topk(bucket)
        if self.name == "powersgd":
            from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import powerSGD_hook

            state = self.powersgd_state
            if state.iter < state.start_powerSGD_iter:  # torch all-reduces the bucket as it is
                elements = buffer.numel()
            else:
                shapes = [g.shape for g in bucket.gradients()]
                elements = powersgd_payload_elements(shapes, state.matrix_approximation_rank,
                                                     state.min_compression_rate)
            self.allreduce_payload_bytes += elements * buffer.element_size()
            return powerSGD_hook(state, bucket)
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        wire = _WIRE_DTYPE.get(self.name, buffer.dtype)
        self.allreduce_payload_bytes += buffer.numel() * wire.itemsize
        inner = {"none": default_hooks.allreduce_hook, "fp16": default_hooks.fp16_compress_hook,
                 "bf16": default_hooks.bf16_compress_hook}[self.name]
        return inner(self.group, bucket)

    def select(self, bucket: dist.GradBucket) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k's error feedback on one bucket: add each parameter's residual to its gradient (in the
        bucket), take the top ``k`` of the bucket, keep the rest as the parameters' new residuals. Returns
        ``(values, indices)``, what this rank sends; the bucket is left holding the residual."""
        buffer = bucket.buffer()  # (n,)
        pairs = list(zip(bucket.parameters(), bucket.gradients()))  # gradients() are views into buffer
        for param, grad in pairs:
            residual = self.residuals.get(param)
            if residual is not None:
                grad.add_(residual)
        k = math.ceil(self.topk_ratio * buffer.numel())
        values, indices = topk_select(buffer, k)
        buffer[indices.long()] = 0
        for param, grad in pairs:
            self.residuals[param] = grad.detach().clone()
        return values, indices

    def _topk(self, bucket: dist.GradBucket) -> torch.futures.Future:
        values, indices = self.select(bucket)  # (k,), (k,)
        p, k, buffer = self.world_size, values.numel(), bucket.buffer()
        all_values = values.new_empty(p * k)  # (p·k,) rank r's pairs at [r·k, (r+1)·k)
        all_indices = indices.new_empty(p * k)
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # its older name
        works = [gather(all_values, values, group=self.group, async_op=True),
                 gather(all_indices, indices, group=self.group, async_op=True)]
        self.allgather_payload_bytes += k * (values.element_size() + indices.element_size())

        def decompress(both: torch.futures.Future) -> torch.Tensor:
            for fut in both.value():
                fut.wait()  # re-raises a failed gather
            return topk_decompress(all_values.view(p, k), all_indices.view(p, k), buffer.numel(), out=buffer)

        return torch.futures.collect_all([w.get_future() for w in works]).then(decompress)


def _comm_hook(state, bucket):  # no annotations: DDP inspects them, and this module's would be strings
    """``fn(state, bucket) -> Future[Tensor]``, the form ``register_comm_hook`` takes."""
    return state.communicate(bucket)
