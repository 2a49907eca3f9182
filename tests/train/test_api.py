"""train_model / evaluate_checkpoint with the real data sets and zoo models (tiny settings)."""

import json
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from aicompute.data import get_dataset
from aicompute.errors import AicomputeError
from aicompute.train.api import evaluate_checkpoint, train_model
from aicompute.train.checkpoint import load_checkpoint, save_checkpoint
from aicompute.train.evaluate import evaluate

SYNTH = {"shape": (8,), "num_classes": 3, "size": 96}
SMALL_MLP = {"hidden": (16,)}


def _train(tmp_path, **kw):
    args = dict(model_kwargs=SMALL_MLP, data_kwargs=SYNTH, epochs=2, batch_size=32, progress=False,
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
    result = train_model("mlp", "digits", epochs=3, lr=3e-3, model_kwargs={"hidden": (64,)}, progress=False)
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
    with pytest.raises(AicomputeError, match="cannot read data set"):
        evaluate_checkpoint(result.checkpoint, TensorDataset(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long)))


def test_a_checkpoint_without_a_data_set_needs_data(tmp_path):
    path = save_checkpoint(tmp_path / "p.pt", torch.nn.Linear(8, 3), model_name="torch.nn:Linear",
                           model_kwargs={"in_features": 8, "out_features": 3})
    with pytest.raises(AicomputeError, match="pass data="):
        evaluate_checkpoint(path)
    x, y = torch.randn(10, 8), torch.randint(0, 3, (10,))
    assert evaluate_checkpoint(path, (x, y)).examples == 10


def test_a_language_model_reports_perplexity(tmp_path, monkeypatch):
    monkeypatch.setenv("AICOMPUTE_CACHE", str(tmp_path / "cache"))
    data = {"max_chars": 8000, "block_size": 8}
    result = train_model("char-gru", "chars", data_kwargs=data, max_steps=2, progress=False, out=tmp_path / "lm.pt")
    assert result.test.tokens == result.test.examples * 8
    assert result.test.perplexity == pytest.approx(math.exp(result.test.loss))
    again = evaluate_checkpoint(tmp_path / "lm.pt")
    assert again.perplexity == pytest.approx(result.test.perplexity, rel=1e-6)


def test_a_meta_only_model_is_refused_before_any_work():
    with pytest.raises(AicomputeError, match="too large to train here"):
        train_model("gpt3-175b", "chars", progress=False)


def test_a_model_that_cannot_read_the_data_is_refused():
    with pytest.raises(AicomputeError, match="reads images.*same kind"):
        train_model("lenet5", "synthetic", data_kwargs=SYNTH, progress=False)


def test_unknown_names_are_errors():
    with pytest.raises(AicomputeError, match="unknown model 'no-such-net'"):
        train_model("no-such-net", "synthetic", progress=False)
    with pytest.raises(AicomputeError):
        train_model("mlp", "no-such-data", progress=False)
