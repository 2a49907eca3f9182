"""The op counter: a ``TorchDispatchMode`` that prices every aten op a traced model runs.

It sits above a ``FakeTensorMode`` (or runs on meta tensors), so ops execute on shapes only. For each call
it looks up the op's formula (:mod:`aicompute.profile.ops`), measures the bytes the call reads and writes
(parameters apart from activations), notes whether it runs in forward or backward and the innermost module
it belongs to, and hands every new storage to :class:`~aicompute.profile.memory.LiveMemory`.

Module attribution. In forward, :class:`ModuleStack` (global forward pre/post hooks, removed on exit)
gives the innermost running module. Every autograd node created in forward gets a sequence number, and
the op that creates node *n* is the first op to run while the autograd sequence counter reads *n + 1*;
the counter remembers that op's module for *n*. In backward, the node being executed
(``torch._C._current_autograd_node()``) names its sequence number, hence the forward module whose op
created it — exact even for a model's last layer, whose output gradient is the backward's seed. A module
forward inside backward (activation checkpointing recomputing) is attributed like a forward, in the
backward phase.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from aicompute.profile.memory import LiveMemory
from aicompute.profile.ops import (
    IGNORED,
    OpFormula,
    lookup,
    op_name,
    op_outputs,
    output_tensors,
    tensor_bytes,
    tensors_in,
)
from aicompute.profile.records import OpRecord

__all__ = ["OpCounter", "ModuleStack"]

_IGNORE, _COUNT = 0, 1
_RAISED_IN = "_aicompute_raised_in"
"""Attribute the module stack sets on an exception: the path of the innermost module it was raised in."""


class ModuleStack:
    """The paths (as in ``root.named_modules()``) of the modules whose forward is running, innermost last.

    A module the root does not reach by ``named_modules`` (built inside a forward) is not pushed: its ops
    belong to the enclosing known module.
    """

    def __init__(self, root: nn.Module) -> None:
        self._paths = {id(m): path for path, m in root.named_modules()}
        self.stack: list[str] = [""]
        self._handling: list[BaseException | None] = []  # per stack entry, the exception handled at its push
        self.outputs: dict[str, int] = {}
        """Path → bytes of the tensors its forward returned, over all its calls."""
        self._handles: list[Any] = []

    @property
    def current(self) -> str:
        return self.stack[-1]

    def _push(self, module: nn.Module, args: Any) -> None:
        path = self._paths.get(id(module))
        if path is not None and path != "":
            self.stack.append(path)
            self._handling.append(sys.exc_info()[1])  # an exception being handled around this call, if any

    def _pop(self, module: nn.Module, args: Any, output: Any) -> None:
        path = self._paths.get(id(module))
        if path is not None and path != "" and self.stack[-1] == path:
            error, handled = sys.exc_info()[1], self._handling.pop()
            if error is not None and error is not handled:  # the forward raised: torch runs this hook in its except
                if not hasattr(error, _RAISED_IN):
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(error, _RAISED_IN, path)  # the innermost module the error left first
            elif torch._C._current_autograd_node() is None:  # returned, and not a checkpoint's recomputation
                self.add_output(path, output)
            self.stack.pop()

    def add_output(self, path: str, output: Any) -> None:
        """Count the bytes of the tensors in ``output`` (nested tuples, lists, dicts) as ``path``'s output."""
        self.outputs[path] = self.outputs.get(path, 0) + sum(tensor_bytes(t) for t in output_tensors(output))

    def where(self, error: BaseException) -> str:
        """Path of the innermost module that ``error`` was raised in (``""``: the model itself). The path
        is kept on the exception itself: holding exceptions here would keep their frames' tensors alive."""
        return getattr(error, _RAISED_IN, self.current)

    def __enter__(self) -> ModuleStack:
        self._handles = [
            nn.modules.module.register_module_forward_pre_hook(self._push),
            # always_call: a forward that raises still pops (non-reentrant checkpointing stops its
            # recomputation by raising once it has the tensors it needs)
            nn.modules.module.register_module_forward_hook(self._pop, always_call=True),
        ]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class OpCounter(TorchDispatchMode):
    """Records an :class:`OpRecord` per priced op call; counts ignored calls by name.

    ``weights`` are the parameter tensors the traced model uses (their storages mark weight reads);
    ``state`` are all tensors that are model state (parameters and buffers), kept out of activation
    memory. ``modules`` tells which module is running in forward.
    """

    def __init__(self, weights: list[torch.Tensor], state: list[torch.Tensor], modules: ModuleStack) -> None:
        super().__init__()
        self.records: list[OpRecord] = []
        self.ignored: Counter[str] = Counter()
        self.memory = LiveMemory()
        self.memory.exclude(state)
        self._weights = {id(w.untyped_storage()) for w in weights}
        self._keep = list(state)  # keeps the storage ids above valid while tracing
        self._modules = modules
        self._node_module: dict[int, str] = {}
        self._plan: dict[Any, tuple[int, str, OpFormula | None]] = {}
        self._recording = True

    @property
    def module_outputs(self) -> dict[str, int]:
        """Path → bytes of the tensors its forward returned (``ModuleStack.outputs``)."""
        return self._modules.outputs

    def current_module(self) -> tuple[str, str]:
        """(path of the module running now — ``""`` outside any submodule —, ``"forward"``/``"backward"``).

        A module forward running inside backward is activation checkpointing's recomputation: its ops
        belong to that module (and to the backward phase, where they run), and so do the autograd nodes
        they create, which a reentrant checkpoint then runs backward through.
        """
        module = self._modules.current
        node = torch._C._current_autograd_node()
        if node is not None and module == "":
            return self._node_module.get(node._sequence_nr(), ""), "backward"
        self._node_module.setdefault(torch._C._autograd._get_sequence_nr() - 1, module)
        return module, "forward" if node is None else "backward"

    def _plan_for(self, func: Any) -> tuple[int, str, OpFormula | None]:
        plan = self._plan.get(func)
        if plan is None:
            name = op_name(func)
            ignore = name in IGNORED or getattr(func, "namespace", "") == "prim"
            plan = (_IGNORE if ignore else _COUNT, name, None if ignore else lookup(func))
            self._plan[func] = plan
        return plan

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Ops in this block are not the model's (the backward's seed gradients): tracked in memory only."""
        self._recording = False
        try:
            yield
        finally:
            self._recording = True

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self._recording:
            self.memory.track(out)
            return out
        action, name, formula = self._plan_for(func)
        module, phase = self.current_module()
        if action == _IGNORE:
            self.ignored[name] += 1
            if name.startswith("aten.empty") or name.startswith("aten.new_empty"):
                self.memory.track(out)
            return out
        self.memory.track(out)
        self.records.append(self._record(name, formula, module, phase, args, kwargs, out))
        return out

    def _record(self, name: str, formula: OpFormula | None, module: str, phase: str, args: tuple, kwargs: dict,
                out: Any) -> OpRecord:
        inputs = tensors_in(list(args) + list(kwargs.values()))
        outputs = op_outputs(out)
        if formula is not None and formula.traffic is not None:
            reads, written = formula.traffic(args, kwargs, out)
        else:
            reads, written = [(t, tensor_bytes(t)) for t in inputs], sum(tensor_bytes(t) for t in outputs)
        act_read = weight_read = 0
        for t, nbytes in reads:
            if id(t.untyped_storage()) in self._weights:
                weight_read += nbytes
            else:
                act_read += nbytes
        dtype = next((t.dtype for t in inputs if t.is_floating_point()), None)
        if dtype is None:
            dtype = outputs[0].dtype if outputs else torch.float32
        if formula is None:
            category, macs, flops = "uncounted", 0, None
        else:
            category = formula.category
            macs, flops = formula.cost(args, kwargs, out)
        return OpRecord(
            op=name,
            module=module,
            phase=phase,
            category=category,
            dtype=str(dtype).removeprefix("torch."),
            macs=macs,
            flops=flops,
            act_read=act_read,
            weight_read=weight_read,
            written=written,
        )
