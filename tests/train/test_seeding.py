import random

import numpy as np
import pytest
import torch

from aicompute.checks import MAX_SEED
from aicompute.errors import AicomputeError
from aicompute.train.seeding import seed_everything, seeded


def _draw() -> tuple[float, float, torch.Tensor]:
    return random.random(), float(np.random.rand()), torch.rand(4)


def _same(a, b) -> bool:
    return a[:2] == b[:2] and torch.equal(a[2], b[2])


def test_same_seed_repeats_every_global_generator():
    seed_everything(123)
    first = _draw()
    seed_everything(123)
    assert _same(first, _draw())


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
    assert _same(ours, _draw())


@pytest.mark.parametrize("bad", [-1, MAX_SEED + 1, 1.5, "3", True])
def test_bad_seeds_are_refused(bad):
    with pytest.raises(AicomputeError, match="seed must be"):
        seed_everything(bad)
    with pytest.raises(AicomputeError, match="seed must be"):
        with seeded(bad):
            pass


def test_largest_seed_is_accepted():
    assert seed_everything(MAX_SEED) == MAX_SEED


def test_seeded_block_draws_what_seed_everything_gives():
    seed_everything(31)
    reference = _draw()
    random.seed(0)  # some other state outside
    with seeded(31):
        inside = _draw()
    assert _same(inside, reference)


def test_seeded_restores_every_generator_afterwards():
    seed_everything(5)
    expected = _draw()
    seed_everything(5)
    with seeded(99):
        _draw()
        _draw()
    assert _same(_draw(), expected)  # the caller's streams carry on as if the block had not run


def test_seeded_restores_after_an_exception():
    seed_everything(5)
    expected = _draw()
    seed_everything(5)
    with pytest.raises(RuntimeError, match="inside"):
        with seeded(1):
            _draw()
            raise RuntimeError("inside")
    assert _same(_draw(), expected)


def test_seeded_none_neither_seeds_nor_restores():
    seed_everything(8)
    first = _draw()
    seed_everything(8)
    with seeded(None):
        assert _same(_draw(), first)  # the caller's stream, unseeded
    assert not _same(_draw(), first)  # and it advanced


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
    with seeded(0):
        pass
    assert torch.are_deterministic_algorithms_enabled() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_seeded_restores_the_cuda_generators_too():
    torch.cuda.manual_seed_all(3)
    expected = torch.rand(3, device="cuda")
    torch.cuda.manual_seed_all(3)
    with seeded(1):
        inside = torch.rand(3, device="cuda")
    assert torch.equal(torch.rand(3, device="cuda"), expected)
    torch.cuda.manual_seed_all(1)
    assert torch.equal(torch.rand(3, device="cuda"), inside)  # inside, CUDA was seeded too
