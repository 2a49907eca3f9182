"""The per-mode piece that needs no ranks: ``wrap`` leaving the hand-synchronised modes' module as it is.
Each mode's synchronisation on live ranks (DDP's hook, FSDP's shards, the parameter server, local SGD's
averages) is checked in ``test_data_parallel.py`` against single-process training and hand byte counts."""

from __future__ import annotations

import torch
from torch import nn

from aicompute.parallel.dp_modes import wrap


def test_hand_synchronised_modes_keep_the_module():
    model = nn.Linear(3, 2)
    for mode in ("ps", "local-sgd"):
        assert wrap(model, mode, torch.device("cpu")) is model
