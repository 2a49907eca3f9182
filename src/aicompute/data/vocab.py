"""A character vocabulary: text ↔ token ids, for character-level language models.

Token ids are positions in a sorted tuple of distinct characters. One of them is :data:`UNK`; encoding maps
every character the vocabulary lacks to it, so any text can be encoded and the ids always decode.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from aicompute.errors import AicomputeError

__all__ = ["UNK", "CharVocab"]

UNK = "\ufffd"
"""The unknown symbol (U+FFFD, the Unicode replacement character); sorts after all ASCII characters."""


class CharVocab:
    """Sorted distinct characters, including :data:`UNK`; id ``i`` is ``chars[i]``."""

    def __init__(self, chars: Iterable[str]):
        chars = tuple(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise AicomputeError("a CharVocab is made of single characters; got a non-character entry")
        if list(chars) != sorted(set(chars)):
            raise AicomputeError("a CharVocab's characters must be sorted and distinct; pass sorted(set(...))")
        if UNK not in chars:
            raise AicomputeError(f"a CharVocab must contain the unknown symbol UNK ({UNK!r})")
        self.chars: tuple[str, ...] = chars
        self.unk_id: int = chars.index(UNK)
        self._codepoints = np.array([ord(c) for c in chars], dtype=np.int64)  # sorted, as chars are

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab(size={len(self)}, chars={''.join(self.chars)!r})"

    def encode_numpy(self, text: str) -> np.ndarray:
        """Token ids of ``text`` as an int64 array ``(len(text),)``; unknown characters → ``unk_id``."""
        codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)  # (L,)
        pos = np.searchsorted(self._codepoints, codepoints)  # where each would sit in the sorted vocab
        pos_in = np.minimum(pos, len(self) - 1)
        known = (pos < len(self)) & (self._codepoints[pos_in] == codepoints)
        return np.where(known, pos_in, self.unk_id).astype(np.int64)

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text`` as an int64 tensor ``(len(text),)``; unknown characters → ``unk_id``."""
        return torch.from_numpy(self.encode_numpy(text))

    def decode(self, ids: torch.Tensor | np.ndarray | Sequence[int]) -> str:
        """The text of one sequence of token ids (a 1-D tensor, array or list of ints)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        arr = np.asarray(ids)
        if arr.ndim > 1:
            raise AicomputeError(f"decode takes one sequence of ids (1-D), got shape {arr.shape}; "
                                 "decode each row separately")
        arr = arr.reshape(-1)
        if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= len(self)):
            raise AicomputeError(f"token ids must be integers in 0..{len(self) - 1} for this vocabulary of "
                                 f"{len(self)} characters")
        return "".join(self.chars[i] for i in arr.tolist())
