import random

import numpy as np
import pytest
import torch

from aicompute.errors import AicomputeError
from aicompute.train.seeding import MAX_SEED, make_generator, seed_everything


def _draw() -> tuple[float, float, torch.Tensor]:
    return random.random(), float(np.random.rand()), torch.rand(4)


def test_same_seed_repeats_every_global_generator():
    seed_everything(123)
    first = _draw()
    seed_everything(123)
    second = _draw()
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2])


def test_different_seeds_differ_in_every_generator():
    seed_everything(1)
    a = _draw()
    seed_everything(2)
    b = _draw()
    assert a[0] != b[0] and a[1] != b[1] and not torch.equal(a[2], b[2])


def test_seed_matches_the_libraries_own_seeding():
    seed_everything(7)
    ours = _draw()
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    assert ours[:2] == _draw()[:2]


@pytest.mark.parametrize("bad", [-1, MAX_SEED + 1, 1.5, "3", True])
def test_bad_seeds_are_refused(bad):
    with pytest.raises(AicomputeError, match="seed must be"):
        seed_everything(bad)


def test_largest_seed_is_accepted():
    assert seed_everything(MAX_SEED) == MAX_SEED


def test_generator_is_reproducible_and_independent_of_global_state():
    a = torch.randperm(20, generator=make_generator(5))
    torch.manual_seed(999)
    torch.rand(100)  # consume global random numbers: the data order must not change
    b = torch.randperm(20, generator=make_generator(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.randperm(20, generator=make_generator(6)))


def test_unseeded_generator_differs_between_calls():
    draws = {tuple(torch.randperm(30, generator=make_generator(None)).tolist()) for _ in range(3)}
    assert len(draws) > 1


def test_deterministic_flag_switches_torch_to_deterministic_algorithms():
    before = torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.benchmark = benchmark


def test_without_the_flag_no_process_wide_switch_is_flipped():
    before = torch.are_deterministic_algorithms_enabled()
    seed_everything(0)
    assert torch.are_deterministic_algorithms_enabled() == before
