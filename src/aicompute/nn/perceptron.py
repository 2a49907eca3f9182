"""Rosenblatt's perceptron trained by the classic mistake-driven rule, as the seed text states it.

Model: y = sign(wᵀx + b) with labels in {−1, +1} and sign(0) = +1 (the seed's convention).

Rule (stochastic gradient descent on the perceptron loss L = −Σ_{mistakes} yᵢ(wᵀxᵢ + b)): visit the
examples in turn; when yᵢ(wᵀxᵢ + b) ≤ 0 — a mistake — update

    w ← w + η yᵢ xᵢ,    b ← b + η yᵢ.

A point exactly on the boundary counts as a mistake, so starting from w = 0, b = 0 the first example is
always learned from, and an epoch without a mistake means every point lies strictly on its own side.
On a linearly separable set the rule stops after at most (R/γ)² mistakes (Novikoff, 1962), R the largest
‖(xᵢ, 1)‖ and γ the margin of any separating (w*, b*) with ‖(w*, b*)‖ = 1. On a set that is not separable
(XOR) it never has a mistake-free epoch and cycles forever.

Arithmetic is in float64 on the CPU; the class follows scikit-learn's estimator habits (learned state ends in
``_``), but :meth:`Perceptron.fit` returns its :class:`PerceptronHistory`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from aicompute.checks import positive_int, positive_number
from aicompute.errors import AicomputeError

__all__ = ["Perceptron", "PerceptronHistory"]


@dataclass(frozen=True)
class PerceptronHistory:
    """What :meth:`Perceptron.fit` did."""

    mistakes: list[int]
    """Mistakes (= updates) in each epoch run, in order."""
    converged: bool
    """True when the last epoch run had no mistake (training stops there)."""

    @property
    def epochs(self) -> int:
        return len(self.mistakes)

    @property
    def total_mistakes(self) -> int:
        return sum(self.mistakes)

    def to_dict(self) -> dict:
        return {**asdict(self), "epochs": self.epochs, "total_mistakes": self.total_mistakes}


class Perceptron:
    """Binary linear classifier sign(wᵀx + b) trained by the perceptron rule (module docstring).

    ``lr`` is η (with w and b starting at 0, any η > 0 makes the same mistakes: the weights only scale).
    ``shuffle=True`` visits the examples in a new random order each epoch, drawn from ``seed``.
    """

    def __init__(self, lr: float = 1.0, *, shuffle: bool = False, seed: int = 0) -> None:
        positive_number("perceptron learning rate", lr)
        self.lr = lr
        self.shuffle = shuffle
        self.seed = seed
        self.weight_: Tensor | None = None
        self.bias_: float = 0.0

    def fit(self, X: Tensor, y: Tensor, epochs: int = 100) -> PerceptronHistory:
        """Train from w = 0, b = 0 for at most ``epochs`` passes; stop after the first mistake-free one.

        X: (N, D) features, y: (N,) labels in {−1, +1}.
        """
        X, y = self._check(X, y)
        positive_int("epochs", epochs)
        w = torch.zeros(X.shape[1], dtype=torch.float64)
        b = 0.0
        gen = torch.Generator().manual_seed(self.seed)
        mistakes: list[int] = []
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=gen) if self.shuffle else torch.arange(len(y))
            count = 0
            for i in order.tolist():
                yi = float(y[i])
                if yi * (float(w @ X[i]) + b) <= 0:  # a mistake (or on the boundary)
                    w += self.lr * yi * X[i]
                    b += self.lr * yi
                    count += 1
            mistakes.append(count)
            if count == 0:
                break
        self.weight_, self.bias_ = w, b
        return PerceptronHistory(mistakes=mistakes, converged=mistakes[-1] == 0)

    def decision_function(self, X: Tensor) -> Tensor:
        """wᵀx + b for each row of X: (N,) float64."""
        if self.weight_ is None:
            raise AicomputeError("this Perceptron is not fitted yet; call fit(X, y) first")
        X = torch.as_tensor(X, dtype=torch.float64)
        if X.dim() != 2 or X.shape[1] != self.weight_.shape[0]:
            raise AicomputeError(f"X must be (N, {self.weight_.shape[0]}), got {tuple(X.shape)}")
        return X @ self.weight_ + self.bias_

    def predict(self, X: Tensor) -> Tensor:
        """sign(wᵀx + b) with sign(0) = +1: (N,) int64 labels in {−1, +1}."""
        score = self.decision_function(X)
        return torch.where(score >= 0, 1, -1)

    @staticmethod
    def _check(X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        X = torch.as_tensor(X, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.float64)
        if X.dim() != 2 or y.dim() != 1 or X.shape[0] != y.shape[0] or len(y) == 0:
            raise AicomputeError(
                f"perceptron needs X (N, D) and y (N,) with N >= 1, got X {tuple(X.shape)} and y {tuple(y.shape)}"
            )
        if not bool(((y == 1) | (y == -1)).all()):
            raise AicomputeError(f"perceptron labels must be -1 or +1, got values {sorted(set(y.tolist()))[:5]}")
        return X, y
