"""Helpers shared by the zoo model tests.

With ``--import-mode=importlib`` a conftest is not importable by name, so each helper is handed to the tests
as a session fixture that returns the function (``def test_x(output_shapes): output_shapes(model, x, names)``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

OutputShapes = Callable[[nn.Module, torch.Tensor, list[str]], dict[str, tuple[int, ...]]]


def _output_shapes(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of each named submodule for one forward pass of ``x``."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_hook(lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:])))
        for n in names
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


@pytest.fixture(scope="session")
def output_shapes() -> OutputShapes:
    """``output_shapes(model, x, names)``: ``{name: output shape without the batch dim}`` after ``model(x)``."""
    return _output_shapes
