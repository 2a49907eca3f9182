import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from aicompute.train.results import METRIC_NAMES, EpochMetrics, EvalResult, FitResult, json_safe


def _epoch(i: int, val_loss: float | None = 0.5) -> EpochMetrics:
    return EpochMetrics(epoch=i, train_loss=1.0 / (i + 1), train_accuracy=0.5, val_loss=val_loss,
                        val_accuracy=None, steps=4, seconds=0.25)


def test_json_safe_drops_non_finite_floats_and_lists_tuples():
    value = {"a": (1, 2.5, math.nan), 3: [math.inf, -math.inf, None, True, "s"], "n": {"t": ((1,), ())}}
    assert json_safe(value) == {"a": [1, 2.5, None], "3": [None, None, None, True, "s"], "n": {"t": [[1], []]}}


def test_json_safe_output_survives_a_strict_json_round_trip():
    value = {"shape": (3, 4), "loss": math.nan, "np": [np.float32(0.5), np.int64(7), np.bool_(True)],
             "path": Path("/tmp/x.pt"), "w": torch.zeros(2, 3, dtype=torch.float16)}
    safe = json_safe(value)
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe
    assert safe == {"shape": [3, 4], "loss": None, "np": [0.5, 7, True], "path": "/tmp/x.pt",
                    "w": {"tensor": [2, 3], "dtype": "float16"}}
    assert type(safe["np"][1]) is int and type(safe["np"][2]) is bool


def test_json_safe_refuses_what_it_cannot_represent():
    with pytest.raises(TypeError, match="cannot represent a object"):
        json_safe({"x": object()})


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
    assert back["kind"] == "fit" and back["history"][0]["kind"] == "epoch"
    assert back["history"][0]["val_loss"] is None
    assert back["history"][0]["train_loss"] == 1.0
    assert back["steps"] == 4 and back["final"]["train_accuracy"] == 0.5


def test_eval_result_to_dict_maps_overflowing_perplexity_to_none():
    result = EvalResult(loss=800.0, accuracy=0.1, examples=3, tokens=12, perplexity=math.inf, model="m", data="d")
    d = result.to_dict()
    json.dumps(d, allow_nan=False)
    assert d == {"kind": "eval", "loss": 800.0, "accuracy": 0.1, "examples": 3, "tokens": 12, "perplexity": None,
                 "seconds": 0.0, "model": "m", "data": "d"}
