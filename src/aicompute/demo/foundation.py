"""Records for the foundation chapters of the tour: the perceptron lesson and the recurrent-cell check.

Both are computed now, from the library's own code, and returned as result dataclasses with ``to_dict()``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from aicompute.nn.perceptron import Perceptron
from aicompute.nn.recurrent import GRU, LSTM, RNN

__all__ = ["PerceptronLesson", "perceptron_lesson", "RecurrentCheck", "recurrent_check"]

_CORNERS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
# Boolean functions of two inputs, labels in {−1, +1}: AND and OR are linearly separable, XOR is not.
_PROBLEMS = {
    "AND": ([-1, -1, -1, 1], True),
    "OR": ([-1, 1, 1, 1], True),
    "XOR": ([-1, 1, 1, -1], False),
}


@dataclass(frozen=True)
class PerceptronProblem:
    name: str
    separable: bool
    converged: bool
    mistakes: list[int]
    weights: list[float]
    bias: float
    train_accuracy: float


@dataclass(frozen=True)
class PerceptronLesson:
    epochs: int
    problems: list[PerceptronProblem]

    def to_dict(self) -> dict:
        return {"kind": "perceptron-lesson", "epochs": self.epochs, "problems": [asdict(p) for p in self.problems]}


def perceptron_lesson(epochs: int = 50) -> PerceptronLesson:
    """Run the mistake-driven perceptron on AND, OR and XOR for up to ``epochs`` epochs each."""
    problems = []
    for name, (labels, separable) in _PROBLEMS.items():
        y = torch.tensor(labels, dtype=torch.float64)
        p = Perceptron(lr=1.0)
        history = p.fit(_CORNERS, y, epochs=epochs)
        accuracy = float((p.predict(_CORNERS) == y).double().mean())
        problems.append(PerceptronProblem(name, separable, history.converged, list(history.mistakes),
                                          [float(w) for w in p.weight_], float(p.bias_), accuracy))
    return PerceptronLesson(epochs, problems)


@dataclass(frozen=True)
class CellCheck:
    cell: str
    max_abs_diff: float
    ours_ms_per_step: float
    torch_ms_per_step: float
    ratio: float


@dataclass(frozen=True)
class RecurrentCheck:
    batch: int
    steps: int
    input_size: int
    hidden_size: int
    repeats: int
    cells: list[CellCheck]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = "recurrent-check"
        return d


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def recurrent_check(
    *, batch: int = 32, steps: int = 28, input_size: int = 28, hidden_size: int = 128, repeats: int = 10,
    seed: int = 0,
) -> RecurrentCheck:
    """Our RNN/LSTM/GRU (from the equations) against torch's fused layers with the same weights:
    largest output difference and time per step (median of ``repeats`` forward passes, no grad)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, input_size := input_size, generator=gen)
    cells = []
    for name, ours_cls, torch_cls in (("RNN", RNN, nn.RNN), ("LSTM", LSTM, nn.LSTM), ("GRU", GRU, nn.GRU)):
        torch.manual_seed(seed)
        reference = torch_cls(input_size, hidden_size, batch_first=True)
        ours = ours_cls.from_torch(reference)
        with torch.no_grad():
            diff = float((ours(x)[0] - reference(x)[0]).abs().max())
            ours_ms = _median_ms(lambda: ours(x), repeats) / steps
            torch_ms = _median_ms(lambda: reference(x), repeats) / steps
        cells.append(CellCheck(name, diff, ours_ms, torch_ms, ours_ms / torch_ms))
    return RecurrentCheck(batch, steps, input_size, hidden_size, repeats, cells)
