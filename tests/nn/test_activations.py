"""Activations against their closed forms, written here independently with the math module."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.errors import AicomputeError
from aicompute.nn import activations as A

# float64 inputs; |x| <= 30 keeps e^x and e^-x finite in every closed form below.
xs = st.lists(st.floats(-30, 30, allow_nan=False, allow_infinity=False), min_size=1, max_size=40)
gammas = st.floats(0.0, 3.0)
settings.register_profile("activations", deadline=None, max_examples=60)
settings.load_profile("activations")


def _logistic(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _gelu_exact(v: float) -> float:
    return v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))


def _gelu_tanh(v: float) -> float:
    return 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))


CLOSED_FORMS = {
    "sigmoid": (A.sigmoid, _logistic),
    "tanh": (A.tanh, lambda v: (math.exp(v) - math.exp(-v)) / (math.exp(v) + math.exp(-v))),
    "relu": (A.relu, lambda v: v if v >= 0 else 0.0),
    "softplus": (A.softplus, lambda v: math.log1p(math.exp(v))),
    "gelu": (A.gelu, _gelu_exact),
    "gelu_tanh": (lambda x: A.gelu(x, "tanh"), _gelu_tanh),
    "gelu_sigmoid": (lambda x: A.gelu(x, "sigmoid"), lambda v: v * _logistic(1.702 * v)),
}


def _check(fn, ref, values, atol=1e-12):
    got = fn(torch.tensor(values, dtype=torch.float64))
    want = torch.tensor([ref(v) for v in values], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=atol)


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
@given(values=xs)
def test_matches_closed_form(name, values):
    fn, ref = CLOSED_FORMS[name]
    # torch's softplus returns x itself above x = 20, where log(1 + e^x) − x < 2.1e-9.
    _check(fn, ref, values, atol=1e-8 if name == "softplus" else 1e-12)


@given(values=xs, gamma=gammas)
def test_leaky_relu_and_elu_use_gamma_below_zero(values, gamma):
    _check(lambda x: A.leaky_relu(x, gamma), lambda v: v if v >= 0 else gamma * v, values)
    _check(lambda x: A.elu(x, gamma), lambda v: v if v >= 0 else gamma * (math.exp(v) - 1.0), values)


@given(values=xs, beta=st.floats(-3.0, 3.0, width=32))  # the module keeps β in the default float32
def test_swish_closed_form(values, beta):
    _check(lambda x: A.swish(x, beta), lambda v: v / (1.0 + math.exp(-beta * v)), values)
    _check(A.Swish(beta).double(), lambda v: v / (1.0 + math.exp(-beta * v)), values)


@given(values=xs)
def test_tanh_is_rescaled_logistic(values):
    x = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(A.tanh(x), 2 * A.sigmoid(2 * x) - 1, rtol=0, atol=1e-14)


@given(values=xs)
def test_softplus_derivative_is_logistic(values):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(A.softplus(x).sum(), x)
    want = torch.tensor([_logistic(v) for v in values], dtype=torch.float64)
    torch.testing.assert_close(grad, want, rtol=0, atol=1e-8)  # torch is exactly linear above x = 20


def test_relu_is_the_limit_of_softplus():
    x = torch.linspace(-10, 10, 20_001, dtype=torch.float64)
    errors = []
    for beta in (1.0, 10.0, 100.0, 1000.0):
        err = (A.softplus(x, beta) - A.relu(x)).abs()
        # log(1 + e^(βx))/β − max(x, 0) = log(1 + e^(−β|x|))/β: largest, log 2 / β, at x = 0.
        assert err.max().item() == pytest.approx(math.log(2) / beta, rel=1e-12)
        assert err.argmax().item() == 10_000
        errors.append(err.max().item())
    assert errors == sorted(errors, reverse=True)


@pytest.mark.parametrize(("approximate", "bound", "floor"), [("tanh", 4.8e-4, 4.7e-4), ("sigmoid", 2.1e-2, 2.0e-2)])
def test_gelu_approximations_within_their_max_error(approximate, bound, floor):
    x = torch.linspace(-12, 12, 240_001, dtype=torch.float64)
    exact = torch.tensor([_gelu_exact(v) for v in x[::1000].tolist()], dtype=torch.float64)
    torch.testing.assert_close(A.gelu(x[::1000]), exact, rtol=1e-12, atol=1e-12)
    err = (A.gelu(x, approximate) - A.gelu(x)).abs().max().item()
    # Max |error| over the line: 4.73e-4 (tanh, near x = −2.70), 2.03e-2 (sigmoid, near x = −2.27).
    assert floor < err < bound


def test_learnable_swish_has_the_closed_form_gradient_in_beta():
    torch.manual_seed(0)
    act = A.Swish(0.75, learnable=True).double()
    assert [n for n, _ in act.named_parameters()] == ["beta"]
    x = torch.randn(50, dtype=torch.float64)
    act(x).sum().backward()
    s = torch.sigmoid(0.75 * x)
    # d/dβ [x σ(βx)] = x² σ(βx)(1 − σ(βx))
    assert act.beta.grad.item() == pytest.approx((x * x * s * (1 - s)).sum().item(), rel=1e-12)


def test_fixed_swish_has_no_parameters_but_saves_beta():
    act = A.Swish(1.5)
    assert list(act.parameters()) == []
    assert act.state_dict()["beta"].item() == 1.5


def test_prelu_learns_its_slope():
    torch.manual_seed(0)
    act = A.get_activation("prelu", init=0.25).double()
    x = torch.randn(256, dtype=torch.float64)
    target = torch.where(x >= 0, x, 0.1 * x)  # data made by a PReLU of slope 0.1
    opt = torch.optim.SGD(act.parameters(), lr=1.0)
    loss = ((act(x) - target) ** 2).mean()
    loss.backward()
    # dL/dγ = mean over all points of 2(γ − 0.1)x² for x < 0 (0 for x >= 0)
    neg = x[x < 0]
    assert act.weight.grad.item() == pytest.approx((2 * (0.25 - 0.1) * neg**2).sum().item() / len(x), rel=1e-12)
    for _ in range(200):
        opt.step()
        opt.zero_grad()
        ((act(x) - target) ** 2).mean().backward()
    assert act.weight.item() == pytest.approx(0.1, abs=1e-6)


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_every_registered_activation_builds_and_runs(name):
    act = A.get_activation(name)
    x = torch.linspace(-3, 3, 13)
    y = act(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert A.get_activation(name) is not act  # a fresh module each time


def test_registry_options_reach_the_module():
    x = torch.tensor([-2.0, 3.0])
    assert A.get_activation("leaky_relu", gamma=0.5)(x).tolist() == [-1.0, 3.0]
    assert A.get_activation("elu", gamma=2.0)(x)[0].item() == pytest.approx(2.0 * (math.exp(-2.0) - 1.0))
    torch.testing.assert_close(A.get_activation("gelu_tanh")(x), A.gelu(x, "tanh"))
    torch.testing.assert_close(A.get_activation("silu")(x), A.swish(x, 1.0))


def test_bad_names_and_options_are_user_errors():
    with pytest.raises(AicomputeError, match=r"unknown activation 'gelux'.*known: identity"):
        A.get_activation("gelux")
    with pytest.raises(AicomputeError, match=r"'relu' takes no option\(s\) gamma; it takes: none"):
        A.get_activation("relu", gamma=0.1)
    with pytest.raises(AicomputeError, match="'none', 'tanh' or 'sigmoid'"):
        A.GELU("erf")
