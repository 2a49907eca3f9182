import pytest

from aicompute import AicomputeError
from aicompute.checks import MAX_SEED, did_you_mean, non_negative_int, positive_int, probability, seed_value


def test_positive_and_non_negative_ints():
    assert positive_int("n", 3) == 3
    assert non_negative_int("n", 0) == 0
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(AicomputeError, match=r"^n must be a positive integer, got "):
            positive_int("n", bad)
    for bad in (-1, 0.0, False):
        with pytest.raises(AicomputeError, match="non-negative integer"):
            non_negative_int("n", bad)


def test_probability_bounds():
    assert probability("dropout", 0) == 0.0 and probability("dropout", 0.5) == 0.5
    assert probability("p", 1.0, allow_one=True) == 1.0
    for bad in (1.0, -0.1, 1.5, True, "0.1"):
        with pytest.raises(AicomputeError, match=r"dropout must be a probability in \[0, 1\)"):
            probability("dropout", bad)


def test_seed_range():
    assert seed_value(0) == 0 and seed_value(MAX_SEED) == MAX_SEED == 4_294_967_295
    for bad in (-1, MAX_SEED + 1):
        with pytest.raises(AicomputeError, match=r"seed must be in \[0, 4294967295\]"):
            seed_value(bad)
    with pytest.raises(AicomputeError, match="seed must be an integer"):
        seed_value(1.0)


def test_did_you_mean():
    assert did_you_mean("resnet5", ["resnet18", "resnet50", "alexnet"]) == " (did you mean 'resnet50'?)"
    assert did_you_mean("zzz", ["alexnet"]) == ""


def test_positive_number():
    from aicompute.checks import positive_number

    assert positive_number("width_mult", 0.5) == 0.5 and positive_number("lr", 2) == 2.0
    for bad in (0, -1.0, float("nan"), True, "1"):
        with pytest.raises(AicomputeError, match=r"^width_mult must be > 0, got "):
            positive_number("width_mult", bad)
