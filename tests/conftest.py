"""Suite-wide settings: one intra-op thread per test process.

`make test` runs pytest with two xdist workers on two cores; torch's default of one thread per core in each
worker would oversubscribe the machine and make the suite several times slower.
"""

import contextlib
import signal

import pytest
import torch

torch.set_num_threads(1)


@contextlib.contextmanager
def hard_limit(seconds: int):
    """Fail, never hang: SIGALRM interrupts a stuck call (a launch's ``finally`` then kills its ranks)."""

    def expire(signum, frame):
        raise TimeoutError(f"ran past its hard limit of {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def time_limit():
    """``with time_limit(seconds):`` — the :func:`hard_limit` context, for tests that spawn processes."""
    return hard_limit


@pytest.fixture
def two_minute_limit():
    """Every test using it fails after 120 s instead of hanging (pytest-timeout is not installed)."""
    with hard_limit(120):
        yield
