"""Atomic file writes and the user cache directory.

Nothing aicompute writes is ever left half-written: every file goes to a temporary sibling first and is
renamed into place (``os.replace`` is atomic on POSIX and Windows when both paths are on one filesystem).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from aicompute.errors import AicomputeError

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "cache_dir"]


def _read_umask() -> int:
    # os.umask can only be read by setting it; do that once, at import, not on every write (another
    # thread creating a file in between would get permissions from the temporary umask).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it to ``path``.

    If ``write`` raises, the temporary file is removed and ``path`` is left as it was. A path that is a
    folder, or whose folder cannot be created or written, is an ``AicomputeError``.
    """
    path = Path(path)
    if path.is_dir():
        raise AicomputeError(f"cannot write {str(path)!r}: it is a folder; pass a file path inside it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise AicomputeError(f"cannot write {str(path)!r}: {e.strerror or e}; pass a path in a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def cache_dir(*parts: str) -> Path:
    """The aicompute cache: ``$AICOMPUTE_CACHE``, else ``$XDG_CACHE_HOME/aicompute``, else
    ``~/.cache/aicompute``; ``parts`` name a subfolder. The folder is created if missing."""
    root = os.environ.get("AICOMPUTE_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "aicompute")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
