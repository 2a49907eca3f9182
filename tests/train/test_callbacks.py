import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.train.callbacks import HOOKS, Callback, CallbackList, EarlyStopping, LambdaCallback, TrainState
from aicompute.train.loop import fit
from aicompute.train.results import EpochMetrics


class Recorder(Callback):
    """Records every hook call as (hook, epoch, batch, step)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def _log(self, hook: str, state: TrainState) -> None:
        self.calls.append((hook, state.epoch, state.batch, state.step))

    def on_fit_start(self, state):
        self._log("fit_start", state)

    def on_epoch_start(self, state):
        self._log("epoch_start", state)

    def on_batch_start(self, state):
        self._log("batch_start", state)

    def on_loss(self, state):
        self._log("loss", state)

    def on_after_backward(self, state):
        self._log("after_backward", state)

    def on_step_end(self, state):
        self._log("step_end", state)

    def on_epoch_end(self, state, metrics):
        assert metrics is state.history[-1]
        self._log("epoch_end", state)

    def on_fit_end(self, state):
        self._log("fit_end", state)


def test_hooks_run_in_the_documented_order(blobs):
    rec = Recorder()
    x, y = blobs
    fit(nn.Linear(4, 3), (x[:8], y[:8]), epochs=2, batch_size=4, callbacks=[rec])
    step = ["batch_start", "loss", "after_backward", "step_end"]
    expected = [("fit_start", 0, 0, 0)]
    for epoch in range(2):
        expected.append(("epoch_start", epoch, epoch and 1, 2 * epoch))
        for batch in range(2):
            expected += [(h, epoch, batch, 2 * epoch + batch) for h in step]
        expected.append(("epoch_end", epoch, 1, 2 * epoch + 2))
    expected.append(("fit_end", 1, 1, 4))
    assert rec.calls == expected


def test_callbacks_are_called_in_the_order_given(blobs):
    order = []
    first = LambdaCallback(on_step_end=lambda s: order.append("first"))
    second = LambdaCallback(on_step_end=lambda s: order.append("second"))
    fit(nn.Linear(4, 3), blobs, batch_size=256, callbacks=[first, second])
    assert order == ["first", "second"]


def test_a_callback_sees_the_batch_inputs_and_targets(blobs):
    x, y = blobs
    seen = []
    cb = LambdaCallback(on_loss=lambda s: seen.append((s.inputs.clone(), s.targets.clone(), s.outputs.shape)))
    fit(nn.Linear(4, 3), (x, y), batch_size=100, callbacks=[cb], seed=None)
    inputs = torch.cat([i for i, _, _ in seen])
    targets = torch.cat([t for _, t, _ in seen])
    assert [shape for *_, shape in seen] == [(100, 3), (100, 3), (56, 3)]
    order = torch.cat([torch.nonzero((x == row).all(1)).flatten() for row in inputs])  # where each row came from
    assert sorted(order.tolist()) == list(range(256))
    assert torch.equal(targets, y[order])


def test_an_added_loss_term_is_what_gets_optimised(blobs):
    """Distillation-style: the loss is replaced by a term computed from the inputs through a teacher."""
    x, y = blobs
    torch.manual_seed(0)
    teacher, student = nn.Linear(4, 3), nn.Linear(4, 3)

    def distill(state):
        with torch.no_grad():
            soft = teacher(state.inputs)
        state.loss = F.mse_loss(state.outputs, soft)  # the hard-label loss is dropped entirely

    fit(student, (x[:64], y[:64]), epochs=30, optimizer="sgd", lr=1.0, momentum=0.0, batch_size=64,
        callbacks=[LambdaCallback(on_loss=distill)])
    # Regressing a linear teacher with a linear student has the teacher itself as its exact solution.
    assert torch.allclose(student.weight, teacher.weight, atol=1e-5)
    assert torch.allclose(student.bias, teacher.bias, atol=1e-5)


def test_an_augmented_loss_is_what_the_history_reports(mlp, blobs):
    plain = fit(mlp(), blobs)
    shifted = fit(mlp(), blobs,
                  callbacks=[LambdaCallback(on_loss=lambda s: setattr(s, "loss", s.loss + 5.0))])
    # A constant does not change the gradients: same training, loss reported 5 higher.
    assert shifted.history[0].train_loss == pytest.approx(plain.history[0].train_loss + 5.0)
    assert shifted.history[0].train_accuracy == plain.history[0].train_accuracy


def test_masking_gradients_freezes_the_masked_weights(mlp, blobs):
    model = mlp()
    mask = (torch.rand(model[0].weight.shape, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    before = model[0].weight.detach().clone()

    def mask_grad(state):
        state.model[0].weight.grad.mul_(mask)

    fit(model, blobs, epochs=2, optimizer="adam", lr=0.05, callbacks=[LambdaCallback(on_after_backward=mask_grad)])
    after = model[0].weight.detach()
    frozen = mask == 0
    assert torch.equal(after[frozen], before[frozen])
    assert (after[~frozen] != before[~frozen]).all()


def test_reapplying_a_pruning_mask_after_each_step_keeps_pruned_weights_zero(mlp, blobs):
    def run(reapply: bool) -> torch.Tensor:
        model = mlp()
        weight = model[0].weight
        mask = (weight.detach().abs() > weight.detach().abs().median()).float()
        apply = LambdaCallback(on_fit_start=lambda s: weight.data.mul_(mask),
                               **({"on_step_end": lambda s: weight.data.mul_(mask)} if reapply else {}))
        fit(model, blobs, epochs=1, lr=0.05, callbacks=[apply])
        return weight.detach()[mask == 0]

    assert (run(reapply=True) == 0).all()
    assert (run(reapply=False) != 0).any()  # without re-applying, training revives the pruned weights


def test_setting_stop_during_a_batch_ends_training_after_that_step(blobs):
    cb = LambdaCallback(on_step_end=lambda s: setattr(s, "stop", s.step == 2))
    result = fit(nn.Linear(4, 3), blobs, blobs, epochs=5, batch_size=16, callbacks=[cb])
    assert result.steps == 3 and result.stopped_early
    assert len(result.history) == 1 and result.history[0].steps == 3
    assert result.history[0].val_loss is not None  # the cut epoch is still validated


def test_setting_stop_at_epoch_end_ends_training_after_that_epoch(blobs):
    cb = LambdaCallback(on_epoch_end=lambda s, m: setattr(s, "stop", m.epoch == 1))
    result = fit(nn.Linear(4, 3), blobs, epochs=5, batch_size=128, callbacks=[cb])
    assert [m.epoch for m in result.history] == [0, 1]
    assert result.steps == 4 and result.stopped_early


def test_setting_stop_at_fit_start_trains_nothing(blobs):
    ended = []
    model = nn.Linear(4, 3)
    before = model.weight.detach().clone()
    cbs = [LambdaCallback(on_fit_start=lambda s: setattr(s, "stop", True), on_fit_end=lambda s: ended.append(1))]
    result = fit(model, blobs, epochs=3, callbacks=cbs)
    assert result.steps == 0 and result.history == () and ended == [1]
    assert torch.equal(model.weight, before)


def test_lambda_callback_refuses_unknown_hooks_and_non_callables():
    with pytest.raises(AicomputeError, match="on_step_ends"):
        LambdaCallback(on_step_ends=print)
    with pytest.raises(AicomputeError, match="must be callable"):
        LambdaCallback(on_loss=3)
    assert set(HOOKS) == {name for name in vars(Callback) if name.startswith("on_")}


def test_callback_list_refuses_plain_functions():
    with pytest.raises(AicomputeError, match="LambdaCallback"):
        CallbackList([lambda state: None])


# ---- EarlyStopping -------------------------------------------------------------------------------------------


def _state() -> TrainState:
    model = nn.Linear(2, 1)
    return TrainState(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=10,
                      max_steps=None, device=torch.device("cpu"))


def _feed(stopper: EarlyStopping, values: list[float], monitor: str = "val_loss") -> tuple[TrainState, int]:
    """Feed one metric value per epoch until the stopper fires; returns the state and epochs fed."""
    state = _state()
    stopper.on_fit_start(state)
    for epoch, value in enumerate(values):
        metrics = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5)
        metrics[monitor] = value
        stopper.on_epoch_end(state, EpochMetrics(epoch=epoch, steps=1, seconds=0.0, **metrics))
        if state.stop:
            return state, epoch + 1
    return state, len(values)


def test_early_stopping_waits_patience_epochs_without_improvement():
    stopper = EarlyStopping("val_loss", patience=2)
    state, fed = _feed(stopper, [1.0, 0.9, 0.95, 0.93, 0.5, 0.4])
    assert state.stop and fed == 4  # epochs 2 and 3 did not beat 0.9
    assert stopper.best == 0.9 and stopper.best_epoch == 1 and stopper.stopped_epoch == 3


def test_early_stopping_maximises_accuracy_by_default():
    stopper = EarlyStopping("val_accuracy", patience=1)
    state, fed = _feed(stopper, [0.5, 0.7, 0.6], monitor="val_accuracy")
    assert stopper.mode == "max" and state.stop and fed == 3 and stopper.best == 0.7


def test_early_stopping_min_delta_ignores_tiny_improvements():
    stopper = EarlyStopping("train_loss", patience=2, min_delta=0.1)
    state, fed = _feed(stopper, [1.0, 0.95, 0.91, 0.5], monitor="train_loss")
    assert state.stop and fed == 3 and stopper.best == 1.0


def test_early_stopping_never_fires_while_improving():
    stopper = EarlyStopping(patience=1)
    state, _ = _feed(stopper, [5.0, 4.0, 3.0, 2.0])
    assert not state.stop and stopper.stopped_epoch is None


def test_early_stopping_in_fit_restores_the_best_weights(blobs):
    snapshots = []
    stopper = EarlyStopping("train_loss", patience=1, min_delta=1e9, restore_best=True)
    snap = LambdaCallback(on_epoch_end=lambda s, m: snapshots.append(s.model.weight.detach().clone()))
    model = nn.Linear(4, 3)
    result = fit(model, blobs, epochs=10, lr=0.1, callbacks=[snap, stopper])
    # Epoch 0 sets the best; epoch 1 cannot beat it by 1e9, so training stops there.
    assert len(result.history) == 2 and result.stopped_early and stopper.stopped_epoch == 1
    assert torch.equal(model.weight, snapshots[0]) and not torch.equal(snapshots[0], snapshots[1])


def test_early_stopping_on_val_without_val_data_says_so(blobs):
    with pytest.raises(AicomputeError, match="pass val= to fit"):
        fit(nn.Linear(4, 3), blobs, epochs=2, callbacks=[EarlyStopping("val_loss")])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"monitor": "val_f1"}, "cannot monitor 'val_f1'"),
        ({"mode": "up"}, "mode must be"),
        ({"patience": -1}, "patience"),
        ({"min_delta": -0.1}, "min_delta"),
    ],
)
def test_early_stopping_checks_its_settings(kwargs, match):
    with pytest.raises(AicomputeError, match=match):
        EarlyStopping(**kwargs)
