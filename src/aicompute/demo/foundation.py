"""Records for the foundation chapters of the tour: the perceptron lesson and the recurrent-cell check.

Both are computed now, from the library's own code, and returned as result dataclasses with ``to_dict()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from aicompute.nn.perceptron import Perceptron
from aicompute.nn.recurrent import GRU, LSTM, RNN
from aicompute.timing import median_ms

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
    """Largest |ours − torch| over the outputs of every step."""
    ours_ms_per_step: float
    torch_ms_per_step: float
    ratio: float
    """ours ÷ torch, forward."""
    ours_train_ms_per_step: float
    """Forward + backward."""
    torch_train_ms_per_step: float
    train_ratio: float


@dataclass(frozen=True)
class RecurrentCheck:
    batch: int
    steps: int
    input_size: int
    hidden_size: int
    repeats: int
    threads: int
    cells: list[CellCheck]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = "recurrent-check"
        return d


def recurrent_check(
    *, batch: int = 32, steps: int = 28, input_size: int = 28, hidden_size: int = 128, repeats: int = 10,
    seed: int = 0,
) -> RecurrentCheck:
    """Our RNN/LSTM/GRU (from the equations) against torch's fused layers with the same weights: the largest
    output difference, and the median time per step of a forward pass (no grad) and of forward + backward.

    Both layers run interleaved in this process on the same input. The caller's global RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x = torch.randn(batch, steps, input_size)
        cells = [_check_cell(name, torch_cls(input_size, hidden_size, batch_first=True), ours_cls, x, repeats)
                 for name, ours_cls, torch_cls in _CELLS]
    return RecurrentCheck(batch, steps, input_size, hidden_size, repeats, torch.get_num_threads(), cells)


_CELLS = (("RNN", RNN, nn.RNN), ("LSTM", LSTM, nn.LSTM), ("GRU", GRU, nn.GRU))


def _check_cell(name: str, reference: nn.Module, ours_cls: type, x: torch.Tensor, repeats: int) -> CellCheck:
    ours = ours_cls.from_torch(reference)
    steps = x.shape[1]

    def train_step(layer: nn.Module) -> None:
        layer.zero_grad(set_to_none=True)
        layer(x)[0].sum().backward()

    with torch.no_grad():
        diff = float((ours(x)[0] - reference(x)[0]).abs().max())
        fwd_ours = median_ms(lambda: ours(x), repeats=repeats, warmup=1) / steps
        fwd_torch = median_ms(lambda: reference(x), repeats=repeats, warmup=1) / steps
    train_ours = median_ms(lambda: train_step(ours), repeats=repeats, warmup=1) / steps
    train_torch = median_ms(lambda: train_step(reference), repeats=repeats, warmup=1) / steps
    return CellCheck(name, diff, fwd_ours, fwd_torch, fwd_ours / fwd_torch, train_ours, train_torch,
                     train_ours / train_torch)
