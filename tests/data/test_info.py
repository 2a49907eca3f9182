import dataclasses
import json

import pytest

from aicompute.data.info import DatasetInfo


def test_to_dict_is_json_safe_and_round_trips():
    info = DatasetInfo(name="chars", task="language-modeling", input_shape=(64,), num_classes=97,
                       input_dtype="int64", kind="tokens")
    d = info.to_dict()
    assert d == {"name": "chars", "task": "language-modeling", "input_shape": [64], "num_classes": 97,
                 "input_dtype": "int64", "kind": "tokens"}
    restored = json.loads(json.dumps(d))
    restored["input_shape"] = tuple(restored["input_shape"])
    assert DatasetInfo(**restored) == info


def test_defaults_and_frozen():
    info = DatasetInfo(name="x", task="classification", input_shape=(1, 28, 28), num_classes=10)
    assert (info.input_dtype, info.kind) == ("float32", "image")
    assert info.to_dict()["input_shape"] == [1, 28, 28]
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.num_classes = 3
