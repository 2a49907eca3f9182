"""The perceptron rule: a hand-traced run, convergence within Novikoff's bound, and failure on XOR."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.errors import AicomputeError
from aicompute.nn.perceptron import Perceptron

XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = torch.tensor([-1, 1, 1, -1])


def _separable(seed: int, n: int = 200, d: int = 5, margin: float = 0.1):
    """Points labelled by a hidden unit-norm (w*, b*), keeping those at least ``margin`` from its plane."""
    gen = torch.Generator().manual_seed(seed)
    w_b = torch.randn(d + 1, generator=gen, dtype=torch.float64)
    w_b /= w_b.norm()
    X = torch.rand(4 * n, d, generator=gen, dtype=torch.float64) * 4 - 2
    score = X @ w_b[:d] + w_b[d]
    keep = score.abs() >= margin
    X, score = X[keep][:n], score[keep][:n]
    return X, torch.where(score > 0, 1, -1), w_b


def test_hand_traced_run_on_and():
    # AND with y ∈ {−1, +1}, η = 1, visiting the rows in order from w = (0, 0), b = 0. Epoch 1: row 0 has
    # score 0 (a mistake): b = −1; row 3 scores −1: w = (1, 1), b = 0. ... traced by hand to epoch 9.
    X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([-1, -1, -1, 1])
    p = Perceptron()
    history = p.fit(X, y, epochs=50)
    assert history.mistakes == [2, 3, 3, 2, 2, 3, 2, 1, 0]
    assert history.converged and history.epochs == 9 and history.total_mistakes == 18
    assert p.weight_.tolist() == [3.0, 2.0] and p.bias_ == -4.0
    assert p.predict(X).tolist() == y.tolist()


@settings(deadline=None, max_examples=8)
@given(seed=st.integers(0, 10_000), shuffle=st.booleans())
def test_separable_set_is_learned_within_novikoffs_bound(seed, shuffle):
    X, y, w_b = _separable(seed)
    p = Perceptron(shuffle=shuffle, seed=seed)
    history = p.fit(X, y, epochs=2_000)
    assert history.converged and history.mistakes[-1] == 0
    assert all(m > 0 for m in history.mistakes[:-1])
    assert torch.equal(p.predict(X), y)
    assert (y * p.decision_function(X) > 0).all()  # strictly on the right side, not just sign(0) = +1
    # Novikoff: mistakes <= (R/γ)², R = max ‖(x, 1)‖, γ = min y(w*ᵀx + b*) for the unit-norm (w*, b*).
    Xa = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], dim=1)
    R, gamma = Xa.norm(dim=1).max(), (y * (Xa @ w_b)).min()
    assert history.total_mistakes <= (R / gamma) ** 2


def test_learning_rate_only_scales_the_weights():
    X, y, _ = _separable(3, n=60, margin=0.2)
    a, b = Perceptron(lr=1.0), Perceptron(lr=0.25)
    history = a.fit(X, y)
    assert history.converged and b.fit(X, y) == history
    torch.testing.assert_close(b.weight_, 0.25 * a.weight_, rtol=1e-12, atol=0)
    assert b.bias_ == pytest.approx(0.25 * a.bias_, rel=1e-12)


def test_shuffled_runs_repeat_with_the_same_seed():
    X, y, _ = _separable(4)
    first = Perceptron(shuffle=True, seed=11).fit(X, y)
    assert Perceptron(shuffle=True, seed=11).fit(X, y) == first


def _xor_scores(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Scores wᵀx + b of the four XOR points for each of K (w, b): (K, 4), rows in XOR_X order."""
    return w @ XOR_X.double().T + b[:, None]


def _all_correct(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sign rule with sign(0) = +1: correct iff s >= 0 for the +1 points, s < 0 for the −1 points."""
    pos = labels == 1
    return (scores[:, pos] >= 0).all(dim=1) & (scores[:, ~pos] < 0).all(dim=1)


def test_perceptron_never_learns_xor():
    p = Perceptron()
    history = p.fit(XOR_X, XOR_Y, epochs=500)
    assert not history.converged and history.epochs == 500
    assert min(history.mistakes) >= 1  # not one mistake-free epoch
    assert (p.predict(XOR_X) != XOR_Y).any()


def test_no_linear_classifier_separates_xor():
    # For any (w, b): s(0,1) + s(1,0) = (w₂ + b) + (w₁ + b) = s(0,0) + s(1,1). All four right would need
    # s(0,1), s(1,0) >= 0 and s(0,0), s(1,1) < 0, i.e. a sum >= 0 equal to a sum < 0: a contradiction.
    p = Perceptron()
    p.fit(XOR_X, XOR_Y, epochs=50)
    gen = torch.Generator().manual_seed(0)
    w = torch.cat([p.weight_[None, :], torch.randn(20_000, 2, generator=gen, dtype=torch.float64)])
    b = torch.cat([torch.tensor([p.bias_], dtype=torch.float64), torch.randn(20_000, generator=gen, dtype=torch.float64)])
    s = _xor_scores(w, b)
    torch.testing.assert_close(s[:, 1] + s[:, 2], s[:, 0] + s[:, 3], rtol=1e-12, atol=1e-12)
    assert not _all_correct(s, XOR_Y).any()
    # The check is not vacuous: with AND's labels, the separator x₁ + x₂ − 1.5 passes it.
    and_scores = _xor_scores(torch.tensor([[1.0, 1.0]], dtype=torch.float64), torch.tensor([-1.5], dtype=torch.float64))
    assert _all_correct(and_scores, torch.tensor([-1, -1, -1, 1])).all()


def test_history_to_dict():
    history = Perceptron().fit(XOR_X, XOR_Y, epochs=3)
    d = history.to_dict()
    assert d == {"mistakes": history.mistakes, "converged": False, "epochs": 3, "total_mistakes": sum(history.mistakes)}


def test_bad_inputs_are_user_errors():
    with pytest.raises(AicomputeError, match="labels must be -1 or \\+1"):
        Perceptron().fit(XOR_X, torch.tensor([0, 1, 1, 0]))
    with pytest.raises(AicomputeError, match=r"X \(N, D\) and y \(N,\)"):
        Perceptron().fit(XOR_X, torch.tensor([1, -1]))
    with pytest.raises(AicomputeError, match="not fitted yet"):
        Perceptron().predict(XOR_X)
    with pytest.raises(AicomputeError, match="learning rate must be > 0"):
        Perceptron(lr=0.0)
    with pytest.raises(AicomputeError, match="epochs must be a positive integer, got 0"):
        Perceptron().fit(XOR_X, XOR_Y, epochs=0)
