"""Recurrent networks of the zoo: RNN / LSTM / GRU sequence classifiers and character language models.

Both kinds use torch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` with ``batch_first=True`` (the
cells written out from their equations live in :mod:`aicompute.nn`).

Sequence classifiers (zoo names ``rnn``, ``lstm``, ``gru``) read ``(B, T, F)``: ``T`` steps of
``F = input_size`` features. Other layouts are turned into that one by :func:`as_sequence`:

* ``(B, L)`` — a 1-D signal, one value per step: ``(B, L, 1)`` (needs ``input_size=1``);
* ``(B, C, H, W)`` — an image read row by row, top to bottom: ``H`` steps whose ``C·W`` features are
  row ``h`` of channel 0, then row ``h`` of channel 1, ... (``(B, H, W)`` is already ``T=H, F=W``).

The class scores come from the last layer's final hidden state ``h_T`` through one linear layer; a
bidirectional net concatenates the forward state after step ``T`` with the backward state after step 1.

Character language models (zoo names ``char-rnn``, ``char-lstm``, ``char-gru``): token ids ``(B, T)``
→ embedding → recurrent stack → linear → next-token logits ``(B, T, vocab_size)``. ``block_size`` is the
training context length, kept for the zoo's language-model convention; a recurrent model has no hard
limit and reads longer sequences too. ``generate`` feeds the prompt once and then carries the hidden
state from token to token.
"""

from __future__ import annotations

from typing import Literal, Union

import torch
from torch import nn

from aicompute.checks import positive_int, probability
from aicompute.errors import AicomputeError
from aicompute.models.registry import register_model
from aicompute.models.sampling import check_token_ids, generate_tokens

__all__ = [
    "CellKind",
    "RecurrentClassifier",
    "CharLM",
    "as_sequence",
    "rnn",
    "lstm",
    "gru",
    "char_rnn",
    "char_lstm",
    "char_gru",
]

CellKind = Literal["rnn", "lstm", "gru"]
_FUSED: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]
"""Hidden state of a fused stack: ``h`` for RNN/GRU, ``(h, c)`` for LSTM; each ``(layers·dirs, B, H)``."""


def _fused(
    cell: str, input_size: int, hidden_size: int, num_layers: int, *, dropout: float, **kwargs
) -> nn.RNNBase:
    """A ``batch_first`` fused stack; ``input_size`` must already be checked by the caller (who knows
    which of its own arguments it is: ``input_size`` for a classifier, ``embed_dim`` for a language model)."""
    if cell not in _FUSED:
        raise AicomputeError(f"unknown recurrent cell {cell!r}; pick one of {', '.join(_FUSED)}")
    positive_int("hidden_size", hidden_size)
    positive_int("num_layers", num_layers)
    probability("dropout", dropout)
    return _FUSED[cell](input_size, hidden_size, num_layers, batch_first=True, dropout=dropout, **kwargs)


def as_sequence(x: torch.Tensor, input_size: int) -> torch.Tensor:
    """Bring ``(B, L)``, ``(B, T, F)`` or ``(B, C, H, W)`` input to ``(B, T, F)`` (see module docstring)."""
    if x.dim() == 2:
        if input_size != 1:
            raise AicomputeError(
                f"a (batch, length) signal is read one value per step, which needs input_size=1, but "
                f"this model has input_size={input_size}; give (batch, steps, {input_size}) input instead"
            )
        x = x.unsqueeze(-1)  # (B, L) -> (B, L, 1)
    elif x.dim() == 4:
        b, c, h, w = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # (B, C, H, W) -> (B, H, C, W) -> (B, H, C·W)
    elif x.dim() != 3:
        raise AicomputeError(
            f"a recurrent classifier reads (batch, steps, features), (batch, length) or "
            f"(batch, channels, height, width) input, got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != input_size:
        raise AicomputeError(
            f"this model reads {input_size} features per step but the input gives {x.shape[-1]} "
            f"(as a sequence of shape {tuple(x.shape)}); build it with input_size={x.shape[-1]}"
        )
    return x


class RecurrentClassifier(nn.Module):
    """A fused RNN/LSTM/GRU stack whose last hidden state feeds a linear classifier."""

    def __init__(
        self,
        cell: CellKind,
        *,
        input_size: int,
        num_classes: int,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        positive_int("input_size", input_size)
        positive_int("num_classes", num_classes)
        self.cell = cell
        self.input_size = input_size
        self.rnn = _fused(
            cell, input_size, hidden_size, num_layers, dropout=dropout, bidirectional=bidirectional
        )
        self.num_directions = 2 if bidirectional else 1
        self.head = nn.Linear(self.num_directions * hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = as_sequence(x, self.input_size)  # (B, T, F)
        _, state = self.rnn(seq)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        # h_n is (layers·dirs, B, H); the last layer's directions are its last `dirs` rows
        last = h_n[-self.num_directions :].transpose(0, 1)  # (dirs, B, H) -> (B, dirs, H)
        return self.head(last.reshape(seq.shape[0], -1))  # (B, dirs·H) -> (B, classes)


class CharLM(nn.Module):
    """Character language model: embedding → fused RNN/LSTM/GRU stack → next-token logits."""

    def __init__(
        self,
        cell: CellKind,
        *,
        vocab_size: int,
        block_size: int,
        embed_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        positive_int("vocab_size", vocab_size)
        positive_int("block_size", block_size)
        positive_int("embed_dim", embed_dim)
        self.cell = cell
        self.block_size = block_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = _fused(cell, embed_dim, hidden_size, num_layers, dropout=dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, T)`` → logits ``(B, T, vocab_size)``, starting from a zero hidden state."""
        logits, _ = self.forward_state(idx)
        return logits

    def forward_state(
        self, idx: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """Like ``forward`` but from hidden ``state`` (``None``: zeros), also returning the new state."""
        check_token_ids(idx, type(self).__name__, vocab_size=self.embed.num_embeddings)
        out, state = self.rnn(self.embed(idx), state)  # (B, T, E) -> (B, T, H)
        return self.head(out), state  # (B, T, V)

    def _next_logits(self, new_ids: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """``generate``'s step: logits after the last of ``new_ids`` ``(B, V)`` and the carried hidden state."""
        logits, state = self.forward_state(new_ids, state)  # (B, T, V)
        return logits[:, -1, :], state

    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """Extend prompts ``idx`` ``(B, T0)`` by sampled tokens → ``(B, T0 + max_new_tokens)``.

        The whole prompt is read once; each new token then costs one step. Runs in eval mode and
        restores the previous mode. Arguments as :func:`~aicompute.models.sampling.sample_next_token`.
        """
        return generate_tokens(
            self,
            idx,
            max_new_tokens,
            self._next_logits,
            who="CharLM.generate",
            vocab_size=self.embed.num_embeddings,
            temperature=temperature,
            top_k=top_k,
            generator=generator,
        )


# ------------------------------------------------------------------------------------------ zoo entries
# Each zoo name is its own function, since the registry reads its signature, defaults and docstring; the
# three classifiers (and the three language models) differ only in the cell, so they share one body.


def _classifier(
    cell: CellKind,
    num_classes: int,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    bidirectional: bool,
) -> RecurrentClassifier:
    """The body of the ``rnn`` / ``lstm`` / ``gru`` entries (arguments in their signature's order)."""
    return RecurrentClassifier(
        cell,
        input_size=input_size,
        num_classes=num_classes,
        hidden_size=hidden_size,
        num_layers=num_layers,
        dropout=dropout,
        bidirectional=bidirectional,
    )


def _char_lm(
    cell: CellKind,
    vocab_size: int,
    block_size: int,
    embed_dim: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
) -> CharLM:
    """The body of the ``char-rnn`` / ``char-lstm`` / ``char-gru`` entries (arguments in their order)."""
    return CharLM(
        cell,
        vocab_size=vocab_size,
        block_size=block_size,
        embed_dim=embed_dim,
        hidden_size=hidden_size,
        num_layers=num_layers,
        dropout=dropout,
    )


@register_model("rnn", family="sequence", input_shape=(28, 28))
def rnn(
    num_classes: int = 10,
    input_size: int = 28,
    hidden_size: int = 128,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
) -> RecurrentClassifier:
    """Elman RNN (tanh) sequence classifier; reads an image row by row."""
    return _classifier("rnn", num_classes, input_size, hidden_size, num_layers, dropout, bidirectional)


@register_model("lstm", family="sequence", input_shape=(28, 28))
def lstm(
    num_classes: int = 10,
    input_size: int = 28,
    hidden_size: int = 128,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
) -> RecurrentClassifier:
    """LSTM sequence classifier; reads an image row by row."""
    return _classifier("lstm", num_classes, input_size, hidden_size, num_layers, dropout, bidirectional)


@register_model("gru", family="sequence", input_shape=(28, 28))
def gru(
    num_classes: int = 10,
    input_size: int = 28,
    hidden_size: int = 128,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
) -> RecurrentClassifier:
    """GRU sequence classifier; reads an image row by row."""
    return _classifier("gru", num_classes, input_size, hidden_size, num_layers, dropout, bidirectional)


@register_model("char-rnn", family="lm", input_shape=(64,), input_dtype="int64")
def char_rnn(
    vocab_size: int = 100,
    block_size: int = 64,
    embed_dim: int = 64,
    hidden_size: int = 256,
    num_layers: int = 1,
    dropout: float = 0.0,
) -> CharLM:
    """Character language model on an Elman RNN (tanh)."""
    return _char_lm("rnn", vocab_size, block_size, embed_dim, hidden_size, num_layers, dropout)


@register_model("char-lstm", family="lm", input_shape=(64,), input_dtype="int64")
def char_lstm(
    vocab_size: int = 100,
    block_size: int = 64,
    embed_dim: int = 64,
    hidden_size: int = 256,
    num_layers: int = 1,
    dropout: float = 0.0,
) -> CharLM:
    """Character language model on an LSTM."""
    return _char_lm("lstm", vocab_size, block_size, embed_dim, hidden_size, num_layers, dropout)


@register_model("char-gru", family="lm", input_shape=(64,), input_dtype="int64")
def char_gru(
    vocab_size: int = 100,
    block_size: int = 64,
    embed_dim: int = 64,
    hidden_size: int = 256,
    num_layers: int = 1,
    dropout: float = 0.0,
) -> CharLM:
    """Character language model on a GRU."""
    return _char_lm("gru", vocab_size, block_size, embed_dim, hidden_size, num_layers, dropout)
