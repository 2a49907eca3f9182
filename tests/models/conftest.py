"""Helpers shared by the zoo model tests.

With ``--import-mode=importlib`` a conftest is not importable by name, so each helper is handed to the tests
as a session fixture that returns the function (``def test_x(output_shapes): output_shapes(model, x, names)``).
The ``check_*`` helpers assert; the others return what they measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aicompute.data.info import DatasetInfo
from aicompute.models import get_model

OutputShapes = Callable[[nn.Module, torch.Tensor, list[str]], dict[str, tuple[int, ...]]]
Size = int | tuple[int, int]


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


def _shapes_at_224(model: nn.Module, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Check that a 1000-class ``model`` maps one meta 3×224×224 image to ``(1, 1000)``; then its
    ``output_shapes`` for ``names`` on that image."""
    x = torch.empty(1, 3, 224, 224, device="meta")
    assert model(x).shape == (1, 1000)
    return _output_shapes(model, x, names)


def _meta_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward of a meta input of ``shape`` (torch's FLOP count / 2)."""
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(shape, device="meta"))
    return counter.get_total_flops() // 2


def _check_image_logits(
    model: nn.Module, in_channels: int, size: Size, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` on a random batch of two ``in_channels × size`` images (an int size is square) and
    check for finite ``(2, num_classes)`` logits; returns ``(logits, batch)``."""
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(2, in_channels, h, w)
    out = model(x)
    assert out.shape == (2, num_classes) and torch.isfinite(out).all()
    return out, x


def _check_trains_on_small_images(name: str, in_channels: int, size: Size) -> tuple[nn.Module, torch.Tensor]:
    """Build zoo model ``name`` for 10 classes under seed 0, check its logits on a random batch (as
    ``check_image_logits``) and that a backward pass reaches every parameter; returns ``(model, batch)``."""
    torch.manual_seed(0)
    model = get_model(name, num_classes=10, in_channels=in_channels, image_size=size)
    out, x = _check_image_logits(model, in_channels, size, 10)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    return model, x


def _next_token_losses(
    model: nn.Module, tokens: torch.Tensor, optimizer: torch.optim.Optimizer, steps: int
) -> list[float]:
    """Train language ``model`` to predict ``tokens`` ``(B, T)`` one ahead, full batch, for ``steps`` steps;
    the cross-entropy of each step, before its update."""
    x, y = tokens[:, :-1], tokens[:, 1:]
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _check_seeded_generation(
    model: nn.Module, prompt: torch.Tensor, max_new_tokens: int, vocab_size: int, seeds: Sequence[int]
) -> torch.Tensor:
    """Check ``model.generate``: the prompt kept as the prefix, ``max_new_tokens`` more ids in the vocabulary,
    the same tokens again under the same generator seed ``seeds[0]`` and others under ``seeds[1]``.
    Returns the first generation."""
    a, b, c = (
        model.generate(prompt, max_new_tokens, generator=torch.Generator().manual_seed(seed))
        for seed in (seeds[0], seeds[0], seeds[1])
    )
    assert a.shape == (prompt.shape[0], prompt.shape[1] + max_new_tokens)
    assert torch.equal(a[:, : prompt.shape[1]], prompt)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < vocab_size
    return a


@pytest.fixture(scope="session")
def chars_info() -> DatasetInfo:
    """A chars-like language-modelling data set: 32-token windows over a 70-character vocabulary."""
    return DatasetInfo(
        name="chars",
        task="language-modeling",
        input_shape=(32,),
        num_classes=70,
        input_dtype="int64",
        kind="tokens",
    )


@pytest.fixture(scope="session")
def output_shapes() -> OutputShapes:
    """``output_shapes(model, x, names)``: ``{name: output shape without the batch dim}`` after ``model(x)``."""
    return _output_shapes


@pytest.fixture(scope="session")
def shapes_at_224() -> Callable[[nn.Module, list[str]], dict[str, tuple[int, ...]]]:
    """``shapes_at_224(model, names)``: checks the ``(1, 1000)`` output at 3×224×224 on meta, then returns
    ``output_shapes`` for ``names``."""
    return _shapes_at_224


@pytest.fixture(scope="session")
def meta_macs() -> Callable[[nn.Module, tuple[int, ...]], int]:
    """``meta_macs(model, shape)``: multiply-accumulates of one forward of a meta tensor of ``shape``."""
    return _meta_macs


@pytest.fixture(scope="session")
def check_image_logits() -> Callable[[nn.Module, int, Size, int], tuple[torch.Tensor, torch.Tensor]]:
    """``check_image_logits(model, in_channels, size, num_classes)``: finite logits on a random batch of 2."""
    return _check_image_logits


@pytest.fixture(scope="session")
def check_trains_on_small_images() -> Callable[[str, int, Size], tuple[nn.Module, torch.Tensor]]:
    """``check_trains_on_small_images(name, in_channels, size)``: forward and backward of a 10-class model."""
    return _check_trains_on_small_images


@pytest.fixture(scope="session")
def next_token_losses() -> Callable[[nn.Module, torch.Tensor, torch.optim.Optimizer, int], list[float]]:
    """``next_token_losses(model, tokens, optimizer, steps)``: the loss of each full-batch training step."""
    return _next_token_losses


@pytest.fixture(scope="session")
def check_seeded_generation() -> Callable[[nn.Module, torch.Tensor, int, int, Sequence[int]], torch.Tensor]:
    """``check_seeded_generation(model, prompt, max_new_tokens, vocab_size, seeds)``: see the helper."""
    return _check_seeded_generation
