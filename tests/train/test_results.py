import json
import math

from aicompute.train.results import METRIC_NAMES, EpochMetrics, EvalResult, FitResult, json_float


def _epoch(i: int, val_loss: float | None = 0.5) -> EpochMetrics:
    return EpochMetrics(epoch=i, train_loss=1.0 / (i + 1), train_accuracy=0.5, val_loss=val_loss,
                        val_accuracy=None, steps=4, seconds=0.25)


def test_json_float_drops_non_finite_values():
    assert json_float(None) is None
    assert json_float(math.nan) is None
    assert json_float(math.inf) is None
    assert json_float(2) == 2.0 and isinstance(json_float(2), float)


def test_fit_result_final_is_the_last_epoch():
    result = FitResult(history=(_epoch(0), _epoch(1, val_loss=0.25)), steps=8, seconds=1.0, stopped_early=False)
    assert result.final == {"train_loss": 0.5, "train_accuracy": 0.5, "val_loss": 0.25, "val_accuracy": None}
    assert set(result.final) == set(METRIC_NAMES)


def test_fit_result_without_epochs_has_empty_final():
    result = FitResult(history=(), steps=0, seconds=0.0, stopped_early=True)
    assert result.final == dict.fromkeys(METRIC_NAMES)
    assert result.to_dict()["epochs"] == 0


def test_to_dict_is_strict_json_and_round_trips():
    result = FitResult(history=(_epoch(0, val_loss=math.nan),), steps=4, seconds=1.0, stopped_early=False)
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["history"][0]["val_loss"] is None
    assert back["history"][0]["train_loss"] == 1.0
    assert back["steps"] == 4 and back["final"]["train_accuracy"] == 0.5


def test_eval_result_to_dict_maps_overflowing_perplexity_to_none():
    result = EvalResult(loss=800.0, accuracy=0.1, examples=3, tokens=12, perplexity=math.inf, model="m", data="d")
    d = result.to_dict()
    json.dumps(d, allow_nan=False)
    assert d == {"loss": 800.0, "accuracy": 0.1, "examples": 3, "tokens": 12, "perplexity": None,
                 "seconds": 0.0, "model": "m", "data": "d"}
