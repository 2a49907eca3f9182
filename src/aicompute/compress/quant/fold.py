"""Folding BatchNorm into the convolution before it, as every int8 deployment does before quantizing.

In eval mode ``BN(conv(x)) = γ·(W∗x + b − μ)/√(σ² + ε) + β``, which is one conv with weight
``W·γ/√(σ² + ε)`` (per output channel) and bias ``(b − μ)·γ/√(σ² + ε) + β``. A pair is folded when the conv
and the BN are consecutive in a plain ``nn.Sequential``, or when the parent's forward (traced one level deep
with ``torch.fx``) feeds the conv's output to that BN and nothing else. Modules registered in two places are
never folded, and a forward that ``fx`` cannot trace folds nothing at that level.
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import fx, nn

from aicompute.errors import AicomputeError
from aicompute.nn.shapes import check_image_batch

__all__ = ["conv_bn_pairs", "fold_batchnorm"]


_CONV_BN = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        type(bn) is _CONV_BN.get(type(conv))
        and bn.num_features == conv.out_channels
        and bn.running_mean is not None
        and bn.running_var is not None
    )


class _ChildrenTracer(fx.Tracer):
    """Traces one module's own forward: each child call is one node. The zoo's input check is kept opaque."""

    def __init__(self) -> None:
        super().__init__(autowrap_functions=(check_image_batch,))

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def _traced_pairs(parent: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) children of ``parent`` where its forward feeds the conv's output to the BN and nothing else."""
    try:
        graph = _ChildrenTracer().trace(parent)
    except Exception:  # noqa: BLE001 - fx cannot trace every forward (data-dependent control flow); nothing folds
        return []
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    read = {str(n.target).split(".")[0] for n in graph.nodes if n.op == "get_attr"}  # parameters used directly
    children = dict(parent.named_children())
    pairs = []
    for node in graph.nodes:
        src = node.args[0] if node.op == "call_module" and len(node.args) == 1 and not node.kwargs else None
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1):
            continue
        conv, bn = src.target, node.target
        if conv in children and bn in children and calls[conv] == calls[bn] == 1 and not {conv, bn} & read:
            if _foldable(children[conv], children[bn]):
                pairs.append((conv, bn))
    return pairs


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Names of the ``(conv, batchnorm)`` pairs :func:`fold_batchnorm` folds.

    A pair is a ``Conv1d/2d/3d`` whose output goes only into a ``BatchNorm1d/2d/3d`` of as many channels with
    running statistics, both children of one module: consecutive in an ``nn.Sequential`` (or a subclass that
    keeps its forward), or called in that order by the parent's forward, which is traced with ``torch.fx``
    (the parent only, children as opaque calls; a forward fx cannot trace folds nothing). Modules registered
    at two places are never folded.
    """
    registrations = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    pairs = []
    for name, parent in model.named_modules():
        children = list(parent.named_children())
        if not any(type(c) in _CONV_BN for _, c in children):
            continue
        if isinstance(parent, nn.Sequential) and type(parent).forward is nn.Sequential.forward:
            found = [(a, b) for (a, ma), (b, mb) in zip(children, children[1:]) if _foldable(ma, mb)]
        else:
            found = _traced_pairs(parent)
        prefix = f"{name}." if name else ""
        owned = dict(children)
        pairs += [
            (prefix + a, prefix + b)
            for a, b in found
            if registrations[id(owned[a])] == 1 and registrations[id(owned[b])] == 1
        ]
    return pairs


@torch.no_grad()
def _fold_into(conv: nn.Module, bn: nn.Module) -> None:
    """conv ← BN(conv) in eval: ``w' = w·γ/√(σ² + ε)``, ``b' = (b − μ)·γ/√(σ² + ε) + β`` (in float64)."""
    var, mean = bn.running_var.double(), bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    factor = gamma / torch.sqrt(var + bn.eps)  # (C_out,)
    weight = conv.weight.double() * factor.reshape(-1, *([1] * (conv.weight.dim() - 1)))  # (C_out, 1, ..., 1)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(mean)
    conv.weight.copy_(weight)
    new_bias = ((bias - mean) * factor + beta).to(conv.weight.dtype)
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias, requires_grad=conv.weight.requires_grad)
    else:
        conv.bias.copy_(new_bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each pair of :func:`conv_bn_pairs` folded into the conv and the BatchNorm
    replaced by ``nn.Identity``. Outputs equal the original's in eval mode (BN's running statistics); the
    copy keeps the model's train/eval flags, and ``model`` is left untouched."""
    if not isinstance(model, nn.Module):
        raise AicomputeError(f"fold_batchnorm takes an nn.Module, got {type(model).__name__}")
    folded = copy.deepcopy(model)
    for conv_name, bn_name in conv_bn_pairs(folded):
        _fold_into(folded.get_submodule(conv_name), folded.get_submodule(bn_name))
        folded.set_submodule(bn_name, nn.Identity())
    return folded
