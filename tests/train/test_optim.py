import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.train.optim import OPTIMIZERS, make_optimizer


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


@pytest.mark.parametrize(
    "name, cls, extra",
    [
        ("adam", torch.optim.Adam, {}),
        ("ADAMW", torch.optim.AdamW, {}),
        ("sgd", torch.optim.SGD, {"momentum": 0.5}),
    ],
)
def test_names_build_the_torch_optimizer_with_the_given_hyperparameters(name, cls, extra):
    opt = make_optimizer(name, _model(), lr=0.05, weight_decay=0.01, momentum=0.5)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.05 and group["weight_decay"] == 0.01
    for key, value in extra.items():
        assert group[key] == value


def test_every_listed_name_builds():
    assert {type(make_optimizer(n, _model())).__name__.lower() for n in OPTIMIZERS} == set(OPTIMIZERS)


def test_frozen_parameters_are_left_out():
    model = _model()
    model[0].requires_grad_(False)
    held = {id(p) for p in make_optimizer("sgd", model).param_groups[0]["params"]}
    assert held == {id(p) for p in model[1].parameters()}


def test_a_ready_optimizer_is_used_as_it_is():
    model = _model()
    opt = torch.optim.RMSprop(model.parameters(), lr=0.3)
    assert make_optimizer(opt, model, lr=99.0) is opt


def test_an_optimizer_of_another_model_is_refused():
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises(AicomputeError, match="holds none of the model's parameters"):
        make_optimizer(opt, _model())


def test_a_factory_gets_the_trainable_parameters():
    model = _model()
    opt = make_optimizer(lambda params: torch.optim.Adagrad(params, lr=0.2), model)
    assert type(opt) is torch.optim.Adagrad
    assert len(opt.param_groups[0]["params"]) == 4


@pytest.mark.parametrize(
    "spec, kwargs, match",
    [
        ("lbfgs-ish", {}, "unknown optimizer 'lbfgs-ish'; choose one of adam, adamw, sgd"),
        ("sgd", {"lr": 0.0}, "lr must be a positive number"),
        ("sgd", {"lr": -1e-3}, "lr must be a positive number"),
        ("sgd", {"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ("adam", {"weight_decay": -0.1}, "weight_decay must be >= 0"),
        (lambda params: "not an optimizer", {}, "returned str"),
        (42, {}, "got int"),
    ],
)
def test_bad_specs_are_errors(spec, kwargs, match):
    with pytest.raises(AicomputeError, match=match):
        make_optimizer(spec, _model(), **kwargs)


def test_a_model_without_trainable_parameters_is_an_error():
    model = _model().requires_grad_(False)
    with pytest.raises(AicomputeError, match="no trainable parameters"):
        make_optimizer("adam", model)
