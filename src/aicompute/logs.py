"""Quieting a library's logger for one block, then putting its level back exactly as it was."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["quiet_logger"]


@contextlib.contextmanager
def quiet_logger(name: str | None, level: int = logging.ERROR) -> Iterator[logging.Logger]:
    """Raise logger ``name`` (``None``: the root logger) to ``level`` inside the block; restore it after."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield logger
    finally:
        logger.setLevel(before)
