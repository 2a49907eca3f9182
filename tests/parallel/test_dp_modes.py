"""The per-mode pieces that need no ranks: the ring's bytes per rank against the seed's closed form, and
``wrap`` leaving the hand-synchronised modes' module as it is. Each mode's synchronisation on live ranks
(DDP's hook, FSDP's shards, the parameter server, local SGD's averages) is checked in
``test_data_parallel.py`` against single-process training and hand byte counts."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from aicompute.parallel.collectives import chunk_bounds
from aicompute.parallel.dp_modes import ring_bytes_sent, wrap


@given(numel=st.integers(0, 10_000), p=st.integers(1, 9), element_size=st.sampled_from([1, 2, 4, 8]))
def test_ring_bytes_follow_the_closed_form(numel, p, element_size):
    sent = [ring_bytes_sent(numel, element_size, p, r) for r in range(p)]
    # every chunk travels p-1 hops in each of the two phases: 2(p-1)V over all ranks
    assert sum(sent) == 2 * (p - 1) * numel * element_size
    # each rank sends 2(p-1) chunks, each of floor or ceil of V/p elements
    lo, hi = numel // p, -(-numel // p)
    assert all(2 * (p - 1) * lo * element_size <= s <= 2 * (p - 1) * hi * element_size for s in sent)
    if numel % p == 0:
        assert set(sent) <= {2 * (p - 1) * numel // p * element_size}  # the seed's 2(p-1)V/p


def test_ring_bytes_of_a_hand_case():
    # 10 elements on 4 ranks: chunks of 3, 3, 2, 2 (chunk_bounds). Rank 0 sends chunks 3, 2, 1 while
    # reducing and 0, 3, 2 while gathering: 2 + 2 + 3 + 3 + 2 + 2 = 14 elements.
    assert chunk_bounds(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert ring_bytes_sent(10, 4, 4, 0) == 14 * 4


def test_hand_synchronised_modes_keep_the_module():
    model = nn.Linear(3, 2)
    for mode in ("ps", "local-sgd"):
        assert wrap(model, mode, torch.device("cpu")) is model
