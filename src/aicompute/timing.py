"""Wall-clock timing the way every aicompute figure is measured: warm-up calls, then the median of
repeated runs (these machines are shared and noisy; a median resists the outliers a mean does not)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from aicompute.checks import non_negative_int, positive_int

__all__ = ["median_ms"]


def median_ms(fn: Callable[[], Any], *, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls, after ``warmup`` untimed calls."""
    positive_int("repeats", repeats)
    non_negative_int("warmup", warmup)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
