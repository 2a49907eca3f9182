"""Attention as the seed text defines it: scoring functions, key-value attention, multi-head self-attention.

Attention runs in two steps: score every input against a query, then average the inputs weighted by the
softmax of the scores. With inputs (keys) xₙ and a query q, the seed's scoring functions s(x, q) are

* additive:    vᵀ tanh(Wx + Uq)   (the seed prints Wx + Uq; the vector v and tanh reduce it to a scalar,
  as in Bahdanau et al., 2015);
* dot:         xᵀq;
* scaled dot:  xᵀq / √D, D the key dimension;
* bilinear:    xᵀWq.

Shapes. Every scorer takes ``keys`` (..., N, Dk) and ``queries`` (..., M, Dq) and returns scores
(..., M, N): row m scores the N keys against query m. A single query vector is ``q[..., None, :]``.

Masks follow ``F.scaled_dot_product_attention``: a boolean mask broadcastable to (..., M, N) where
**True means "may attend"**; a float mask is added to the scores. (``nn.MultiheadAttention`` uses the
opposite boolean convention — True means "masked out"; pass ``~mask`` when converting.) A query whose
keys are all masked attends to nothing: its weights and its output row are zero (a plain softmax over all
−∞ would give NaN). That is what ``F.scaled_dot_product_attention`` returns on CPU in torch 2.13, and
:class:`MultiHeadSelfAttention` enforces it on both of its paths, whatever the backend.

:class:`MultiHeadSelfAttention` projects x to Q, K, V, splits them into heads, runs
softmax(QKᵀ/√d)V per head (d = head dimension), joins the heads and projects the result. It has no
residual connection (that belongs to the Transformer block around it).

KV cache (decoding). A :class:`KVCache` holds one layer's keys and values, preallocated as (B, heads,
max_len, head_dim). ``MultiHeadSelfAttention.forward(x, kv_cache=cache, start=s)`` writes the T new keys and
values into positions [s, s + T) in place (a slice ``copy_``, not a concatenation of the whole cache) and lets
the T queries attend over positions [0, s + T) (a view of the cache, no copy). With ``causal=True`` query i
sits at absolute position s + i and sees keys 0..s + i: one query (T = 1, a decode step) needs no mask,
T > 1 from s = 0 (a prefill) is SDPA's ``is_causal``, and T > 1 from s > 0 (a chunked prefill) is the
bottom-right-aligned mask ``causal_mask(T, s + T, offset=s)``. Every size involved is a Python int, so a
decode step traces on the meta device and under ``FakeTensorMode``. Decoding is inference: run it under
``torch.no_grad()`` (the in-place writes would otherwise chain every step into one autograd graph).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aicompute.checks import non_negative_int, positive_int, probability
from aicompute.errors import AicomputeError

__all__ = [
    "AdditiveScore",
    "BilinearScore",
    "KVCache",
    "MultiHeadSelfAttention",
    "causal_mask",
    "dot_score",
    "key_value_attention",
    "scaled_dot_score",
]

Scorer = Callable[[Tensor, Tensor], Tensor]
"""(keys (..., N, Dk), queries (..., M, Dq)) -> scores (..., M, N)."""


def dot_score(keys: Tensor, queries: Tensor) -> Tensor:
    """s(x, q) = xᵀq for every (query, key) pair: (..., M, N). Needs Dk == Dq."""
    return queries @ keys.transpose(-2, -1)


def scaled_dot_score(keys: Tensor, queries: Tensor) -> Tensor:
    """s(x, q) = xᵀq / √D with D = Dk: dot scores whose variance does not grow with D."""
    return dot_score(keys, queries) / math.sqrt(keys.shape[-1])


class AdditiveScore(nn.Module):
    """s(x, q) = vᵀ tanh(Wx + Uq), W: (H, Dk), U: (H, Dq), v: (H,); no biases, as the seed writes it."""

    def __init__(self, key_dim: int, query_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.W = nn.Linear(key_dim, hidden_dim, bias=False)
        self.U = nn.Linear(query_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, keys: Tensor, queries: Tensor) -> Tensor:
        wx = self.W(keys).unsqueeze(-3)  # (..., 1, N, H)
        uq = self.U(queries).unsqueeze(-2)  # (..., M, 1, H)
        return self.v(torch.tanh(wx + uq)).squeeze(-1)  # (..., M, N, 1) -> (..., M, N)


class BilinearScore(nn.Module):
    """s(x, q) = xᵀWq, W: (Dk, Dq). With W = I it is the dot score."""

    def __init__(self, key_dim: int, query_dim: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(key_dim, query_dim))
        nn.init.xavier_uniform_(self.W)

    def forward(self, keys: Tensor, queries: Tensor) -> Tensor:
        return (queries @ self.W.transpose(0, 1)) @ keys.transpose(-2, -1)  # (..., M, Dk) @ (..., Dk, N)


def causal_mask(
    num_queries: int, num_keys: int | None = None, *, offset: int = 0, device: torch.device | None = None
) -> Tensor:
    """Boolean (M, N) mask, True on and below diagonal ``offset``: query m may attend to keys 0..m + offset.

    ``offset=0`` matches ``is_causal=True`` of ``F.scaled_dot_product_attention`` (top-left aligned when
    M != N). ``offset = N − M`` is the bottom-right-aligned mask of M new queries after N − M cached keys.
    """
    n = num_queries if num_keys is None else num_keys
    return torch.ones(num_queries, n, dtype=torch.bool, device=device).tril(diagonal=offset)


def key_value_attention(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    *,
    scorer: Scorer = scaled_dot_score,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Key-value attention: weights = softmax over keys of ``scorer(keys, queries)``, output = weights @ values.

    queries (..., M, Dq), keys (..., N, Dk), values (..., N, Dv) -> (output (..., M, Dv), weights (..., M, N)).
    Plain attention, where the inputs are both keys and values, is ``key_value_attention(q, x, x)``.
    ``mask``: see the module docstring; a fully masked query gets zero weights and a zero output row, with
    zero gradient. ``dropout_p`` > 0 drops attention weights (scaled by 1/(1 − p)), as
    ``F.scaled_dot_product_attention`` does; pass 0 at evaluation.
    """
    if keys.shape[-2] != values.shape[-2]:
        raise AicomputeError(
            f"keys and values must pair up: {keys.shape[-2]} keys but {values.shape[-2]} values "
            f"(keys {tuple(keys.shape)}, values {tuple(values.shape)})"
        )
    scores = scorer(keys, queries)  # (..., M, N)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    # A row of all −∞ has no softmax (it would be NaN): give it finite scores, then zero weights.
    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)  # (..., M, 1)
    weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ values, weights


def _and_causal(mask: Tensor | None, t: int, s: int, device: torch.device) -> Tensor:
    """``mask`` further restricted to the causal (T, S) pattern of T queries at positions S − T .. S − 1 over
    S keys (bottom-right aligned), in the mask's own kind (boolean or additive)."""
    tri = causal_mask(t, s, offset=s - t, device=device)  # (T, S)
    if mask is None:
        return tri
    if mask.dtype == torch.bool:
        return mask & tri
    return mask + torch.zeros(t, s, dtype=mask.dtype, device=device).masked_fill(~tri, float("-inf"))


def _fully_masked_rows(mask: Tensor) -> Tensor:
    """Boolean (..., M, 1): the query rows of ``mask`` (..., M, N) that may attend to no key at all."""
    if mask.dtype == torch.bool:
        return ~mask.any(dim=-1, keepdim=True)
    return torch.isneginf(mask).all(dim=-1, keepdim=True)


class KVCache:
    """One attention layer's keys and values for decoding: ``k`` and ``v``, each (B, heads, max_len, head_dim).

    The tensors are allocated once (:meth:`zeros`) and written in place by :meth:`update`, as inference
    engines do; the cache itself does not count its tokens (the model that owns it does, and passes the
    write position ``start``). Positions past the last write hold stale values and are never read.
    """

    def __init__(self, k: Tensor, v: Tensor) -> None:
        if k.dim() != 4 or k.shape != v.shape or k.dtype != v.dtype or k.device != v.device:
            raise AicomputeError(
                f"a KV cache needs k and v of one shape (batch, heads, max_len, head_dim), dtype and device; "
                f"got k {tuple(k.shape)} {k.dtype} on {k.device}, v {tuple(v.shape)} {v.dtype} on {v.device}"
            )
        self.k = k
        self.v = v

    @classmethod
    def zeros(
        cls,
        batch_size: int,
        num_heads: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> KVCache:
        """A zero-filled cache for ``max_len`` tokens (dtype and device default to torch's defaults)."""
        for name, value in (("batch_size", batch_size), ("num_heads", num_heads), ("max_len", max_len),
                            ("head_dim", head_dim)):
            positive_int(name, value)
        shape = (batch_size, num_heads, max_len, head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))

    @property
    def batch_size(self) -> int:
        return self.k.shape[0]

    @property
    def num_heads(self) -> int:
        return self.k.shape[1]

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    @property
    def head_dim(self) -> int:
        return self.k.shape[3]

    @property
    def dtype(self) -> torch.dtype:
        return self.k.dtype

    @property
    def device(self) -> torch.device:
        return self.k.device

    @property
    def nbytes(self) -> int:
        """Bytes the cache holds: 2 · B · heads · max_len · head_dim · itemsize (keys and values)."""
        return self.k.nbytes + self.v.nbytes

    def update(self, k: Tensor, v: Tensor, start: int) -> tuple[Tensor, Tensor]:
        """Write new keys and values (B, heads, T, head_dim) at positions [start, start + T); return the keys
        and values of positions [0, start + T), views (B, heads, start + T, head_dim) of the cache."""
        non_negative_int("start", start)
        if k.dim() != 4 or k.shape != v.shape or k.dtype != v.dtype:
            raise AicomputeError(
                f"new keys and values must both be (batch, heads, T, head_dim) of one dtype, got "
                f"k {tuple(k.shape)} {k.dtype}, v {tuple(v.shape)} {v.dtype}"
            )
        t = k.shape[2]
        want = (self.batch_size, self.num_heads, t, self.head_dim)
        if tuple(k.shape) != want or k.dtype != self.dtype or k.device != self.device:
            raise AicomputeError(
                f"new keys {tuple(k.shape)} {k.dtype} on {k.device} do not fit this KV cache, which holds "
                f"(batch={self.batch_size}, heads={self.num_heads}, max_len={self.max_len}, "
                f"head_dim={self.head_dim}) {self.dtype} on {self.device}; build the cache for this layer, "
                f"batch and dtype"
            )
        end = start + t
        if end > self.max_len:
            raise AicomputeError(
                f"KV cache overflow: writing {t} token(s) at position {start} needs {end} slots but the cache "
                f"has max_len {self.max_len}; allocate it with max_len >= {end}"
            )
        self.k[:, :, start:end].copy_(k)  # in place: (B, h, T, d) into positions [start, end)
        self.v[:, :, start:end].copy_(v)
        return self.k[:, :, :end], self.v[:, :, :end]  # views (B, h, end, d), no copy

    def __repr__(self) -> str:
        return (f"KVCache(batch_size={self.batch_size}, num_heads={self.num_heads}, max_len={self.max_len}, "
                f"head_dim={self.head_dim}, dtype={self.dtype}, device={self.device})")


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over x (B, T, E): E = heads × head_dim.

    ``use_sdpa=True`` (default) runs ``F.scaled_dot_product_attention`` (fused kernels where the device has
    them); ``use_sdpa=False`` runs the explicit softmax(QKᵀ/√d)V of :func:`key_value_attention`. Both compute
    the same function, fully masked query rows included (zero on both paths). ``causal=True`` lets position t
    attend to positions ≤ t only; without an explicit mask the SDPA path passes ``is_causal=True`` and builds
    no T×T mask. ``forward`` may add a boolean or float ``mask`` broadcastable to (B, heads, T, S), S the
    number of keys (T without a cache, ``start + T`` with one; True = may attend). ``dropout`` is applied to
    the attention weights in training mode.

    ``forward(x, kv_cache=cache, start=s)`` decodes with a :class:`KVCache` (see the module docstring): the
    new keys/values go to cache positions [s, s + T) and the queries read positions [0, s + T). Both paths
    honour it. :meth:`new_kv_cache` allocates a cache that fits this layer.

    The Q, K, V and output projections are separate ``nn.Linear`` layers (``q_proj``, ``k_proj``, ``v_proj``,
    ``out_proj``), so a tensor-parallel plan can name them one by one. The forward splits heads by
    ``head_dim``, not by ``num_heads``: a Megatron shard whose column-parallel q/k/v projections hold only
    some of the heads (and whose row-parallel ``out_proj`` reads only those) runs unchanged.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        causal: bool = False,
        use_sdpa: bool = True,
    ) -> None:
        super().__init__()
        positive_int("embed_dim", embed_dim)
        positive_int("num_heads", num_heads)
        if embed_dim % num_heads != 0:
            raise AicomputeError(
                f"embed_dim ({embed_dim}) must be a multiple of num_heads ({num_heads}); "
                f"e.g. num_heads in {[h for h in range(1, min(embed_dim, 16) + 1) if embed_dim % h == 0]}"
            )
        probability("dropout", dropout)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.causal = causal
        self.use_sdpa = use_sdpa
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, kv_cache: KVCache | None = None, start: int = 0
    ) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise AicomputeError(
                f"self-attention expects input (batch, seq_len, {self.embed_dim}), got {tuple(x.shape)}"
            )
        if kv_cache is None and start != 0:
            raise AicomputeError(f"start={start!r} is a position in a KV cache; pass kv_cache= with it")
        b, t, _ = x.shape
        q, k, v = (self._split_heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
        if kv_cache is not None:
            k, v = kv_cache.update(k, v, start)  # (B, h, start + T, d): the cached keys, then the new ones
        s = k.shape[2]  # number of keys; query i sits at absolute position s − t + i
        dropout_p = self.dropout if self.training else 0.0
        if self.use_sdpa and self.causal and mask is None and (s == t or t == 1):
            # s == t: top-left alignment is the causal pattern; one query over s > 1 keys sees them all
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=s == t)
        else:
            if self.causal and t > 1:
                mask = _and_causal(mask, t, s, x.device)
            y = self._attend(q, k, v, mask, dropout_p)
        y = y.transpose(1, 2).reshape(b, t, -1)  # (B, h, T, d) -> (B, T, h, d) -> (B, T, h·d)
        return self.out_proj(y)

    def new_kv_cache(
        self,
        batch_size: int,
        max_len: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> KVCache:
        """A zero-filled :class:`KVCache` for this layer: (batch_size, heads, max_len, head_dim) keys and values.

        The head count is read off ``k_proj`` (so a shard holding some of the heads gets a cache of its
        heads); dtype and device default to ``k_proj.weight``'s.
        """
        weight = self.k_proj.weight
        return KVCache.zeros(
            batch_size,
            self.k_proj.out_features // self.head_dim,
            max_len,
            self.head_dim,
            dtype=weight.dtype if dtype is None else dtype,
            device=weight.device if device is None else device,
        )

    def _split_heads(self, z: Tensor) -> Tensor:
        b, t, _ = z.shape
        # (B, T, h·d) -> (B, T, h, d) -> (B, h, T, d); h = -1 so a projection holding fewer heads works too
        return z.view(b, t, -1, self.head_dim).transpose(1, 2)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float) -> Tensor:
        """softmax(QKᵀ/√d + mask)V with q (B, h, T, d), k and v (B, h, S, d) -> (B, h, T, d); fully masked rows
        are zero."""
        if not self.use_sdpa:
            return key_value_attention(q, k, v, mask=mask, dropout_p=dropout_p)[0]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        if mask is None:
            return y
        # torch 2.13's CPU kernels already give zeros there; zeroing makes it independent of the backend
        return y.masked_fill(_fully_masked_rows(mask), 0.0)

    @classmethod
    def from_torch(
        cls, mha: nn.MultiheadAttention, *, causal: bool = False, use_sdpa: bool = True
    ) -> MultiHeadSelfAttention:
        """A copy of ``mha``'s weights in this layout: same function of x as ``mha(x, x, x)``.

        ``mha`` must have equal query/key/value dimensions and no ``add_bias_kv`` / ``add_zero_attn``.
        """
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise AicomputeError(
                "only nn.MultiheadAttention with kdim == vdim == embed_dim, add_bias_kv=False and "
                "add_zero_attn=False can be converted"
            )
        has_bias = mha.in_proj_bias is not None
        ref = mha.in_proj_weight
        new = cls(mha.embed_dim, mha.num_heads, bias=has_bias, dropout=mha.dropout, causal=causal,
                  use_sdpa=use_sdpa).to(device=ref.device, dtype=ref.dtype)
        e = mha.embed_dim
        with torch.no_grad():
            for i, proj in enumerate((new.q_proj, new.k_proj, new.v_proj)):
                proj.weight.copy_(mha.in_proj_weight[i * e:(i + 1) * e])  # rows of in_proj: [W_q; W_k; W_v]
                if has_bias:
                    proj.bias.copy_(mha.in_proj_bias[i * e:(i + 1) * e])
            new.out_proj.weight.copy_(mha.out_proj.weight)
            if has_bias:
                new.out_proj.bias.copy_(mha.out_proj.bias)
        return new

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"causal={self.causal}, use_sdpa={self.use_sdpa}")
