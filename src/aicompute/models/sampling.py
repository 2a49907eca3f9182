"""Helpers shared by the zoo's language models (GPT and the character RNNs): token-id checks, sampling
one next token, and a context manager that runs a module in eval mode and restores every flag after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from aicompute.errors import AicomputeError

__all__ = ["check_token_ids", "check_max_new_tokens", "sample_next_token", "eval_mode"]


def check_token_ids(idx: torch.Tensor, who: str, *, allow_empty: bool = True) -> None:
    """Raise ``AicomputeError`` unless ``idx`` is a ``(B, T)`` integer tensor of token ids.

    Only shape and dtype are checked (values are not), so this works on meta tensors too.
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


def check_max_new_tokens(max_new_tokens: int) -> None:
    """Raise ``AicomputeError`` unless ``max_new_tokens`` is an integer ``>= 0``."""
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise AicomputeError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")


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
    if top_k is not None and top_k < 1:
        raise AicomputeError(f"top_k must be a positive integer or None, got {top_k}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block, then restore the train/eval flag of every submodule."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training
