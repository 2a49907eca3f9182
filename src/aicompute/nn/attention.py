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
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aicompute.checks import positive_int, probability
from aicompute.errors import AicomputeError

__all__ = [
    "AdditiveScore",
    "BilinearScore",
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


def causal_mask(num_queries: int, num_keys: int | None = None, *, device: torch.device | None = None) -> Tensor:
    """Boolean (M, N) mask, True on and below the diagonal: query m may attend to keys 0..m.

    Matches ``is_causal=True`` of ``F.scaled_dot_product_attention`` (top-left aligned when M != N).
    """
    n = num_queries if num_keys is None else num_keys
    return torch.ones(num_queries, n, dtype=torch.bool, device=device).tril()


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


def _and_causal(mask: Tensor | None, t: int, device: torch.device) -> Tensor:
    """``mask`` further restricted to the causal (T, T) pattern, in the mask's own kind (boolean or additive)."""
    tri = causal_mask(t, device=device)  # (T, T)
    if mask is None:
        return tri
    if mask.dtype == torch.bool:
        return mask & tri
    return mask + torch.zeros(t, t, dtype=mask.dtype, device=device).masked_fill(~tri, float("-inf"))


def _fully_masked_rows(mask: Tensor) -> Tensor:
    """Boolean (..., M, 1): the query rows of ``mask`` (..., M, N) that may attend to no key at all."""
    if mask.dtype == torch.bool:
        return ~mask.any(dim=-1, keepdim=True)
    return torch.isneginf(mask).all(dim=-1, keepdim=True)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over x (B, T, E): E = heads × head_dim.

    ``use_sdpa=True`` (default) runs ``F.scaled_dot_product_attention`` (fused kernels where the device has
    them); ``use_sdpa=False`` runs the explicit softmax(QKᵀ/√d)V of :func:`key_value_attention`. Both compute
    the same function, fully masked query rows included (zero on both paths). ``causal=True`` lets position t
    attend to positions ≤ t only; without an explicit mask the SDPA path passes ``is_causal=True`` and builds
    no T×T mask. ``forward`` may add a boolean or float ``mask`` broadcastable to (B, heads, T, T)
    (True = may attend). ``dropout`` is applied to the attention weights in training mode.

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

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise AicomputeError(
                f"self-attention expects input (batch, seq_len, {self.embed_dim}), got {tuple(x.shape)}"
            )
        b, t, _ = x.shape
        q, k, v = (self._split_heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
        dropout_p = self.dropout if self.training else 0.0
        if self.use_sdpa and self.causal and mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            if self.causal:
                mask = _and_causal(mask, t, x.device)
            y = self._attend(q, k, v, mask, dropout_p)
        y = y.transpose(1, 2).reshape(b, t, -1)  # (B, h, T, d) -> (B, T, h, d) -> (B, T, h·d)
        return self.out_proj(y)

    def _split_heads(self, z: Tensor) -> Tensor:
        b, t, _ = z.shape
        # (B, T, h·d) -> (B, T, h, d) -> (B, h, T, d); h = -1 so a projection holding fewer heads works too
        return z.view(b, t, -1, self.head_dim).transpose(1, 2)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float) -> Tensor:
        """softmax(QKᵀ/√d + mask)V with q, k, v (B, h, T, d) -> (B, h, T, d); fully masked rows are zero."""
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
