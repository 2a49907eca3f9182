"""Activation functions as the seed text defines them, each as a function and as an ``nn.Module``.

The seed's definitions (its symbols in brackets) and what implements them here:

=============  ===========================================  ==========================================
name           definition                                   implementation
=============  ===========================================  ==========================================
sigmoid        σ(x) = 1 / (1 + e^(−x))  (the logistic)      ``torch.sigmoid`` / ``nn.Sigmoid``
tanh           (e^x − e^(−x)) / (e^x + e^(−x)) = 2σ(2x) − 1  ``torch.tanh`` / ``nn.Tanh``
relu           x for x ≥ 0, else 0                          ``F.relu`` / ``nn.ReLU``
leaky_relu     x for x ≥ 0, else γx (γ a small constant)    ``F.leaky_relu`` / ``nn.LeakyReLU``
prelu          x for x ≥ 0, else γᵢx (γᵢ learnable)          ``F.prelu`` / ``nn.PReLU``
elu            x for x ≥ 0, else γ(e^x − 1)                 ``F.elu`` / ``nn.ELU``
softplus       log(1 + e^x); its derivative is σ            ``F.softplus`` / ``nn.Softplus``
swish          x·σ(βx), β fixed or learnable                :func:`swish` / :class:`Swish`
gelu           x·Φ(x), Φ the N(0, 1) CDF                    :func:`gelu` / :class:`GELU`
=============  ===========================================  ==========================================

Where torch has the function we use it; only Swish (with a learnable β) and the sigmoid approximation of
GELU are written here. The seed's γ is torch's ``negative_slope`` (LeakyReLU), ``weight`` (PReLU) and
``alpha`` (ELU); the functions below take ``gamma`` so that code reads like the text.

GELU has three forms (``approximate=``):

* ``"none"``: x·Φ(x) = x·½(1 + erf(x/√2)), exact;
* ``"tanh"``: x·½(1 + tanh(√(2/π)(x + 0.044715x³))); at most 4.8e-4 from the exact form;
* ``"sigmoid"``: x·σ(1.702x), i.e. Swish with β = 1.702; at most 2.1e-2 from the exact form.

``ACTIVATIONS`` maps a name to a module factory; :func:`get_activation` builds one by name and turns an
unknown name or option into an :class:`~aicompute.errors.AicomputeError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aicompute.errors import AicomputeError

__all__ = [
    "ACTIVATIONS",
    "GELU",
    "GELU_SIGMOID_COEF",
    "Swish",
    "elu",
    "gelu",
    "get_activation",
    "leaky_relu",
    "prelu",
    "relu",
    "sigmoid",
    "softplus",
    "swish",
    "tanh",
]

GeluApproximation = Literal["none", "tanh", "sigmoid"]

GELU_SIGMOID_COEF = 1.702
"""β of the sigmoid approximation GELU(x) ≈ x·σ(1.702x) (Hendrycks & Gimpel, 2016)."""


def sigmoid(x: Tensor) -> Tensor:
    """The logistic function σ(x) = 1 / (1 + e^(−x))."""
    return torch.sigmoid(x)


def tanh(x: Tensor) -> Tensor:
    """tanh(x) = 2σ(2x) − 1."""
    return torch.tanh(x)


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return F.relu(x)


def leaky_relu(x: Tensor, gamma: float = 0.01) -> Tensor:
    """x for x ≥ 0, γx otherwise (γ a small constant)."""
    return F.leaky_relu(x, negative_slope=gamma)


def prelu(x: Tensor, gamma: Tensor) -> Tensor:
    """x for x ≥ 0, γᵢx otherwise; ``gamma`` has one element, or one per channel (dim 1 of ``x``)."""
    return F.prelu(x, gamma)


def elu(x: Tensor, gamma: float = 1.0) -> Tensor:
    """x for x ≥ 0, γ(e^x − 1) otherwise."""
    return F.elu(x, alpha=gamma)


def softplus(x: Tensor, beta: float = 1.0) -> Tensor:
    """log(1 + e^(βx)) / β; β = 1 is the seed's Softplus, and β → ∞ tends to ReLU (error ≤ log 2 / β)."""
    return F.softplus(x, beta=beta)


def swish(x: Tensor, beta: float | Tensor = 1.0) -> Tensor:
    """x·σ(βx). ``beta`` may be a tensor (a learnable parameter) broadcastable to ``x``."""
    return x * torch.sigmoid(beta * x)


def gelu(x: Tensor, approximate: GeluApproximation = "none") -> Tensor:
    """x·Φ(x) exactly (``"none"``), or its ``"tanh"`` or ``"sigmoid"`` approximation (module docstring)."""
    if approximate == "sigmoid":
        return swish(x, GELU_SIGMOID_COEF)
    if approximate in ("none", "tanh"):
        return F.gelu(x, approximate=approximate)
    raise AicomputeError(f"unknown GELU approximation {approximate!r}; use 'none', 'tanh' or 'sigmoid'")


class Swish(nn.Module):
    """x·σ(βx) with β fixed (a buffer) or learnable (a parameter, ``learnable=True``).

    β = 1 is SiLU; β = 1.702 approximates GELU; β → ∞ tends to ReLU and β = 0 gives x/2.
    """

    def __init__(self, beta: float = 1.0, *, learnable: bool = False) -> None:
        super().__init__()
        beta_t = torch.tensor(float(beta))
        if learnable:
            self.beta = nn.Parameter(beta_t)
        else:
            self.register_buffer("beta", beta_t)
        self.learnable = learnable

    def forward(self, x: Tensor) -> Tensor:
        return swish(x, self.beta.to(x.dtype))

    def extra_repr(self) -> str:
        return f"beta={self.beta.item():g}, learnable={self.learnable}"


class GELU(nn.Module):
    """x·Φ(x), exact or approximated by ``"tanh"`` or ``"sigmoid"`` (see the module docstring)."""

    def __init__(self, approximate: GeluApproximation = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh", "sigmoid"):
            raise AicomputeError(f"unknown GELU approximation {approximate!r}; use 'none', 'tanh' or 'sigmoid'")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "identity": lambda: nn.Identity(),
    "sigmoid": lambda: nn.Sigmoid(),
    "tanh": lambda: nn.Tanh(),
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda gamma=0.01: nn.LeakyReLU(negative_slope=gamma),
    "prelu": lambda num_parameters=1, init=0.25: nn.PReLU(num_parameters=num_parameters, init=init),
    "elu": lambda gamma=1.0: nn.ELU(alpha=gamma),
    "softplus": lambda beta=1.0: nn.Softplus(beta=beta),
    "swish": lambda beta=1.0, learnable=False: Swish(beta, learnable=learnable),
    "silu": lambda: nn.SiLU(),
    "gelu": lambda approximate="none": GELU(approximate),
    "gelu_tanh": lambda: GELU("tanh"),
    "gelu_sigmoid": lambda: GELU("sigmoid"),
}
"""Name → factory of a fresh activation module; options are keyword arguments (``gamma``, ``beta``, ...)."""


def get_activation(name: str, **options: float | int | bool | str) -> nn.Module:
    """A new activation module by name, e.g. ``get_activation("leaky_relu", gamma=0.1)``."""
    try:
        factory = ACTIVATIONS[name]
    except KeyError:
        raise AicomputeError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None
    accepted = inspect.signature(factory).parameters
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise AicomputeError(
            f"activation {name!r} takes no option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or 'none'}"
        )
    return factory(**options)
