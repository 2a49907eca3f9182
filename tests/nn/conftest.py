"""Parameter-count helpers shared by the building-block tests.

With ``--import-mode=importlib`` a conftest is not importable by name, so each helper is handed to the tests
as a session fixture that returns the function (``def test_x(n_params): assert n_params(block) == ...``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from torch import nn


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


@pytest.fixture(scope="session")
def n_params() -> Callable[[nn.Module], int]:
    """``n_params(module)``: parameter elements of ``module`` (weights, biases, norm affines)."""
    return _n_params


@pytest.fixture(scope="session")
def conv_weights() -> Callable[[nn.Module], int]:
    """``conv_weights(module)``: elements of every ``nn.Conv2d`` weight under ``module`` (no biases)."""
    return _conv_weights
