"""Seeding, and what aicompute promises about determinism.

**The guarantee.** On CPU, the same seed gives the same result, bit for bit: two calls of
:func:`~aicompute.train.loop.fit` (or :func:`~aicompute.train.api.train_model`) with the same seed, the same
inputs and the same model initialisation end with identical weights and identical metrics — provided they
run on the same torch build with the same number of intra-op threads (``torch.get_num_threads()``), since a
different thread count may split a reduction differently.

How it is kept:

* :func:`seed_everything` seeds every global generator a training run draws from — Python's ``random``,
  NumPy's legacy global generator, and torch's CPU (and, when present, CUDA) generators — so weight
  initialisation, dropout and random augmentation repeat;
* data order never depends on the global generators: shuffling draws from its own ``torch.Generator``
  made by :func:`make_generator`, so a callback that consumes random numbers does not change which examples
  form a batch.

On GPUs, some kernels (atomics in scatter/index_add, cuDNN algorithm search) are not deterministic;
``seed_everything(seed, deterministic=True)`` asks torch for deterministic algorithms. That switch is
process-wide, so it is only flipped when asked for, and it makes a non-deterministic kernel raise instead
of running.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from aicompute.errors import AicomputeError

__all__ = ["seed_everything", "make_generator", "MAX_SEED"]

MAX_SEED = 2**32 - 1
"""Largest accepted seed: NumPy's legacy generator takes seeds in ``[0, 2**32)``."""


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise AicomputeError(f"seed must be an integer, got {seed!r} ({type(seed).__name__})")
    if not 0 <= seed <= MAX_SEED:
        raise AicomputeError(f"seed must be in [0, {MAX_SEED}], got {seed}")
    return seed


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all CUDA devices).

    ``deterministic=True`` also calls ``torch.use_deterministic_algorithms(True)`` and turns off cuDNN
    benchmarking — both process-wide — for bit-identical results on GPUs. Returns ``seed``.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    return seed


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU ``torch.Generator`` for data order: seeded with ``seed``, or from OS entropy when ``None``."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(_check_seed(seed))
    return generator
