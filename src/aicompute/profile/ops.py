"""The registry of per-op cost formulas, keyed by aten op packet (``aten.mm`` covers every overload).

Every aten op the tracer sees is in exactly one of three states:

* **counted** — a formula below gives its MACs and FLOPs (see the convention in
  :mod:`aicompute.profile.records`);
* **ignored on purpose** — :data:`IGNORED`: views and metadata ops that move no data and do no
  arithmetic (``view``, ``transpose``, ``expand``, ``detach``, ...), and allocations (``empty``) that
  reserve memory without touching it;
* **uncounted** — anything else. Its bytes are still recorded and it is reported by name; never a
  silent zero.

Vector-op FLOPs per element (a convention, not a measurement of any one kernel):

==========================  ==============================================================
elementwise                 1 per output element (add, mul, relu, gelu, exp, where, ...)
reduction                   1 per input element (sum, mean, amax, var: 2)
softmax / log_softmax       5 per element (max, subtract, exp, sum, divide); backward 4
layer / group / RMS norm    5 per element forward (mean, variance, normalize, affine); backward 8
batch norm                  eval 2 per element (folded scale and shift), train 5; backward 8
pooling                     max/avg: 1 per window element per output; adaptive avg: 1 per input
interpolation               1 per neighbour per output (linear 2, bilinear 4, trilinear 8, bicubic 16)
embedding                   0 (a gather); its backward 1 per gradient element (scatter-add)
index_add, scatter_add      1 per source (index) element; scatter with ``reduce`` too
loss                        1 per input element
==========================  ==============================================================

Bytes. By default a call reads every tensor argument whole (a broadcast dimension once) and writes its
outputs. An op that touches only part of a tensor has a ``traffic`` rule instead: a gather (embedding,
``index_select``) reads only the rows it returns, ``copy_`` does not read its destination, and an in-place
indexed write (``index_copy_``, ``index_put_``, ``scatter_``, ``index_add_``: a KV-cache update) reads and
writes only the indexed elements, not the whole destination.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["OpFormula", "REGISTRY", "IGNORED", "UNTRACED_TRAINING_MEMORY", "lookup", "op_name", "tensor_bytes", "tensors_in", "op_outputs", "output_tensors"]

aten = torch.ops.aten

Cost = Callable[[tuple, dict, Any], "tuple[int, int]"]
"""``cost(args, kwargs, out) -> (macs, flops)``."""
Traffic = Callable[[tuple, dict, Any], "tuple[list[tuple[torch.Tensor, int]], int]"]
"""``traffic(args, kwargs, out) -> ([(tensor read, bytes read from it), ...], bytes written)``."""


@dataclass(frozen=True, slots=True)
class OpFormula:
    category: str
    cost: Cost
    traffic: Traffic | None = None
    """The bytes a call moves when it is not every input read whole and every output written (module
    docstring); ``None`` for the default."""


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of the distinct elements a tensor addresses: a broadcast (stride-0) dimension counts once."""
    n = t.element_size()
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
        elif size == 0:
            return 0
    return n


def output_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in a model output: a tensor, or tuples, lists and dicts of them (nested)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in output_tensors(v)]
    return []


def op_outputs(out: Any) -> list[torch.Tensor]:
    """The tensors an op returned: one tensor, or those in its tuple or list."""
    return tensors_in(out if isinstance(out, (tuple, list)) else (out,))


def tensors_in(values: Any) -> list[torch.Tensor]:
    """Tensors among ``values`` and one level of lists inside them (``cat`` takes a list), each once."""
    found: dict[int, torch.Tensor] = {}
    for v in values:
        if isinstance(v, torch.Tensor):
            found[id(v)] = v
        elif isinstance(v, (list, tuple)):
            for w in v:
                if isinstance(w, torch.Tensor):
                    found[id(w)] = w
    return list(found.values())


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _first_tensor(values: Any) -> torch.Tensor | None:
    if isinstance(values, torch.Tensor):
        return values
    if isinstance(values, (tuple, list)):
        for v in values:
            if isinstance(v, torch.Tensor):
                return v
    return None


def _out_numel(out: Any) -> int:
    t = _first_tensor(out)
    return t.numel() if t is not None else 0


# ------------------------------------------------------------------------------------------- tensor ops


def _mm(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    a, b = args[0], args[1]  # (m, k) @ (k, n)
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    return macs, 2 * macs


def _addmm(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    return _mm(args[1:], kwargs, out)  # bias, (m, k), (k, n): the bias add is not counted


def _mv(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    a = args[0]  # (n, m) @ (m,)
    macs = a.shape[0] * a.shape[1]
    return macs, 2 * macs


def _addmv(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    return _mv(args[1:], kwargs, out)


def _dot(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    macs = args[0].numel()
    return macs, 2 * macs


def _trilinear(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    """``_trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim)`` (``nn.Bilinear``): each input is
    unsqueezed at its ``expand`` dims and the product ``i1·i2·i3`` is summed over ``sumdim``: one MAC per
    element of the broadcast shape (for ``Bilinear``: batch × out × in1 × in2)."""
    shapes = []
    for t, expand in zip(args[:3], args[3:6]):
        shape = list(t.shape)
        for d in sorted(expand):
            shape.insert(d, 1)
        shapes.append(shape)
    macs = _numel(torch.broadcast_shapes(*shapes))
    return macs, 2 * macs


def _bmm(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    a, b = args[0], args[1]  # (B, m, k) @ (B, k, n)
    macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return macs, 2 * macs


def _baddbmm(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    return _bmm(args[1:], kwargs, out)


def _conv_macs(x_shape: Sequence[int], w_shape: Sequence[int], out_shape: Sequence[int], transposed: bool) -> int:
    """Batch × (output positions, or input positions when transposed) × weight elements.

    The weight is ``(C_out, C_in / groups, *k)`` (``(C_in, C_out / groups, *k)`` when transposed), so
    grouped and depthwise convs need no special case: each output element sums ``C_in / groups × prod(k)``
    products.
    """
    positions = _numel((x_shape if transposed else out_shape)[2:])
    return x_shape[0] * positions * _numel(w_shape)


def _conv(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    """``convolution`` / ``_convolution`` / ``convolution_overrideable``: ``args[6]`` is ``transposed``."""
    x, w, transposed = args[0], args[1], bool(args[6])
    macs = _conv_macs(x.shape, w.shape, _first_tensor(out).shape, transposed)
    return macs, 2 * macs


def _backend_conv(transposed: bool) -> Cost:
    """cuDNN / MKL-DNN entry points (``(input, weight, ...)`` without a ``transposed`` argument)."""

    def cost(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        macs = _conv_macs(args[0].shape, args[1].shape, _first_tensor(out).shape, transposed)
        return macs, 2 * macs

    return cost


def _conv_backward(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    """grad_input is a (transposed) conv of grad_out with the weight, grad_weight a conv of the input with
    grad_out: each costs the forward's MACs; the bias gradient is a reduction (1 FLOP per element)."""
    grad_out, x, w, transposed, mask = args[0], args[1], args[2], bool(args[7]), args[10]
    forward = _conv_macs(x.shape, w.shape, grad_out.shape, transposed)
    macs = forward * (int(bool(mask[0])) + int(bool(mask[1])))
    bias = grad_out.numel() if mask[2] else 0
    return macs, 2 * macs + bias


def _attention_macs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int]:
    """(QKᵀ, PV) MACs and the score count for ``(B, H, S_q, D)`` queries over ``(B, H_kv, S_k, D)`` keys.

    A causal mask is not subtracted (as in FlopCounterMode): every kernel still pays for the diagonal
    blocks, and the convention keeps forward and backward comparable.
    """
    b, h, s_q, d = q.shape
    s_k, d_v = k.shape[-2], v.shape[-1]
    scores = b * h * s_q * s_k
    return scores * d + scores * d_v, scores


def _sdpa(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    macs, scores = _attention_macs(args[0], args[1], args[2])
    return macs, 2 * macs + 5 * scores  # + softmax over the scores


def _sdpa_backward(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    """Recompute QKᵀ, then dV = Pᵀ·dO, dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q: five score-sized matmuls."""
    q, k, v = args[1], args[2], args[3]  # args[0] is grad_out, shaped like the output
    _, scores = _attention_macs(q, k, v)
    macs = scores * (3 * q.shape[-1] + 2 * v.shape[-1])
    return macs, 2 * macs + 4 * scores  # + softmax backward


def _efficient_attention(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    """``_efficient_attention_forward`` / ``_flash_attention_forward`` take (B, S, H, D) layouts."""
    q, k, v = (t.transpose(1, 2) for t in args[:3])
    return _sdpa((q, k, v), kwargs, out)


def _efficient_attention_backward(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    grad_out, q, k, v = (t.transpose(1, 2) for t in args[:4])
    return _sdpa_backward((grad_out, q, k, v), kwargs, out)


def _rnn_layer(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    """A fused RNN/LSTM/GRU layer (oneDNN): every step multiplies the input by ``W_ih`` (G·H × F) and the
    hidden state by ``W_hh`` (G·H × H) for each sequence; the gate nonlinearities and state updates are
    counted as 4 FLOPs per gate element."""
    x, w_ih, w_hh = args[0], args[1], args[2]
    steps = x.shape[0] * x.shape[1]  # T·B (either layout)
    macs = steps * (w_ih.numel() + w_hh.numel())
    return macs, 2 * macs + 4 * steps * w_ih.shape[0]


def _rnn_layer_backward(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    """Input, hidden and weight gradients: twice the forward's MACs (dX·Wᵀ and Xᵀ·dG for both matrices).

    The fused kernel computes the input and initial-state gradients whether or not they are needed, so
    they are counted (an unfused cell-by-cell backward, which autograd prunes, does less)."""
    macs, flops = _rnn_layer(args, kwargs, out)
    return 2 * macs, 2 * flops


# ------------------------------------------------------------------------------------------- vector ops


def _per_output(k: int) -> Cost:
    def cost(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        return 0, k * _out_numel(out)

    return cost


def _per_input(k: int) -> Cost:
    def cost(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        first = _first_tensor(args)
        return 0, k * (first.numel() if first is not None else 0)

    return cost


def _zero(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    return 0, 0


def _batch_norm(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    """``(input, weight, bias, running_mean, running_var, training, ...)``: with running statistics the
    scale and shift fold into one multiply-add per element; with batch statistics 5 per element."""
    training = bool(args[5]) if len(args) > 5 else bool(kwargs.get("training", True))
    return 0, (5 if training else 2) * args[0].numel()


def _window(dims: int) -> Cost:
    """max/avg pooling over ``dims`` spatial dims: one op per window element per output element (aten's
    one-element kernel list ``[k]`` means ``k`` in every dim)."""

    def cost(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        kernel = args[1]
        kernel = [kernel] if isinstance(kernel, int) else list(kernel)
        if len(kernel) == 1:
            kernel = kernel * dims
        return 0, _out_numel(out) * _numel(kernel)

    return cost


def _window_backward(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    return 0, _out_numel(out)  # scatter each gradient back: one add per input-gradient element


def _index_add(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    return 0, args[3].numel()  # (self, dim, index, source): one add per source element


# ------------------------------------------------------------------------------------------- traffic


def _gather_traffic(args: tuple, kwargs: dict, out: Any) -> tuple[list[tuple[torch.Tensor, int]], int]:
    """embedding(weight, indices), index_select(self, dim, index), gather, index: the source is read only
    where the output comes from (the output's bytes); the indices whole."""
    written = sum(tensor_bytes(t) for t in op_outputs(out))
    inputs = tensors_in(list(args) + list(kwargs.values()))
    return [(t, written if i == 0 else tensor_bytes(t)) for i, t in enumerate(inputs)], written


def _copy_traffic(args: tuple, kwargs: dict, out: Any) -> tuple[list[tuple[torch.Tensor, int]], int]:
    dst, src = args[0], args[1]  # copy_(self, src): the destination is only written
    return [(src, tensor_bytes(src))], tensor_bytes(dst)


def _indexed_write(n: int, dst: torch.Tensor, reads: list[torch.Tensor], *, read_dst: bool
                   ) -> tuple[list[tuple[torch.Tensor, int]], int]:
    """An in-place write of ``n`` elements of ``dst``: ``reads`` whole, plus those elements when the op
    accumulates into them."""
    nbytes = n * dst.element_size()
    pairs = [(t, tensor_bytes(t)) for t in reads]
    if read_dst:
        pairs.append((dst, nbytes))
    return pairs, nbytes


def _index_copy_traffic(args: tuple, kwargs: dict, out: Any) -> tuple[list[tuple[torch.Tensor, int]], int]:
    dst, index, source = args[0], args[2], args[3]  # index_copy_(self, dim, index, source)
    return _indexed_write(source.numel(), dst, [index, source], read_dst=False)


def _index_add_traffic(args: tuple, kwargs: dict, out: Any) -> tuple[list[tuple[torch.Tensor, int]], int]:
    dst, index, source = args[0], args[2], args[3]  # index_add_(self, dim, index, source, alpha)
    return _indexed_write(source.numel(), dst, [index, source], read_dst=True)


def _reduces(args: tuple, kwargs: dict) -> bool:
    """scatter_(self, dim, index, src, reduce=...) combines with the destination instead of overwriting."""
    return (len(args) > 4 and args[4] is not None) or kwargs.get("reduce") is not None


def _scatter(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    return 0, args[2].numel() if _reduces(args, kwargs) else 0  # one add/multiply per index element


def _scatter_add(args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
    return 0, args[2].numel()


def _scatter_traffic(args: tuple, kwargs: dict, out: Any) -> tuple[list[tuple[torch.Tensor, int]], int]:
    """scatter_(self, dim, index, src|value[, reduce]) writes one element per index element, read from
    ``src``; with ``reduce`` (and for ``scatter_add_``) it reads that destination element first."""
    dst, index = args[0], args[2]
    n = index.numel()
    pairs, nbytes = _indexed_write(n, dst, [index], read_dst=_reduces(args, kwargs))
    src = args[3] if len(args) > 3 else kwargs.get("src")
    if isinstance(src, torch.Tensor):
        pairs.append((src, n * src.element_size()))
    return pairs, nbytes


def _scatter_add_traffic(args: tuple, kwargs: dict, out: Any) -> tuple[list[tuple[torch.Tensor, int]], int]:
    pairs, nbytes = _scatter_traffic(args, kwargs, out)
    return pairs + [(args[0], nbytes)], nbytes


def _index_put_traffic(args: tuple, kwargs: dict, out: Any) -> tuple[list[tuple[torch.Tensor, int]], int]:
    """index_put_(self, indices, values, accumulate): the indexed elements of ``self``. Integer indices
    broadcast together; a boolean mask selects at most its size (all of it is assumed: an upper bound,
    the true count depends on the data); dims not indexed are taken whole."""
    dst, indices, values = args[0], args[1], args[2]
    accumulate = bool(args[3]) if len(args) > 3 else bool(kwargs.get("accumulate", False))
    n, dim, shapes = 1, 0, []
    for index in indices:
        if index is None:
            n *= dst.shape[dim]
            dim += 1
        elif index.dtype in (torch.bool, torch.uint8):
            n *= index.numel()
            dim += index.dim()
        else:
            shapes.append(index.shape)
            dim += 1
    n *= _numel(torch.broadcast_shapes(*shapes)) * _numel(dst.shape[dim:])
    reads = [t for t in indices if t is not None] + [values]
    return _indexed_write(n, dst, reads, read_dst=accumulate)


ELEMENTWISE = (
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "abs", "reciprocal",
    "pow", "sqrt", "rsqrt", "exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "sigmoid", "erf",
    "relu", "relu_", "relu6", "gelu", "silu", "silu_", "mish", "elu", "leaky_relu", "hardtanh",
    "hardtanh_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "softplus", "clamp",
    "clamp_", "clamp_min", "clamp_max", "maximum", "minimum", "where", "masked_fill", "masked_fill_",
    "sign", "lerp", "addcmul", "addcdiv", "eq", "ne", "gt", "ge", "lt", "le", "logical_not",
    "logical_and", "logical_or", "threshold_backward", "gelu_backward", "silu_backward",
    "sigmoid_backward", "tanh_backward", "hardtanh_backward", "hardswish_backward",
    "hardsigmoid_backward", "leaky_relu_backward", "elu_backward", "softplus_backward", "mish_backward",
    "native_dropout", "native_dropout_backward", "bernoulli_", "bernoulli", "tril", "triu",
)
REDUCTION_1 = ("sum", "mean", "amax", "amin", "max", "min", "prod", "argmax", "argmin", "any", "all",
               "norm", "linalg_vector_norm", "logsumexp", "cumsum")
REDUCTION_2 = ("var", "std", "var_mean", "std_mean")
DATA_MOVEMENT = ("cat", "stack", "clone", "_to_copy", "constant_pad_nd", "repeat", "flip",
                 "roll", "index_copy", "index_put", "slice_scatter",
                 "select_scatter", "slice_backward", "select_backward",
                 "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_unsafe_index",
                 "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d",
                 "channel_shuffle", "pixel_shuffle", "pixel_unshuffle", "im2col", "col2im",
                 "_pdist_forward", "lift_fresh_copy")
CREATION = ("zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "new_zeros", "new_ones",
            "new_full", "arange", "scalar_tensor", "fill_", "fill", "zero_", "rand", "randn",
            "rand_like", "randn_like", "randint", "randperm", "eye", "linspace", "normal_", "uniform_")
GATHERS = ("embedding", "index_select", "gather", "index")

IGNORED: frozenset[str] = frozenset({
    # views and metadata: no bytes moved, no arithmetic
    "aten.view", "aten._unsafe_view", "aten.reshape", "aten._reshape_alias", "aten.t", "aten.transpose",
    "aten.permute", "aten.expand", "aten.unsqueeze", "aten.squeeze", "aten.slice", "aten.select",
    "aten.alias", "aten.detach", "aten.as_strided", "aten.unbind", "aten.split", "aten.split_with_sizes",
    "aten.unfold", "aten.diagonal", "aten.view_as_real", "aten.view_as_complex", "aten.lift_fresh",
    "aten._unsafe_split", "aten.unsafe_split", "aten.unsafe_split_with_sizes", "aten.unsafe_chunk",
    "aten.transpose_", "aten.t_", "aten.squeeze_", "aten.unsqueeze_", "aten.as_strided_", "aten.chunk", "aten.narrow", "aten.expand_as", "aten.view_as", "aten.flatten",
    "aten.unflatten", "aten.movedim", "aten.swapaxes", "aten.numpy_T", "aten.sym_size",
    "aten.sym_stride", "aten.sym_numel", "aten.sym_storage_offset", "aten.is_same_size",
    "aten.set_", "aten.resize_", "aten._local_scalar_dense", "aten.item",
    # allocations: reserve memory, touch nothing (their liveness is still tracked)
    "aten.empty", "aten.empty_like", "aten.empty_strided", "aten.new_empty", "aten.new_empty_strided",
})
"""Ops priced at zero on purpose, by packet name. Everything else is counted or reported uncounted."""

UNTRACED_TRAINING_MEMORY: dict[str, str] = {
    "aten.mkldnn_rnn_layer": "oneDNN's fused RNN keeps a workspace for its backward (its size is oneDNN's own "
                             "choice: 7.1 MB for a 32×28-step, 128-wide LSTM) that the meta kernel returns empty",
}
"""Ops whose real kernel, in training, holds memory that the traced (meta) kernel does not allocate: the
training memory of a model that runs them is an underestimate, and the result says so."""

REGISTRY: dict[str, OpFormula] = {}


def _register(category: str, cost: Cost, names: Sequence[str], *, traffic: Traffic | None = None) -> None:
    for name in names:
        REGISTRY[f"aten.{name}"] = OpFormula(category, cost, traffic)


_register("matmul", _mm, ["mm"])
_register("matmul", _addmm, ["addmm"])
_register("matmul", _mv, ["mv"])
_register("matmul", _addmv, ["addmv"])
_register("matmul", _dot, ["dot", "vdot"])
_register("matmul", _trilinear, ["_trilinear"])
_register("matmul", _bmm, ["bmm"])
_register("matmul", _baddbmm, ["baddbmm", "addbmm"])
_register("conv", _conv, ["convolution", "_convolution", "convolution_overrideable"])
_register("conv", _backend_conv(False), ["cudnn_convolution", "mkldnn_convolution"])
_register("conv", _backend_conv(True), ["cudnn_convolution_transpose"])
_register("conv", _conv_backward, ["convolution_backward"])
_register("attention", _sdpa, ["_scaled_dot_product_flash_attention_for_cpu",
                               "_scaled_dot_product_flash_attention",
                               "_scaled_dot_product_efficient_attention",
                               "_scaled_dot_product_cudnn_attention"])
_register("attention", _sdpa_backward, ["_scaled_dot_product_flash_attention_for_cpu_backward",
                                        "_scaled_dot_product_flash_attention_backward",
                                        "_scaled_dot_product_efficient_attention_backward",
                                        "_scaled_dot_product_cudnn_attention_backward"])
_register("attention", _efficient_attention, ["_efficient_attention_forward", "_flash_attention_forward"])
_register("attention", _efficient_attention_backward, ["_efficient_attention_backward",
                                                       "_flash_attention_backward"])
_register("matmul", _rnn_layer, ["mkldnn_rnn_layer"])
_register("matmul", _rnn_layer_backward, ["mkldnn_rnn_layer_backward"])
_register("elementwise", _per_output(1), ELEMENTWISE)
_register("reduction", _per_input(1), REDUCTION_1)
_register("reduction", _per_input(2), REDUCTION_2)
_register("softmax", _per_input(5), ["_softmax", "_log_softmax", "_safe_softmax"])
_register("softmax", _per_output(4), ["_softmax_backward_data", "_log_softmax_backward_data"])
_register("normalization", _per_input(5), ["native_layer_norm", "native_group_norm", "_fused_rms_norm"])
_register("normalization", _batch_norm, ["native_batch_norm", "_native_batch_norm_legit",
                                         "_native_batch_norm_legit_functional", "cudnn_batch_norm",
                                         "miopen_batch_norm"])
_register("normalization", _per_input(2), ["_native_batch_norm_legit_no_training"])
_register("normalization", _per_input(8), ["native_layer_norm_backward", "native_group_norm_backward",
                                           "_fused_rms_norm_backward", "native_batch_norm_backward",
                                           "cudnn_batch_norm_backward", "miopen_batch_norm_backward"])
_register("pooling", _window(1), ["max_pool1d", "avg_pool1d"])
_register("pooling", _window(2), ["max_pool2d_with_indices", "avg_pool2d", "max_pool2d"])
_register("pooling", _window(3), ["max_pool3d_with_indices", "avg_pool3d"])
_register("pooling", _window_backward, ["max_pool2d_with_indices_backward",
                                        "max_pool3d_with_indices_backward", "avg_pool2d_backward",
                                        "avg_pool3d_backward", "_adaptive_avg_pool2d_backward",
                                        "_adaptive_avg_pool3d_backward", "adaptive_max_pool2d_backward"])
_register("pooling", _per_input(1), ["_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_avg_pool1d",
                                     "adaptive_max_pool2d", "adaptive_max_pool1d"])
_register("embedding", _zero, GATHERS, traffic=_gather_traffic)
_register("embedding", _per_input(1), ["embedding_dense_backward"])
_register("embedding", _index_add, ["index_add"])
_register("embedding", _index_add, ["index_add_"], traffic=_index_add_traffic)
_register("loss", _per_input(1), ["nll_loss_forward", "nll_loss2d_forward", "mse_loss",
                                  "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                  "smooth_l1_loss", "l1_loss", "huber_loss", "kl_div"])
_register("loss", _per_output(1), ["nll_loss_backward", "nll_loss2d_backward", "mse_loss_backward",
                                   "binary_cross_entropy_backward", "smooth_l1_loss_backward",
                                   "huber_loss_backward"])
_register("data_movement", _zero, DATA_MOVEMENT)
_register("data_movement", _zero, ["copy_"], traffic=_copy_traffic)
_register("data_movement", _zero, ["index_copy_"], traffic=_index_copy_traffic)
_register("data_movement", _zero, ["index_put_", "_index_put_impl_"], traffic=_index_put_traffic)
_register("data_movement", _scatter, ["scatter"])
_register("data_movement", _scatter, ["scatter_"], traffic=_scatter_traffic)
_register("data_movement", _scatter_add, ["scatter_add"])
_register("data_movement", _scatter_add, ["scatter_add_"], traffic=_scatter_add_traffic)
_register("interpolation", _per_output(2), ["upsample_linear1d"])
_register("interpolation", _per_output(4), ["upsample_bilinear2d", "_upsample_bilinear2d_aa"])
_register("interpolation", _per_output(8), ["upsample_trilinear3d"])
_register("interpolation", _per_output(16), ["upsample_bicubic2d", "_upsample_bicubic2d_aa"])
_register("interpolation", _per_input(2), ["upsample_linear1d_backward"])
_register("interpolation", _per_input(4), ["upsample_bilinear2d_backward", "_upsample_bilinear2d_aa_backward"])
_register("interpolation", _per_input(8), ["upsample_trilinear3d_backward"])
_register("interpolation", _per_input(16), ["upsample_bicubic2d_backward", "_upsample_bicubic2d_aa_backward"])
_register("creation", _zero, CREATION)

_POINTWISE = OpFormula("elementwise", _per_output(1))
_CACHE: dict[Any, OpFormula | None] = {}


def op_name(func: Any) -> str:
    """``aten.mm.default`` → ``"aten.mm"`` (the packet's name)."""
    packet = getattr(func, "overloadpacket", None)
    return str(packet) if packet is not None else str(func)


def lookup(func: Any) -> OpFormula | None:
    """The formula for an op overload; ``None`` when it is uncounted.

    An op not in the registry but tagged ``pointwise`` by PyTorch is priced as elementwise (one FLOP per
    output element), so new pointwise ops are not silently lost.
    """
    try:
        return _CACHE[func]
    except KeyError:
        pass
    formula = REGISTRY.get(op_name(func))
    if formula is None and torch.Tag.pointwise in getattr(func, "tags", ()):
        formula = _POINTWISE
    _CACHE[func] = formula
    return formula
