import time

import pytest

from aicompute import AicomputeError
from aicompute.timing import median_ms


def test_median_ms_counts_calls_and_measures_sleep():
    calls = []
    ms = median_ms(lambda: (calls.append(1), time.sleep(0.002)), repeats=5, warmup=2)
    assert len(calls) == 7
    assert 2.0 <= ms < 50.0  # slept 2 ms; generous upper bound for a loaded machine


def test_median_resists_one_outlier():
    delays = iter([0.0, 0.001, 0.001, 0.05, 0.001])
    assert median_ms(lambda: time.sleep(next(delays)), repeats=5, warmup=0) < 20.0


def test_bad_repeats():
    with pytest.raises(AicomputeError, match="repeats must be a positive integer"):
        median_ms(lambda: None, repeats=0)
