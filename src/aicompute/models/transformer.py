"""A GPT-style decoder-only Transformer in the nanoGPT shape, and its zoo presets.

Structure (``L`` blocks of width ``d``, vocabulary ``V``, context ``T``)::

    idx (B, T) ─ tok_emb (V×d) + pos_emb (T×d) ─ dropout
      └─ L × Block:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))      (pre-LayerNorm)
      └─ ln_f ─ lm_head (d×V, no bias; by default the same tensor as tok_emb.weight) ─ logits (B, T, V)

* ``attn`` is :class:`aicompute.nn.attention.MultiHeadSelfAttention` with ``causal=True`` (SDPA with
  ``is_causal=True``, no T×T mask built): separate ``q_proj``, ``k_proj``, ``v_proj`` (d→d) and
  ``out_proj`` (d→d). The projections are kept apart (not one fused ``3d`` matrix) so that a Megatron
  plan can shard each of them column-wise and ``out_proj`` row-wise by module name; the forward reshapes
  by ``head_dim``, not by head count, so a shard holding fewer heads runs unchanged. Its output goes
  through the block's ``resid_dropout`` before the residual sum.
* ``mlp`` is ``fc_in`` (d→4d), GELU, ``fc_out`` (4d→d), dropout.
* Linear and LayerNorm layers carry biases unless ``bias=False``.

Parameter count (biases on, head tied): each block has ``4d²+4d`` (attention) + ``8d²+5d`` (MLP) +
``4d`` (two LayerNorms) = ``12d²+13d``; the whole model is ``12·L·d² + 13·L·d + (V+T)·d + 2d``. GPT-2
small (L=12, d=768, V=50257, T=1024) gives exactly 124,439,808.

Initialisation follows GPT-2: weights ~ N(0, 0.02), biases 0, and the two projections that write into
the residual stream (``out_proj``, ``fc_out``) ~ N(0, 0.02/√(2L)).

Decoding with a KV cache. ``GPT.new_kv_cache(B)`` allocates a :class:`GPTKVCache`: one
:class:`~aicompute.nn.attention.KVCache` per block, (B, n_head, max_len, head_dim) keys and values each, so
``2·L·B·max_len·d·itemsize`` bytes, and ``length``, the number of tokens already in it. ``GPT(idx,
kv_cache=cache)`` runs the T new tokens at positions ``length .. length + T − 1`` (position embedding
included), writes their keys/values into every block's cache in place, attends over the cached prefix and
advances ``length`` by T. A prefill is a call with the prompt, a decode step a call with one token; both give
the logits the full forward gives at those positions. Nothing depends on tensor values, so one decode step
traces on the meta device and under ``FakeTensorMode`` (set ``length`` by hand to model a filled cache).

Token sampling, the generation loop and the shared input checks live in :mod:`aicompute.models.sampling`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from aicompute.checks import non_negative_int, positive_int, probability
from aicompute.errors import AicomputeError
from aicompute.models.registry import register_model
from aicompute.models.sampling import check_max_new_tokens, check_token_ids, generate_tokens
from aicompute.nn.attention import KVCache, MultiHeadSelfAttention

__all__ = [
    "GPTConfig",
    "GPT",
    "GPTKVCache",
    "Block",
    "MLP",
    "transformer",
    "gpt2_small",
    "gpt3_175b",
]


@dataclass(frozen=True, kw_only=True)
class GPTConfig:
    """Shape of a GPT-style decoder. The defaults are a small model for the chars data set."""

    vocab_size: int = 100
    """Number of token ids (the embedding and output width)."""
    block_size: int = 64
    """Longest sequence the model reads (rows of the position embedding)."""
    n_layer: int = 4
    """Number of Transformer blocks."""
    n_head: int = 4
    """Attention heads per block; must divide ``n_embd``."""
    n_embd: int = 128
    """Model width ``d``."""
    dropout: float = 0.0
    """Dropout on embeddings, attention weights and both residual branches (0 disables it)."""
    bias: bool = True
    """Biases in every Linear and LayerNorm (GPT-2 has them)."""
    tie_weights: bool = True
    """Use the token embedding matrix as the output (LM head) matrix."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            positive_int(f"GPTConfig.{name}", getattr(self, name))
        if self.n_embd % self.n_head:
            raise AicomputeError(
                f"GPTConfig: n_embd({self.n_embd}) is not divisible by n_head({self.n_head}); "
                f"pick n_head from the divisors of {self.n_embd}"
            )
        probability("GPTConfig.dropout", self.dropout)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def gpt2_small(cls, **overrides: Any) -> GPTConfig:
        """GPT-2 small (124M): 12 layers, 12 heads, width 768, context 1024, GPT-2 BPE vocabulary."""
        base = cls(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
        return replace(base, **overrides)

    @classmethod
    def gpt3_175b(cls, **overrides: Any) -> GPTConfig:
        """GPT-3 175B: 96 layers, 96 heads (of 128), width 12288, context 2048, GPT-2 BPE vocabulary."""
        base = cls(vocab_size=50257, block_size=2048, n_layer=96, n_head=96, n_embd=12288)
        return replace(base, **overrides)


class MLP(nn.Module):
    """Position-wise feed-forward: d → 4d → GELU → d."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.n_embd
        self.fc_in = nn.Linear(d, 4 * d, bias=config.bias)
        self.act = nn.GELU()
        self.fc_out = nn.Linear(4 * d, d, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_out(self.act(self.fc_in(x))))


@dataclass(eq=False)
class GPTKVCache:
    """The KV cache of a whole :class:`GPT`: one layer cache per block and the number of tokens it holds."""

    layers: list[KVCache]
    """``layers[i]`` is block i's keys and values, (B, n_head, max_len, head_dim) each."""
    length: int = 0
    """Tokens already cached (positions 0 .. length − 1); the next call writes from position ``length``."""

    @property
    def batch_size(self) -> int:
        return self.layers[0].batch_size

    @property
    def max_len(self) -> int:
        return self.layers[0].max_len

    @property
    def nbytes(self) -> int:
        """Bytes of all keys and values: 2 · L · B · max_len · d · itemsize (d = n_embd)."""
        return sum(layer.nbytes for layer in self.layers)


class Block(nn.Module):
    """One pre-LayerNorm Transformer block: attention and MLP, each on a residual branch."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = MultiHeadSelfAttention(
            config.n_embd, config.n_head, bias=config.bias, dropout=config.dropout, causal=True
        )
        self.resid_dropout = nn.Dropout(config.dropout)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None, start: int = 0) -> torch.Tensor:
        x = x + self.resid_dropout(self.attn(self.ln_1(x), kv_cache=kv_cache, start=start))  # (B, T, d)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-style language model: token ids ``(B, T)`` → next-token logits ``(B, T, vocab_size)``.

    With ``kv_cache`` (from :meth:`new_kv_cache`) the ids are the next T tokens after the ``kv_cache.length``
    already cached, and the logits are theirs (see the module docstring).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight  # one Parameter, two uses
        self._init_weights()

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def _init_weights(self) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual_std if name.endswith(("out_proj", "fc_out")) else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def new_kv_cache(
        self,
        batch_size: int,
        max_len: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> GPTKVCache:
        """An empty (``length`` 0, zero-filled) cache for ``batch_size`` sequences of up to ``max_len`` tokens.

        ``max_len`` defaults to ``block_size`` and may not exceed it; dtype and device default to the
        parameters'. Allocated under ``FakeTensorMode`` or on ``device="meta"``, it holds no memory.
        """
        positive_int("batch_size", batch_size)
        block_size = self.config.block_size
        max_len = block_size if max_len is None else positive_int("max_len", max_len)
        if max_len > block_size:
            raise AicomputeError(
                f"a KV cache of max_len {max_len} is longer than this model's block_size {block_size} "
                f"(the positions it has embeddings for); use max_len <= {block_size}"
            )
        layers = [block.attn.new_kv_cache(batch_size, max_len, dtype=dtype, device=device) for block in self.blocks]
        return GPTKVCache(layers)

    def forward(self, idx: torch.Tensor, kv_cache: GPTKVCache | None = None) -> torch.Tensor:
        check_token_ids(idx, "GPT", vocab_size=self.config.vocab_size)
        b, t = idx.shape
        start = 0 if kv_cache is None else self._check_cache(kv_cache, t)
        if t > self.config.block_size:
            raise AicomputeError(
                f"input has {t} tokens but this model's block_size (longest sequence) is "
                f"{self.config.block_size}; crop the input to at most {self.config.block_size} tokens "
                f"or build the model with block_size >= {t}"
            )
        pos = torch.arange(start, start + t, device=idx.device)  # (T,): absolute positions of the new tokens
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, d) + (T, d) -> (B, T, d)
        for i, block in enumerate(self.blocks):
            x = block(x) if kv_cache is None else block(x, kv_cache.layers[i], start)
        if kv_cache is not None:
            kv_cache.length = start + t
        return self.lm_head(self.ln_f(x))  # (B, T, V)

    def _check_cache(self, cache: GPTKVCache, t: int) -> int:
        """Raise unless ``t`` more tokens fit ``cache`` and the model; returns where they start."""
        if len(cache.layers) != len(self.blocks):
            raise AicomputeError(
                f"the KV cache has {len(cache.layers)} layer caches but this model has {len(self.blocks)} "
                f"blocks; make it with this model's new_kv_cache()"
            )
        start = non_negative_int("kv_cache.length", cache.length)
        end, block_size = start + t, self.config.block_size
        if end > block_size:
            raise AicomputeError(
                f"the KV cache holds {start} tokens and {t} more make {end}, past this model's block_size "
                f"{block_size}; keep length + new tokens <= {block_size}"
            )
        if end > cache.max_len:
            raise AicomputeError(
                f"the KV cache holds {start} tokens and {t} more make {end}, past its max_len "
                f"{cache.max_len}; make it with new_kv_cache(batch_size, max_len={end}) or more"
            )
        return start

    def _next_logits(self, new_ids: torch.Tensor, seq: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``generate``'s sliding-window step: the logits ``(B, V)`` after the last token of the sequence so
        far plus ``new_ids``, predicted from its last ``block_size`` tokens; and that sequence."""
        seq = new_ids if seq is None else torch.cat([seq, new_ids], dim=1)  # (B, T0+i)
        context = seq[:, -self.config.block_size :]  # (B, ≤T)
        return self(context)[:, -1, :], seq

    def _cached_next_logits(
        self, new_ids: torch.Tensor, cache: GPTKVCache | None, *, max_len: int
    ) -> tuple[torch.Tensor, GPTKVCache]:
        """``generate``'s KV-cache step: the first call (``cache`` None) allocates a cache of ``max_len``
        tokens and prefills it with the prompt; each later call runs only the one new token."""
        if cache is None:
            cache = self.new_kv_cache(new_ids.shape[0], max_len, device=new_ids.device)
        return self(new_ids, kv_cache=cache)[:, -1, :], cache

    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        top_k: int | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Extend prompts ``idx`` ``(B, T0)`` by sampled tokens → ``(B, T0 + max_new_tokens)``.

        The model sees the last ``block_size`` tokens at each step. When every step sees the whole sequence
        (``T0 + max_new_tokens − 1 <= block_size``) and ``use_cache`` is on, it runs with a KV cache: the
        prompt once, then one token per step; otherwise it recomputes the sliding window each step. Both
        give the same logits up to float rounding. It runs in eval mode (no dropout); its previous mode is
        restored afterwards. Arguments as :func:`~aicompute.models.sampling.sample_next_token`.
        """
        check_token_ids(idx, "GPT.generate", vocab_size=self.config.vocab_size, allow_empty=False)
        check_max_new_tokens(max_new_tokens)
        max_len = idx.shape[1] + max_new_tokens - 1  # the last sampled token is never fed back
        step = self._next_logits
        if use_cache and max_len <= self.config.block_size:
            step = functools.partial(self._cached_next_logits, max_len=max_len)
        return generate_tokens(
            self,
            idx,
            max_new_tokens,
            step,
            who="GPT.generate",
            vocab_size=self.config.vocab_size,
            temperature=temperature,
            top_k=top_k,
            generator=generator,
        )


# ------------------------------------------------------------------------------------------ zoo entries


@register_model("transformer", family="lm", input_shape=(64,), input_dtype="int64")
def transformer(
    vocab_size: int = 100,
    block_size: int = 64,
    n_layer: int = 4,
    n_head: int = 4,
    n_embd: int = 128,
    dropout: float = 0.0,
    bias: bool = True,
    tie_weights: bool = True,
) -> GPT:
    """GPT-style decoder (nanoGPT shape): 4 layers, 4 heads, width 128 by default, for the chars data."""
    config = GPTConfig(
        vocab_size=vocab_size,
        block_size=block_size,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        dropout=dropout,
        bias=bias,
        tie_weights=tie_weights,
    )
    return GPT(config)


@register_model("gpt2-small", family="lm", input_shape=(1024,), input_dtype="int64")
def gpt2_small(vocab_size: int = 50257, block_size: int = 1024, dropout: float = 0.0) -> GPT:
    """GPT-2 small: 12 layers, 12 heads, width 768, context 1024, tied head (124,439,808 params)."""
    return GPT(GPTConfig.gpt2_small(vocab_size=vocab_size, block_size=block_size, dropout=dropout))


@register_model("gpt3-175b", family="lm", input_shape=(2048,), input_dtype="int64", meta_only=True)
def gpt3_175b(vocab_size: int = 50257, block_size: int = 2048) -> GPT:
    """GPT-3 175B: 96 layers, 96 heads, width 12288, context 2048; always built on the meta device.

    Its float32 weights would take about 700 GB, so this factory builds it under
    ``torch.device("meta")`` whatever the caller's device: shapes only, no weight memory. To place it
    elsewhere (e.g. sharded), build ``GPT(GPTConfig.gpt3_175b())`` yourself.
    """
    with torch.device("meta"):
        return GPT(GPTConfig.gpt3_175b(vocab_size=vocab_size, block_size=block_size))
