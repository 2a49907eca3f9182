"""train_model / evaluate_checkpoint with the real data sets and zoo models (tiny settings)."""

import json
import math

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from aicompute.data import get_dataset
from aicompute.errors import AicomputeError
from aicompute.models.registry import get_model
from aicompute.train.api import evaluate_checkpoint, train_model
from aicompute.train.checkpoint import load_checkpoint, save_checkpoint
from aicompute.train.evaluate import evaluate

SYNTH = {"shape": (8,), "num_classes": 3, "size": 96}
SMALL_MLP = {"hidden": (16,)}


def _train(tmp_path, **kw):
    args = dict(model_kwargs=SMALL_MLP, data_kwargs=SYNTH, epochs=2, batch_size=32,
                out=tmp_path / "mlp.pt")
    return train_model("mlp", "synthetic", **{**args, **kw})


def test_train_model_record(tmp_path):
    result = _train(tmp_path)
    d = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert d["model"] == "mlp" and d["data"] == "synthetic" and d["kind"] == "train"
    assert d["model_kwargs"] == {"in_features": 8, "num_classes": 3, "hidden": [16]}
    assert d["data_kwargs"] == {"shape": [8], "num_classes": 3, "size": 96}
    assert d["params"] == (8 * 16 + 16) + (16 * 3 + 3)
    assert d["epochs"] == 2 and len(d["history"]) == 2 and d["steps"] == 2 * math.ceil(96 / 32)
    assert d["checkpoint"] == str(tmp_path / "mlp.pt")
    assert d["test_examples"] == 96 // 4 and d["test_perplexity"] is None
    assert d["seconds"] > 0


def test_test_metrics_are_those_of_the_trained_network_on_the_test_split(tmp_path):
    result = _train(tmp_path, out=None)
    again = evaluate(result.network, get_dataset("synthetic", "test", **SYNTH))
    assert result.test.loss == again.loss and result.test.accuracy == again.accuracy
    assert result.checkpoint is None and not (tmp_path / "mlp.pt").exists()


def test_same_seed_same_run(tmp_path):
    a = _train(tmp_path, out=None, seed=4)
    b = _train(tmp_path, out=None, seed=4)
    drop_times = lambda d: {k: v for k, v in d.items() if k not in ("seconds", "history")}  # noqa: E731
    assert drop_times(a.to_dict()) == drop_times(b.to_dict())
    assert all(torch.equal(p, q) for p, q in zip(a.network.parameters(), b.network.parameters(), strict=True))
    c = _train(tmp_path, out=None, seed=5)
    assert not torch.equal(next(a.network.parameters()), next(c.network.parameters()))


def test_max_steps_caps_the_run(tmp_path):
    result = _train(tmp_path, out=None, epochs=5, max_steps=4)
    assert result.fit.steps == 4 and result.fit.stopped_early


def test_learns_digits(tmp_path):
    result = train_model("mlp", "digits", epochs=3, lr=3e-3, model_kwargs={"hidden": (64,)})
    assert result.test.accuracy > 0.85
    assert result.fit.history[-1].val_loss == pytest.approx(result.test.loss, rel=1e-5)


def test_checkpoint_records_model_and_data_and_evaluates_to_the_same_numbers(tmp_path):
    result = _train(tmp_path)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.model_name == "mlp" and ckpt.model_kwargs == result.model_kwargs
    assert ckpt.dataset["name"] == "synthetic" and ckpt.dataset["kwargs"] == SYNTH and ckpt.dataset["seed"] == 0
    assert ckpt.metrics["test"]["accuracy"] == result.test.accuracy
    again = evaluate_checkpoint(result.checkpoint)  # rebuilds synthetic with the recorded shape and size
    assert again.loss == pytest.approx(result.test.loss, rel=1e-6)
    assert again.accuracy == result.test.accuracy and again.examples == result.test.examples
    assert again.model == "mlp" and again.data == "synthetic"


def test_evaluating_on_data_of_another_shape_is_an_error(tmp_path):
    result = _train(tmp_path)
    expected = (r"trained on 'synthetic' \(input_shape=\(8,\), num_classes=3\) "
                r"but data set 'digits' has input_shape=\(1, 8, 8\), num_classes=10")
    with pytest.raises(AicomputeError, match=expected):
        evaluate_checkpoint(result.checkpoint, "digits")


def test_a_dataset_object_is_evaluated_as_given(tmp_path):
    result = _train(tmp_path)
    test = get_dataset("synthetic", "test", **SYNTH)
    assert evaluate_checkpoint(result.checkpoint, test).loss == pytest.approx(result.test.loss, rel=1e-6)
    x, y = test.inputs, test.targets
    assert evaluate_checkpoint(result.checkpoint, (x, y)).loss == pytest.approx(result.test.loss, rel=1e-6)


@pytest.mark.parametrize("data, got", [
    (TensorDataset(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long)), r"\(5,\) \(float32\)"),
    ((torch.zeros(4, 8, dtype=torch.float64), torch.zeros(4, dtype=torch.long)), r"\(8,\) \(float64\)"),
])
def test_raw_data_of_another_shape_or_dtype_is_refused_up_front(tmp_path, data, got):
    result = _train(tmp_path)
    with pytest.raises(AicomputeError, match=rf"trained on 'synthetic' examples of shape \(8,\) \(float32\), but the "
                                             rf"given data has examples of shape {got}"):
        evaluate_checkpoint(result.checkpoint, data)


class _FailingReads(Dataset):
    """Examples of the right shape, until the disk fails on the third one."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int):
        if i == 2:
            raise RuntimeError("disk read failed")
        return torch.zeros(8), 0


def test_errors_while_evaluating_propagate_unchanged(tmp_path):
    result = _train(tmp_path)
    with pytest.raises(RuntimeError, match="disk read failed") as caught:
        evaluate_checkpoint(result.checkpoint, _FailingReads())
    assert not isinstance(caught.value, AicomputeError)


def _zoo_checkpoint(tmp_path, name: str, **kwargs):
    """A zoo model saved without any data set record (the checks then rely on its arguments)."""
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / f"{name}.pt", get_model(name, **kwargs), model_name=name, model_kwargs=kwargs)


def test_a_checkpoint_without_a_data_set_needs_data(tmp_path):
    path = _zoo_checkpoint(tmp_path, "perceptron", in_features=8, num_classes=3)
    with pytest.raises(AicomputeError, match="pass data="):
        evaluate_checkpoint(path)
    x, y = torch.randn(10, 8), torch.randint(0, 3, (10,))
    assert evaluate_checkpoint(path, (x, y)).examples == 10


def test_a_language_models_vocabulary_and_context_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("AICOMPUTE_CACHE", str(tmp_path / "cache"))
    chars = get_dataset("chars", "test", max_chars=8000, block_size=8)
    vocab = chars.info.num_classes
    small = dict(embed_dim=4, hidden_size=4)
    wrong_vocab = _zoo_checkpoint(tmp_path, "char-gru", vocab_size=vocab + 1, block_size=8, **small)
    with pytest.raises(AicomputeError, match=rf"vocab_size={vocab + 1} where the data needs {vocab}"):
        evaluate_checkpoint(wrong_vocab, chars)
    short = _zoo_checkpoint(tmp_path, "char-rnn", vocab_size=vocab, block_size=4, **small)
    with pytest.raises(AicomputeError, match="block_size=4 where the data needs at least 8"):
        evaluate_checkpoint(short, chars)
    longer = _zoo_checkpoint(tmp_path, "char-lstm", vocab_size=vocab, block_size=16, **small)
    assert evaluate_checkpoint(longer, chars).tokens == chars.targets.numel()


def flat_linear(num_classes: int) -> torch.nn.Module:
    """A user's own model for 8-feature data, named ``<this module>:flat_linear``."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, num_classes))


def test_a_user_factory_checkpoint_evaluates_only_with_allow_import(tmp_path):
    name = f"{__name__}:flat_linear"
    result = train_model(name, "synthetic", data_kwargs=SYNTH, out=tmp_path / "user.pt")
    with pytest.raises(AicomputeError, match="not a zoo model but imported code.*allow_import=True"):
        evaluate_checkpoint(result.checkpoint)
    again = evaluate_checkpoint(result.checkpoint, allow_import=True)
    assert again.loss == pytest.approx(result.test.loss, rel=1e-6) and again.model == name


def test_train_model_is_silent_and_leaves_the_callers_random_streams_alone(tmp_path, capfd):
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    _train(tmp_path, out=None, seed=9)
    assert torch.equal(torch.rand(3), expected)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_language_model_reports_perplexity(tmp_path, monkeypatch):
    monkeypatch.setenv("AICOMPUTE_CACHE", str(tmp_path / "cache"))
    data = {"max_chars": 8000, "block_size": 8}
    result = train_model("char-gru", "chars", data_kwargs=data, max_steps=2, out=tmp_path / "lm.pt")
    assert result.test.tokens == result.test.examples * 8
    again = evaluate_checkpoint(tmp_path / "lm.pt")
    assert again.perplexity == pytest.approx(result.test.perplexity, rel=1e-6)


def test_a_meta_only_model_is_refused_before_any_work():
    with pytest.raises(AicomputeError, match="too large to train here"):
        train_model("gpt3-175b", "chars")


def test_a_model_that_cannot_read_the_data_is_refused():
    with pytest.raises(AicomputeError, match="reads images.*same kind"):
        train_model("lenet5", "synthetic", data_kwargs=SYNTH)


def test_unknown_names_are_errors():
    with pytest.raises(AicomputeError, match="unknown model 'no-such-net'"):
        train_model("no-such-net", "synthetic")
    with pytest.raises(AicomputeError):
        train_model("mlp", "no-such-data")


def test_weight_decay_reaches_the_optimizer():
    """One SGD step adds −lr·wd·w₀ to the update, so the change from wd = 0 is linear in wd."""
    runs = {
        wd: train_model("perceptron", "digits", optimizer="sgd", lr=0.1, weight_decay=wd, max_steps=1, seed=3)
        for wd in (0.0, 0.25, 0.5)
    }
    w = {wd: r.network.state_dict()["fc.weight"] for wd, r in runs.items()}
    d_half, d_quarter = w[0.5] - w[0.0], w[0.25] - w[0.0]
    assert d_quarter.abs().max() > 1e-4
    torch.testing.assert_close(d_half, 2 * d_quarter, rtol=1e-4, atol=1e-7)
