"""How the data-parallel ranks stay in step, one mode at a time: the pieces ``data_parallel`` trains with.

* ``wrap`` — ``ddp``: torch's ``DistributedDataParallel`` with a comm hook
  (``aicompute.parallel.compression.CommHook``: plain, fp16 / bf16, PowerSGD or top-k, each counting its
  bytes); ``fsdp``: FSDP2 ``fully_shard`` on every parametrised leaf module, then on the root; ``ps`` and
  ``local-sgd``: the plain module (they synchronise by hand, below).
* ``ps_step`` — parameter server: gradients to rank 0 (``ps_reduce_``), averaged; rank 0 steps the only
  optimizer; the parameters go back to everyone (``ps_broadcast_``). Counted message by message.
* ``average_parameters`` — local SGD's sync: the ring all-reduce (our own, on P2P) of the flat parameters.
* ``SyncState`` — what a rank has sent so far and the hook's error feedback, as a checkpoint saves it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from aicompute.parallel.collectives import CommStats, ps_broadcast_, ps_reduce_, ring_all_reduce_
from aicompute.parallel.compression import CommHook

__all__ = ["wrap", "ps_step", "average_parameters", "SyncState"]


def wrap(model: nn.Module, mode: str, device: torch.device, hook: CommHook | None = None) -> nn.Module:
    """``model`` moved to ``device`` and made ready for ``mode``; ``hook`` (``ddp`` only) is registered on the
    DDP wrapper (none: DDP's own all-reduce, uncounted)."""
    model.to(device)
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if hook is not None:
            hook.register(ddp)
        return ddp
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for module in model.modules():  # one FSDP unit per parametrised leaf, then the root for the rest
            if module is not model and any(True for _ in module.parameters(recurse=False)) \
                    and not any(True for _ in module.children()):
                fully_shard(module)
        fully_shard(model)
    return model


def ps_step(model: nn.Module, opt: torch.optim.Optimizer | None, rank: int, stats: CommStats) -> None:
    """Gradients to the server (rank 0), averaged there; the server steps; parameters back to everyone."""
    params = list(model.parameters())
    grads = parameters_to_vector([q.grad for q in params])  # (Ψ,) one message per worker
    ps_reduce_(grads, server=0, op="avg", stats=stats)
    if rank == 0:
        vector_to_parameters(grads, [q.grad for q in params])
        opt.step()
    flat = parameters_to_vector(params).detach()
    ps_broadcast_(flat, server=0, stats=stats)
    with torch.no_grad():
        vector_to_parameters(flat, params)


@torch.no_grad()
def average_parameters(model: nn.Module, stats: CommStats) -> None:
    """Every rank's parameters replaced by their mean over the ranks (ring all-reduce of the flat vector)."""
    params = list(model.parameters())
    flat = parameters_to_vector(params)  # (Ψ,)
    ring_all_reduce_(flat, op="avg", stats=stats)
    vector_to_parameters(flat, params)


@dataclass
class SyncState:
    """This rank's synchronisation state beside the model: its traffic so far (``stats`` for the modes that
    send by hand, ``hook`` for DDP, ``syncs``) and the comm hook's error feedback (top-k's residuals of
    ``params``). ``state()`` is what a checkpoint saves, so a resumed run's record covers the whole run and a
    top-k run goes on as it would have; PowerSGD's state is not saved (a resumed run warms it up again)."""

    stats: CommStats
    hook: CommHook | None
    params: list[nn.Parameter]
    syncs: int = 0

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"stats": asdict(self.stats), "syncs": self.syncs}
        if self.hook is not None:
            state["hook"] = self.hook.counters()
        if self.hook is not None and self.hook.name == "topk":
            saved = self.hook.state_dict()["residuals"]  # {position in model.parameters(): residual}
            state["residuals"] = {i: saved.get(i, torch.zeros_like(q)) for i, q in enumerate(self.params)
                                  if q.requires_grad}
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for f in fields(CommStats):
            setattr(self.stats, f.name, state["stats"][f.name])
        self.syncs = state["syncs"]
        if self.hook is not None:
            self.hook.load_counters(state["hook"])
        if "residuals" in state:
            self.hook.load_state_dict({"residuals": state["residuals"]})
