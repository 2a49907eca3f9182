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

Token sampling, the generation loop and the shared input checks live in :mod:`aicompute.models.sampling`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from aicompute.checks import positive_int, probability
from aicompute.errors import AicomputeError
from aicompute.models.registry import register_model
from aicompute.models.sampling import check_token_ids, generate_tokens
from aicompute.nn.attention import MultiHeadSelfAttention

__all__ = [
    "GPTConfig",
    "GPT",
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.resid_dropout(self.attn(self.ln_1(x)))  # (B, T, d)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-style language model: token ids ``(B, T)`` → next-token logits ``(B, T, vocab_size)``."""

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

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        check_token_ids(idx, "GPT", vocab_size=self.config.vocab_size)
        b, t = idx.shape
        if t > self.config.block_size:
            raise AicomputeError(
                f"input has {t} tokens but this model's block_size (longest sequence) is "
                f"{self.config.block_size}; crop the input to at most {self.config.block_size} tokens "
                f"or build the model with block_size >= {t}"
            )
        pos = torch.arange(t, device=idx.device)  # (T,)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, d) + (T, d) -> (B, T, d)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, V)

    def _next_logits(self, new_ids: torch.Tensor, seq: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``generate``'s step: the logits ``(B, V)`` after the last token of the sequence so far plus
        ``new_ids``, predicted from its last ``block_size`` tokens; and that sequence."""
        seq = new_ids if seq is None else torch.cat([seq, new_ids], dim=1)  # (B, T0+i)
        context = seq[:, -self.config.block_size :]  # (B, ≤T)
        return self(context)[:, -1, :], seq

    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """Extend prompts ``idx`` ``(B, T0)`` by sampled tokens → ``(B, T0 + max_new_tokens)``.

        The model sees the last ``block_size`` tokens at each step. It runs in eval mode (no dropout);
        its previous mode is restored afterwards. Arguments as :func:`~aicompute.models.sampling.sample_next_token`.
        """
        return generate_tokens(
            self,
            idx,
            max_new_tokens,
            self._next_logits,
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
