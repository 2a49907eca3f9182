"""Train/eval mode that is put back exactly as it was.

``module.eval()`` then ``module.train()`` is not a restore: a model whose submodules were in mixed modes
(a frozen BatchNorm in eval inside a training model) comes back all in train mode. These helpers record
every submodule's flag and restore each one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["preserve_modes", "eval_mode"]


@contextlib.contextmanager
def preserve_modes(module: nn.Module) -> Iterator[nn.Module]:
    """Restore the train/eval flag of ``module`` and every submodule on exit (whatever the block did)."""
    modes = [(m, m.training) for m in module.modules()]
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block, then restore every submodule's flag."""
    with preserve_modes(module):
        module.eval()
        yield module
