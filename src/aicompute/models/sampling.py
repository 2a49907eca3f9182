"""Helpers shared by the zoo's language models (GPT and the character RNNs): token-id checks, sampling one
next token, and the generation loop around both (:func:`generate_tokens`), which runs the model in eval mode
through :func:`aicompute.modes.eval_mode`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch._subclasses.fake_tensor import is_fake
from torch import nn

from aicompute.checks import non_negative_int, positive_int
from aicompute.errors import AicomputeError
from aicompute.modes import eval_mode

__all__ = ["check_token_ids", "check_max_new_tokens", "sample_next_token", "generate_tokens", "NextLogits"]

NextLogits = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
"""``step(new_ids, carry) -> (logits, carry)``: one model step of :func:`generate_tokens` (see there)."""


def check_token_ids(idx: torch.Tensor, who: str, *, vocab_size: int, allow_empty: bool = True) -> None:
    """Raise ``AicomputeError`` unless ``idx`` is a ``(B, T)`` integer tensor of ids in ``[0, vocab_size)``.

    Shape and dtype are always checked; the range is checked only on tensors that hold values (not on meta
    or fake tensors), so a model can still be traced on the meta device. An id outside the vocabulary would
    otherwise surface as an ``IndexError`` from the embedding (on CUDA, a device-side assert).
    """
    if idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
        raise AicomputeError(
            f"{who} reads token ids as a (batch, time) int64 tensor, got shape {tuple(idx.shape)} "
            f"dtype {idx.dtype}"
        )
    if not allow_empty and idx.shape[1] == 0:
        raise AicomputeError(
            f"{who} needs a prompt of at least one token per row, got shape {tuple(idx.shape)}"
        )
    if idx.is_meta or is_fake(idx) or idx.numel() == 0:
        return
    lowest, highest = (int(v) for v in torch.aminmax(idx))
    if highest >= vocab_size:
        raise AicomputeError(
            f"{who} got token id {highest} but its vocabulary has {vocab_size} ids (0..{vocab_size - 1}); "
            f"encode the input with the model's vocabulary or build it with vocab_size >= {highest + 1}"
        )
    if lowest < 0:
        raise AicomputeError(f"{who} got token id {lowest}; token ids must be in [0, {vocab_size})")


def check_max_new_tokens(max_new_tokens: int) -> None:
    """Raise ``AicomputeError`` unless ``max_new_tokens`` is an integer ``>= 0``."""
    non_negative_int("max_new_tokens", max_new_tokens)


def sample_next_token(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row from next-token ``logits`` ``(B, V)`` → ids ``(B, 1)``.

    ``temperature`` divides the logits before the softmax (``< 1`` sharper, ``> 1`` flatter); ``0``
    means greedy (argmax, no randomness). ``top_k`` keeps only the ``k`` most likely tokens. Sampling
    draws from ``generator`` (on the logits' device) so a seeded generator gives repeatable text.
    """
    if temperature < 0:
        raise AicomputeError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None:
        positive_int("top_k", top_k)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


def generate_tokens(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    step: NextLogits,
    *,
    who: str,
    vocab_size: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Extend prompts ``idx`` ``(B, T0)`` by ``max_new_tokens`` sampled tokens → ``(B, T0 + max_new_tokens)``.

    The loop every language model of the zoo shares. ``step(new_ids, carry)`` is given the ids added since
    its previous call — the whole prompt on the first call, with ``carry=None``; then each sampled token,
    ``(B, 1)`` — and returns the next-token logits ``(B, V)`` after the last of them together with what it
    needs next time (the sequence so far for GPT, the hidden state for a recurrent net). It is called exactly
    ``max_new_tokens`` times, without gradients and with ``model`` in eval mode (its previous modes are
    restored). ``idx`` is checked as :func:`check_token_ids` does, naming ``who``; the sampling arguments are
    :func:`sample_next_token`'s.
    """
    check_token_ids(idx, who, vocab_size=vocab_size, allow_empty=False)
    check_max_new_tokens(max_new_tokens)
    pieces, new_ids, carry = [idx], idx, None
    with torch.no_grad(), eval_mode(model):
        for _ in range(max_new_tokens):
            logits, carry = step(new_ids, carry)  # (B, V)
            new_ids = sample_next_token(logits, temperature=temperature, top_k=top_k, generator=generator)
            pieces.append(new_ids)  # (B, 1)
    return torch.cat(pieces, dim=1)  # (B, T0 + max_new_tokens)
