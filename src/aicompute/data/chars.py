"""Chars: a character-level corpus made from this Python's own standard-library sources, for language models.

The corpus is the concatenation, in sorted file-name order, of the public top-level modules of the
standard library (``sysconfig.get_paths()["stdlib"]/*.py`` whose name starts with neither ``_`` nor
``test``; sub-packages such as ``test/`` and ``site-packages/`` are never read), cut at ``max_chars``
characters. Line endings are normalised to ``\\n``; every character other than printable ASCII, newline and
tab becomes the unknown symbol :data:`UNK`, so the vocabulary stays near 100 symbols. The same interpreter
always gives the same corpus; another Python version gives a slightly different one.

The vocabulary is the sorted set of the corpus's characters plus :data:`UNK` (:class:`CharVocab`). Corpus
and vocabulary are cached under ``cache_dir("chars")``: token ids as uint8 in an ``.npz`` and the vocabulary
as JSON, each written atomically; the JSON records the token count and a SHA-256 of the tokens, and a
cache that fails these checks is rebuilt.

Examples are windows of ``block_size`` tokens: input ``tokens[i : i + T]`` and target ``tokens[i + 1 : i + T
+ 1]`` (the next character at each position), both int64 ``(N, T)``, starting every ``stride`` tokens
(default ``stride = block_size``: non-overlapping windows). Training windows come from the first 90 % of
the corpus and test windows from the last 10 %, so no character is in both splits. ``inputs`` and
``targets`` are two views of one token tensor owned by the data set: do not write into them in place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import torch

from aicompute.checks import positive_int
from aicompute.data.base import AicomputeDataset, canonical_split
from aicompute.data.info import DatasetInfo
from aicompute.data.vocab import UNK, CharVocab
from aicompute.errors import AicomputeError
from aicompute.fileio import atomic_write, atomic_write_text, cache_dir

__all__ = ["DESCRIPTION", "TRAIN_FRACTION", "CharDataset", "source_files", "corpus_text", "corpus", "info",
           "load"]

TRAIN_FRACTION = 0.9
"""Share of the corpus (from its start) whose windows form the training split; the rest is the test split."""
DESCRIPTION = "characters of the Python standard library's sources, next-character prediction, ~100 symbols"
_FORMAT = 1  # bump when the cached files' layout or the text normalisation changes
_OUTSIDE = re.compile(r"[^\t\n\x20-\x7e]")  # anything but tab, newline and printable ASCII


class CharDataset(AicomputeDataset):
    """An :class:`AicomputeDataset` of token windows that also carries its :class:`CharVocab` (``.vocab``)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, *, info: DatasetInfo, split: str,
                 vocab: CharVocab):
        super().__init__(inputs, targets, info=info, split=split)
        self.vocab = vocab


def source_files() -> list[Path]:
    """The standard-library files the corpus is made of, in the order they are concatenated."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if not p.name.startswith(("_", "test")) and p.is_file())
    if not files:
        raise AicomputeError(f"the chars data set needs the standard library's .py sources, but {stdlib} "
                             "has none; use a Python installation that ships them")
    return files


def corpus_text(max_chars: int) -> str:
    """The corpus itself: normalised source text of :func:`source_files`, at most ``max_chars`` characters."""
    parts, total = [], 0
    for path in source_files():
        text = path.read_text(encoding="utf-8", errors="replace")  # text mode turns \r\n into \n
        parts.append(_OUTSIDE.sub(UNK, text))
        total += len(parts[-1])
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]


def _cache_paths(max_chars: int, folder: Path) -> tuple[Path, Path]:
    """``(tokens .npz, vocab .json)`` in ``folder``; the name hashes everything the corpus depends on."""
    sources = [(p.name, p.stat().st_size) for p in source_files()]
    key = {"format": _FORMAT, "python": sys.version.split()[0], "max_chars": max_chars, "sources": sources}
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return folder / f"chars-{digest}.npz", folder / f"chars-{digest}.json"


def _read(tokens_path: Path, vocab_path: Path) -> tuple[np.ndarray, CharVocab] | None:
    """The cached corpus, or ``None`` when missing, unreadable or inconsistent with its JSON record."""
    try:
        record = json.loads(vocab_path.read_text(encoding="utf-8"))
        vocab = CharVocab(record["chars"])
        with np.load(tokens_path, allow_pickle=False) as npz:
            tokens = npz["tokens"]
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, AicomputeError):
        return None  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
    ok = (
        tokens.dtype == np.uint8 and tokens.ndim == 1 and len(tokens) == record.get("num_tokens")
        and hashlib.sha256(tokens.tobytes()).hexdigest() == record.get("sha256")
        and (len(tokens) == 0 or int(tokens.max()) < len(vocab))
    )
    return (tokens, vocab) if ok else None


def _build(max_chars: int) -> tuple[np.ndarray, CharVocab]:
    """Read the sources and encode them: uint8 token ids ``(num_chars,)`` and the vocabulary."""
    text = corpus_text(max_chars)
    vocab = CharVocab(sorted(set(text) | {UNK}))
    return vocab.encode_numpy(text).astype(np.uint8), vocab  # at most 98 symbols: ids fit in a byte


@functools.lru_cache(maxsize=4)
def _corpus(max_chars: int, folder: str) -> tuple[np.ndarray, CharVocab]:
    """Tokens and vocabulary from the cache in ``folder`` (part of the key: a new ``$AICOMPUTE_CACHE`` is
    read afresh), built and written when missing or corrupt. The tokens array is never handed out."""
    tokens_path, vocab_path = _cache_paths(max_chars, Path(folder))
    cached = _read(tokens_path, vocab_path)
    if cached is not None:
        return cached
    tokens, vocab = _build(max_chars)
    atomic_write(tokens_path, lambda f: np.savez(f, tokens=tokens))
    record = {"format": _FORMAT, "chars": list(vocab.chars), "num_tokens": len(tokens),
              "sha256": hashlib.sha256(tokens.tobytes()).hexdigest()}
    atomic_write_text(vocab_path, json.dumps(record, ensure_ascii=True))  # written last: it vouches for both
    return tokens, vocab


def _check_positive(**values: int | None) -> None:
    """Each value that is not ``None`` must be a positive integer."""
    for name, value in values.items():
        if value is not None:
            positive_int(f"chars: {name}", value)


def _check(block_size: int, max_chars: int, stride: int | None) -> None:
    """Every option positive, and ``max_chars`` large enough for one test window of ``block_size``."""
    _check_positive(block_size=block_size, max_chars=max_chars, stride=stride)
    test_chars = max_chars - int(max_chars * TRAIN_FRACTION)
    if test_chars < block_size + 1:  # one window needs block_size inputs plus one more target
        need = int(np.ceil((block_size + 1) / (1 - TRAIN_FRACTION))) + 1
        raise AicomputeError(f"chars: max_chars={max_chars} leaves {test_chars} test characters, fewer than "
                             f"block_size + 1 = {block_size + 1}; use max_chars >= {need} or a smaller block_size")


def _info(block_size: int, vocab: CharVocab) -> DatasetInfo:
    return DatasetInfo(name="chars", task="language-modeling", input_shape=(block_size,), num_classes=len(vocab),
                       input_dtype="int64", kind="tokens")


def corpus(max_chars: int = 1_000_000) -> tuple[torch.Tensor, CharVocab]:
    """The whole corpus as int64 token ids ``(num_chars,)`` (a fresh copy) and its vocabulary."""
    _check_positive(max_chars=max_chars)
    tokens, vocab = _corpus(max_chars, str(cache_dir("chars")))
    return torch.tensor(tokens, dtype=torch.int64), vocab


def info(block_size: int = 64, max_chars: int = 1_000_000, stride: int | None = None) -> DatasetInfo:
    """Shape and meaning; the vocabulary size needs the corpus, which is read from the cache (or built)."""
    _check(block_size, max_chars, stride)
    _, vocab = _corpus(max_chars, str(cache_dir("chars")))
    return _info(block_size, vocab)


def load(split: str = "train", *, seed: int = 0, block_size: int = 64, max_chars: int = 1_000_000,
         stride: int | None = None) -> CharDataset:
    """Windows of ``block_size`` characters from the ``split`` part of the corpus; ``seed`` is ignored."""
    split = canonical_split(split, "'chars'")
    _check(block_size, max_chars, stride)
    tokens, vocab = corpus(max_chars)
    cut = int(len(tokens) * TRAIN_FRACTION)
    part = tokens[:cut] if split == "train" else tokens[cut:]
    step = block_size if stride is None else stride
    if len(part) < block_size + 1:  # the stdlib is shorter than max_chars asked for
        raise AicomputeError(f"chars: the {split} split has {len(part)} characters, fewer than block_size + 1 "
                             f"= {block_size + 1}; use a smaller block_size")
    inputs = part[:-1].unfold(0, block_size, step)  # (N, T) view: row n is part[n*step : n*step + T]
    targets = part[1:].unfold(0, block_size, step)  # (N, T) view, shifted one character ahead
    return CharDataset(inputs, targets, info=_info(block_size, vocab), split=split, vocab=vocab)
