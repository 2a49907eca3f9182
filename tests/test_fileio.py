import os

import pytest

from aicompute import AicomputeError

from aicompute.fileio import atomic_write, atomic_write_bytes, atomic_write_text, cache_dir


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(path.parent) == ["f.txt"]  # no temp file left behind


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"good")

    def half_then_fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AICOMPUTE_CACHE", str(tmp_path / "c"))
    assert cache_dir("x") == tmp_path / "c" / "x"
    assert (tmp_path / "c" / "x").is_dir()
    monkeypatch.delenv("AICOMPUTE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "aicompute"


def test_written_file_has_the_permissions_of_an_ordinary_file(tmp_path):
    path = atomic_write_text(tmp_path / "p.txt", "x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # open() applies the process umask
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_unwritable_targets_are_user_errors(tmp_path):
    with pytest.raises(AicomputeError, match="it is a folder"):
        atomic_write_text(tmp_path, "x")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AicomputeError, match="cannot write .*writable folder"):
        atomic_write_text(blocker / "child.txt", "x")
