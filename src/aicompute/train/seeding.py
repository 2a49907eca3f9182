"""Seeding, and what aicompute promises about determinism.

**The guarantee.** On CPU, the same seed gives the same result, bit for bit: two calls of
:func:`~aicompute.train.loop.fit` (or :func:`~aicompute.train.api.train_model`) with the same seed, the same
inputs and the same model initialisation end with identical weights and identical metrics — provided they
run on the same torch build with the same number of intra-op threads (``torch.get_num_threads()``), since a
different thread count may split a reduction differently.

How it is kept:

* :func:`seeded` seeds every global generator a training run draws from — Python's ``random``, NumPy's
  legacy global generator, and torch's CPU (and, when present, CUDA) generators — for the length of a
  block, so weight initialisation, dropout and random augmentation repeat; on exit it puts every one of
  them back as it was. ``fit`` and ``train_model`` run inside it, so they leave the caller's random
  streams where they were: two models built after two seeded fits still get different initial weights;
* :func:`seed_everything` seeds the same generators for good — for a script's own set-up;
* data order never depends on the global generators: shuffling draws from its own ``torch.Generator``
  made by :func:`make_generator` (see :mod:`aicompute.data.loader`), so a callback that consumes random
  numbers does not change which examples form a batch.

Seeds are integers in [0, 2³² − 1] (:data:`aicompute.checks.MAX_SEED`, the range NumPy's global generator
takes). On GPUs, some kernels (atomics in scatter/index_add, cuDNN algorithm search) are not deterministic;
``seed_everything(seed, deterministic=True)`` asks torch for deterministic algorithms. That switch is
process-wide, so it is only flipped when asked for, and it makes a non-deterministic kernel raise instead
of running.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from aicompute.checks import seed_value
from aicompute.data.loader import make_generator

__all__ = ["seed_everything", "seeded", "make_generator"]


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all CUDA devices).

    ``deterministic=True`` also calls ``torch.use_deterministic_algorithms(True)`` and turns off cuDNN
    benchmarking — both process-wide — for bit-identical results on GPUs. Returns ``seed``.
    """
    seed = seed_value(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    return seed


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with every global generator seeded by ``seed``, then restore each one's state.

    Restored on any exit, exception included: Python's ``random``, NumPy's global generator, torch's CPU
    generator and every CUDA device's. ``seed=None`` does nothing: the block draws from (and advances) the
    caller's streams.
    """
    if seed is None:
        yield
        return
    seed = seed_value(seed)
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
        try:
            seed_everything(seed)
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
