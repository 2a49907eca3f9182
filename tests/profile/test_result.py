"""ProfileResult: coverage and --strict, weight bytes per format, JSON record."""

import json

import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.profile import profile


class Cholesky(nn.Module):
    """Runs an op with no cost formula (linalg_cholesky_ex) between two counted ones."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        a = self.fc(x)
        spd = a.transpose(-1, -2) @ a + torch.eye(4)
        return torch.linalg.cholesky(spd)


def test_uncounted_ops_are_reported_by_name_with_bytes():
    result = profile(Cholesky(), input_shape=(4, 4))
    coverage = result.coverage()
    names = [u["op"] for u in coverage["uncounted"]]
    assert "aten.linalg_cholesky_ex" in names
    entry = coverage["uncounted"][names.index("aten.linalg_cholesky_ex")]
    assert entry["calls"] == 1 and entry["bytes"] > 0 and 0 < entry["bytes_share"] < 1
    assert coverage["counted_calls"] > 0 and coverage["ignored_calls"] > 0
    assert result.total.uncounted_calls == coverage["uncounted_calls"]


def test_strict_lists_uncounted_ops():
    with pytest.raises(AicomputeError, match="linalg_cholesky_ex"):
        profile(Cholesky(), input_shape=(4, 4), strict=True)
    profile(nn.Linear(4, 4), input_shape=(1, 4), strict=True)  # fully counted: no error


def test_weight_bytes_per_format():
    result = profile(nn.Linear(3, 3), input_shape=(1, 3))  # 12 params
    assert result.weight_bytes() == {"fp32": 48, "bf16": 24, "fp16": 24, "fp8": 12, "int8": 12, "int4": 6}
    seven = profile(nn.Linear(7, 1, bias=False), input_shape=(1, 7)).weight_bytes()["int4"]
    assert seven == 4  # 7 int4 values need 4 bytes, packed two per byte


def test_to_dict_is_json_and_states_its_convention():
    result = profile(nn.Sequential(nn.Linear(4, 4), nn.GELU()), input_shape=(2, 4), mode="training")
    record = json.loads(json.dumps(result.to_dict(records=True)))
    assert record["kind"] == "profile" and "FLOPs = 2 x MACs" in record["convention"]
    assert record["summary"]["macs"] == result.macs
    assert record["forward"]["macs"] + record["backward"]["macs"] == result.macs
    assert len(record["records"]) == len(result.records)
    assert record["memory"]["optimizer"] == "adam"
    assert 0 < record["summary"]["tensor_flops_share"] < 1
