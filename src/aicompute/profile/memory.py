"""Memory: live activation bytes measured while tracing, and the model-state model for training.

**Measured.** :class:`LiveMemory` watches every storage the traced ops create. A storage counts from the
op that creates it until the last tensor (or view) on it is freed; a weak-reference callback on the
storage object fires at that moment, so the figure follows Python's own lifetimes — what autograd saves
for backward stays live, what a ``no_grad`` forward drops is freed at once. Parameters and buffers are
model state, not activations, and are not counted. In backward, a gradient counts as an activation until
autograd accumulates it into its parameter's ``.grad``, and as a gradient from then on; the peak of both
together, on top of the parameters and optimizer state, is the step's peak.

**Modelled.** Training also holds gradients and optimizer state per trainable parameter (Ψ of them).
With mixed precision (``bfloat16``/``float16`` weights) the optimizer keeps fp32 master weights and fp32
states, as in the ZeRO paper's accounting (2Ψ + 2Ψ + KΨ bytes for Adam, K = 12):

=================  =====================  ==========================================
optimizer          states per parameter   bytes per parameter (fp32 | mixed)
=================  =====================  ==========================================
``sgd``            none                   0 | 4 (master copy)
``momentum``       momentum buffer        4 | 8
``adam``/``adamw`` first + second moment  8 | 12
=================  =====================  ==========================================
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from aicompute.checks import did_you_mean
from aicompute.errors import AicomputeError

__all__ = ["LiveMemory", "OPTIMIZERS", "ModelStates", "model_states"]

OPTIMIZERS: dict[str, int] = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
"""Optimizer → number of per-parameter state tensors."""
MIXED_DTYPES = (torch.bfloat16, torch.float16)


class LiveMemory:
    """Bytes of the storages created while tracing that are still alive, and their peaks.

    A storage that becomes a parameter's ``.grad`` (reported by :meth:`as_gradient`, from a post-accumulate
    hook) moves from the activations to the gradients: ``peak_activation`` is the peak of everything else
    (inputs, activations, incoming gradients and temporaries), ``peak`` the peak of all of it together, which
    is what a training step holds on top of its parameters and optimizer state when gradients start at
    ``None`` (``zero_grad(set_to_none=True)``, PyTorch's default).
    """

    def __init__(self) -> None:
        self._excluded: set[int] = set()
        self._sizes: dict[int, int] = {}  # storage id → bytes, for every tracked storage still alive
        self._grads: set[int] = set()
        self.live = 0
        self.peak = 0
        self.grads = 0
        self.peak_activation = 0

    def exclude(self, tensors: Iterable[torch.Tensor]) -> None:
        """Never count these tensors' storages (parameters and buffers)."""
        for t in tensors:
            self._excluded.add(id(t.untyped_storage()))

    def track(self, value: Any) -> None:
        """Count the storage of every tensor in ``value`` (a tensor or a tuple/list of them) once."""
        if isinstance(value, torch.Tensor):
            self._track(value)
        elif isinstance(value, (tuple, list)):
            for v in value:
                if isinstance(v, torch.Tensor):
                    self._track(v)

    def as_gradient(self, grad: torch.Tensor) -> None:
        """``grad``'s storage is now a parameter's gradient: count it under the gradients from here on."""
        key = id(grad.untyped_storage())
        if key in self._sizes and key not in self._grads:
            self._grads.add(key)
            self.grads += self._sizes[key]

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = id(storage)  # stable while the storage lives: its Python object is kept with it
        if key in self._sizes or key in self._excluded:
            return
        nbytes = storage.nbytes()
        self._sizes[key] = nbytes
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        self.peak_activation = max(self.peak_activation, self.live - self.grads)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        nbytes = self._sizes.pop(key)
        if key in self._grads:
            self._grads.discard(key)
            self.grads -= nbytes
        self.live -= nbytes


@dataclass(frozen=True)
class ModelStates:
    """Bytes of the training state per rank without sharding."""

    params: int
    grads: int
    optimizer: int
    """Optimizer states plus, with mixed precision, the fp32 master weights."""
    optimizer_name: str
    mixed_precision: bool

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer

    def to_dict(self) -> dict[str, Any]:
        return {
            "params_bytes": self.params,
            "grads_bytes": self.grads,
            "optimizer_state_bytes": self.optimizer,
            "model_state_bytes": self.total,
            "optimizer": self.optimizer_name,
            "mixed_precision": self.mixed_precision,
        }


def check_optimizer(name: str) -> str:
    key = name.lower()
    if key not in OPTIMIZERS:
        raise AicomputeError(
            f"unknown optimizer {name!r}{did_you_mean(name, OPTIMIZERS)}; choose one of {', '.join(OPTIMIZERS)}"
        )
    return key


def model_states(params: Iterable[torch.Tensor], optimizer: str) -> ModelStates:
    """Parameters, gradients and optimizer state of ``params`` (as they will be trained) under ``optimizer``."""
    name = check_optimizer(optimizer)
    param_bytes = grad_bytes = opt_bytes = 0
    mixed = False
    for p in params:
        nbytes = p.numel() * p.element_size()
        param_bytes += nbytes
        if not p.requires_grad:
            continue
        grad_bytes += nbytes
        is_mixed = p.dtype in MIXED_DTYPES
        mixed |= is_mixed
        state_size = 4 if is_mixed else p.element_size()  # mixed precision keeps fp32 states
        opt_bytes += p.numel() * (OPTIMIZERS[name] * state_size + (4 if is_mixed else 0))
    return ModelStates(param_bytes, grad_bytes, opt_bytes, name, mixed)
