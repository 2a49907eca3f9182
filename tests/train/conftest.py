"""Tiny models and data sets shared by the train tests (kept small: each fit is a few ms).

Test modules get them as fixtures (``blobs``, ``mlp``: a factory, ``lm``: a factory, ``tokens``), since
with ``--import-mode=importlib`` a conftest is not importable by name.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn


def make_blobs(n: int = 256, features: int = 4, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Linearly separable classes: the label is the arg-max of a fixed random projection."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, classes, generator=g)
    return x, (x @ w).argmax(dim=1)


def make_mlp(features: int = 4, classes: int = 3, hidden: int = 16, dropout: float = 0.0, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes))


class TinyLM(nn.Module):
    """Bigram language model: (B, T) token ids -> (B, T, V) logits."""

    def __init__(self, vocab: int = 5, width: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(tokens))  # (B, T, V)


def make_cycle_tokens(n: int = 64, length: int = 6, vocab: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences counting up modulo ``vocab``; the target is the next token, so a bigram model can learn it."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, vocab, (n, 1), generator=g)
    seq = (start + torch.arange(length + 1)) % vocab  # (N, T+1)
    return seq[:, :-1], seq[:, 1:]


@pytest.fixture
def blobs() -> tuple[torch.Tensor, torch.Tensor]:
    return make_blobs()


@pytest.fixture
def mlp():
    """Factory: ``mlp(features=4, classes=3, hidden=16, dropout=0.0, seed=0)``, initialised from ``seed``."""
    return make_mlp


@pytest.fixture
def lm():
    """Factory of :class:`TinyLM`."""
    return TinyLM


@pytest.fixture
def tokens() -> tuple[torch.Tensor, torch.Tensor]:
    return make_cycle_tokens()
