import pytest
from torch import nn

from aicompute.modes import eval_mode, preserve_modes


def mixed():
    model = nn.Sequential(nn.Dropout(), nn.Sequential(nn.BatchNorm1d(2), nn.Dropout()))
    model[1][0].eval()  # a frozen BatchNorm inside a training model
    return model


def flags(model):
    return [m.training for m in model.modules()]


def test_eval_mode_restores_mixed_flags():
    model = mixed()
    before = flags(model)
    with eval_mode(model):
        assert not any(flags(model))
    assert flags(model) == before == [True, True, True, False, True]


def test_preserve_modes_restores_after_an_exception():
    model = mixed()
    before = flags(model)
    with pytest.raises(RuntimeError):
        with preserve_modes(model):
            model.train()
            raise RuntimeError("inside")
    assert flags(model) == before
