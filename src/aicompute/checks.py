"""Argument checks shared by every module: each raises ``AicomputeError`` naming the argument, the value
it got and what would be right. One place, so every message reads the same."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from aicompute.errors import AicomputeError

__all__ = ["positive_int", "non_negative_int", "positive_number", "probability", "seed_value", "did_you_mean", "MAX_SEED"]

MAX_SEED = 2**32 - 1
"""Largest seed accepted everywhere (NumPy's global generator takes 32-bit seeds)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an integer ≥ 1."""
    if not _is_int(value) or value < 1:
        raise AicomputeError(f"{name} must be a positive integer, got {value!r}")
    return value


def non_negative_int(name: str, value: object) -> int:
    """``value`` if it is an integer ≥ 0."""
    if not _is_int(value) or value < 0:
        raise AicomputeError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def positive_number(name: str, value: object) -> float:
    """``value`` if it is a real number > 0 (a width multiplier, a learning rate)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise AicomputeError(f"{name} must be > 0, got {value!r}")
    return float(value)


def probability(name: str, value: object, *, allow_one: bool = False) -> float:
    """``value`` if it is a number in [0, 1) (or [0, 1] with ``allow_one``), e.g. a dropout rate."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (0.0 <= value <= 1.0 if allow_one else 0.0 <= value < 1.0):
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise AicomputeError(f"{name} must be a probability in {bound}, got {value!r}")
    return float(value)


def seed_value(seed: object) -> int:
    """``seed`` if it is an integer in [0, 2³² − 1]."""
    if not _is_int(seed):
        raise AicomputeError(f"seed must be an integer, got {seed!r} ({type(seed).__name__})")
    if not 0 <= seed <= MAX_SEED:
        raise AicomputeError(f"seed must be in [0, {MAX_SEED}], got {seed}")
    return seed


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` when ``name`` is close to one of ``known``, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
