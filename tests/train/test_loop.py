import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aicompute.errors import AicomputeError
from aicompute.train.callbacks import LambdaCallback
from aicompute.train.loop import fit


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_learns_a_separable_problem(mlp, blobs):
    result = fit(mlp(), blobs, blobs, epochs=15, lr=0.02, batch_size=32)
    assert result.history[-1].val_accuracy > 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.steps == 15 * 8 and not result.stopped_early


def test_same_seed_gives_bit_identical_weights_and_history(mlp, blobs):
    """The determinism guarantee: dropout, shuffling and initialisation all repeat."""
    runs = []
    for _ in range(2):
        model = mlp(dropout=0.3, seed=5)
        result = fit(model, blobs, blobs, epochs=2, batch_size=32, seed=3)
        runs.append((_weights(model), [m.to_dict() | {"seconds": 0} for m in result.history]))
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0], runs[1][0], strict=True))
    assert runs[0][1] == runs[1][1]


def test_another_seed_gives_other_weights(mlp, blobs):
    finals = []
    for seed in (3, 4):
        model = mlp(dropout=0.3, seed=5)
        fit(model, blobs, epochs=1, batch_size=32, seed=seed)
        finals.append(_weights(model))
    assert not torch.equal(finals[0][0], finals[1][0])


def test_validating_does_not_change_the_training(mlp, blobs):
    """Evaluating val data draws no random numbers, so dropout masks of later epochs are the same."""
    a, b = mlp(dropout=0.5), mlp(dropout=0.5)
    fit(a, blobs, epochs=2, batch_size=64)
    fit(b, blobs, blobs, epochs=2, batch_size=64)
    assert all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(b), strict=True))


def test_one_sgd_step_is_the_gradient_step(blobs):
    x, y = blobs
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    w, b = model.weight.detach().clone().requires_grad_(), model.bias.detach().clone().requires_grad_()
    loss = F.cross_entropy(x @ w.T + b, y)
    loss.backward()
    result = fit(model, (x, y), optimizer="sgd", lr=0.5, momentum=0.0, batch_size=len(x))
    assert torch.allclose(model.weight, w - 0.5 * w.grad, atol=1e-7)
    assert torch.allclose(model.bias, b - 0.5 * b.grad, atol=1e-7)
    assert result.history[0].train_loss == pytest.approx(loss.item())  # measured before the step
    assert result.history[0].train_accuracy == ((x @ w.T + b).argmax(1) == y).float().mean().item()


def test_a_language_model_is_trained_on_flattened_tokens(lm, tokens):
    torch.manual_seed(0)
    result = fit(lm(), tokens, tokens, epochs=25, lr=0.05, batch_size=16)
    first, last = result.history[0], result.history[-1]
    assert last.val_loss < first.val_loss / 4
    assert last.val_accuracy == 1.0  # the next token is a function of the current one


def test_max_steps_caps_training_across_epochs(blobs):
    result = fit(nn.Linear(4, 3), blobs, epochs=10, batch_size=100, max_steps=4)
    assert result.steps == 4 and result.stopped_early
    assert [m.steps for m in result.history] == [3, 1]


def test_max_steps_equal_to_the_whole_run_is_not_early(blobs):
    result = fit(nn.Linear(4, 3), blobs, epochs=2, batch_size=128, max_steps=4)
    assert result.steps == 4 and not result.stopped_early and len(result.history) == 2


def test_a_dataloader_keeps_its_own_batching(blobs):
    loader = DataLoader(TensorDataset(*blobs), batch_size=50)
    result = fit(nn.Linear(4, 3), loader, batch_size=7)
    assert result.steps == len(loader) == 6


def test_a_ready_optimizer_is_the_one_stepped(blobs):
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    used = []
    fit(model, blobs, optimizer=opt, callbacks=[LambdaCallback(on_fit_start=lambda s: used.append(s.optimizer))])
    assert used == [opt]
    assert opt.state_dict()["state"][0]["momentum_buffer"] is not None  # it was stepped


def test_train_mode_during_training_and_previous_mode_after(mlp, blobs):
    model = mlp().eval()
    modes = []
    fit(model, blobs, epochs=2, callbacks=[LambdaCallback(on_batch_start=lambda s: modes.append(s.model.training))])
    assert modes and all(modes)
    assert not any(m.training for m in model.modules())


def test_a_callback_may_freeze_part_of_the_model_each_epoch(blobs):
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    seen = []
    cbs = [LambdaCallback(on_epoch_start=lambda s: s.model[1].eval(),
                          on_batch_start=lambda s: seen.append(s.model[1].training))]
    running = model[1].running_mean.clone()
    fit(model, blobs, epochs=2, callbacks=cbs)
    assert seen and not any(seen)
    assert torch.equal(model[1].running_mean, running)  # frozen statistics never moved


def test_nan_loss_names_the_step_and_leaves_the_weights_alone(blobs):
    x, y = blobs
    x = x.clone()
    x[70] = math.nan  # in the third batch of 32; a plain DataLoader does not shuffle
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    model = nn.Linear(4, 3)
    snapshot = []
    cb = LambdaCallback(on_batch_start=lambda s: snapshot.append(_weights(s.model)))
    with pytest.raises(AicomputeError, match=r"loss is nan at step 3 \(epoch 1, batch 3\).*lower the learning rate"):
        fit(model, loader, callbacks=[cb])
    assert all(torch.equal(p, q) for p, q in zip(_weights(model), snapshot[-1], strict=True))


def test_infinite_loss_from_a_diverging_run_is_caught(blobs):
    calls = []

    def loss_fn(outputs, targets):
        calls.append(1)
        loss = F.cross_entropy(outputs, targets)
        return loss * math.inf if len(calls) == 5 else loss

    with pytest.raises(AicomputeError, match=r"loss is inf at step 5 .*lr=0.001"):
        fit(nn.Linear(4, 3), blobs, epochs=3, batch_size=64, loss_fn=loss_fn)


def test_a_loss_without_gradient_is_an_error(blobs):
    with pytest.raises(AicomputeError, match="does not depend on any trainable parameter"):
        fit(nn.Linear(4, 3), blobs, loss_fn=lambda o, t: torch.tensor(1.0))


def test_a_non_scalar_loss_is_an_error(blobs):
    with pytest.raises(AicomputeError, match="scalar"):
        fit(nn.Linear(4, 3), blobs, loss_fn=lambda o, t: F.cross_entropy(o, t, reduction="none"))


def test_an_empty_loader_is_an_error():
    empty = DataLoader(TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), batch_size=4)
    with pytest.raises(AicomputeError, match="no batches"):
        fit(nn.Linear(4, 3), empty)


@pytest.mark.parametrize("kwargs, match", [({"epochs": 0}, "epochs must be a positive integer, got 0"),
                                           ({"max_steps": 0}, "max_steps must be a positive integer"),
                                           ({"epochs": 1.5}, "epochs"), ({"batch_size": 0}, "batch_size"),
                                           ({"seed": -1}, r"seed must be in \[0, ")])
def test_counts_must_be_positive_integers(blobs, kwargs, match):
    with pytest.raises(AicomputeError, match=match):
        fit(nn.Linear(4, 3), blobs, **kwargs)


def _global_draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seeded_fit_leaves_the_callers_random_streams_where_they_were(mlp, blobs):
    """fit(seed=...) seeds every global generator for its own run, then puts each one back."""
    model = mlp(dropout=0.5)  # dropout draws from torch's global generator inside fit
    random.seed(21)
    np.random.seed(21)
    torch.manual_seed(21)
    expected = _global_draws()
    random.seed(21)
    np.random.seed(21)
    torch.manual_seed(21)
    fit(model, blobs, blobs, epochs=2, batch_size=64, seed=3,
        callbacks=[LambdaCallback(on_batch_start=lambda s: (random.random(), np.random.rand()))])
    assert _global_draws() == expected


def test_models_built_after_two_seeded_fits_are_initialised_differently(blobs):
    torch.manual_seed(0)
    fit(nn.Linear(4, 3), blobs, seed=0)
    first = nn.Linear(4, 3)
    fit(nn.Linear(4, 3), blobs, seed=0)
    second = nn.Linear(4, 3)
    assert not torch.equal(first.weight, second.weight)


def test_the_random_streams_are_restored_when_fit_fails(blobs):
    model = nn.Linear(4, 3)
    torch.manual_seed(2)
    expected = torch.rand(3)
    torch.manual_seed(2)
    with pytest.raises(AicomputeError, match="loss is inf"):
        fit(model, blobs, seed=7, loss_fn=lambda o, t: F.cross_entropy(o, t) * math.inf)
    assert torch.equal(torch.rand(3), expected)


def test_unseeded_fit_leaves_global_generators_alone(blobs):
    model = nn.Linear(4, 3)
    torch.manual_seed(21)
    expected = torch.rand(2)
    torch.manual_seed(21)
    fit(model, blobs, blobs, seed=None)  # no dropout: draws nothing globally
    assert torch.equal(torch.rand(2), expected)


def test_result_round_trips_through_json(mlp, blobs):
    import json

    result = fit(mlp(), blobs, blobs, epochs=2)
    back = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert back["steps"] == result.steps == 8
    assert back["final"]["val_accuracy"] == result.final["val_accuracy"]
    assert [h["epoch"] for h in back["history"]] == [0, 1]
