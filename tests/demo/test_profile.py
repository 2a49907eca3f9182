"""The profiler tour's record: figures agree with the library and with each other."""

import json

import pytest

from aicompute.demo.profile import profile_tour
from aicompute.profile import profile


@pytest.fixture(scope="module")
def tour():
    return profile_tour(models=("lenet5", "mobilenet_v2"), study="lenet5", llm="transformer", kv_len=32,
                        probe=False)


def test_model_rows_come_from_the_profiler(tour):
    rows = {r["model"]: r for r in tour["models"]}
    assert rows["lenet5"]["macs"] == profile("lenet5").macs
    assert rows["mobilenet_v2"]["params"] == 3_504_872
    assert json.loads(json.dumps(tour))["kind"] == "profile-tour"


def test_category_shares_sum_to_one(tour):
    cats = tour["study"]["categories"]
    for key in ("flops_share", "bytes_share", "time_share"):
        assert sum(c[key] for c in cats) == pytest.approx(1.0)
    assert max(cats, key=lambda c: c["flops_share"])["category"] in ("conv", "matmul")


def test_decode_is_memory_bound_and_lower_intensity(tour):
    prefill, decode = tour["llm"]["phases"]
    assert (prefill["phase"], decode["phase"]) == ("prefill", "decode")
    assert decode["tokens"] == 1 and prefill["tokens"] == 64
    assert decode["intensity"] < prefill["intensity"]
    assert decode["memory_bound_share"] == pytest.approx(1.0)
    assert decode["ms_per_token"] > prefill["ms_per_token"]


def test_training_rows_follow_the_state_model(tour):
    rows = {(t["dtype"], t["optimizer"]): t for t in tour["llm"]["training"]}
    n = rows["float32", "sgd"]["params"]
    per_param = {key: (t["params_bytes"] + t["grads_bytes"] + t["optimizer_state_bytes"]) / n
                 for key, t in rows.items()}
    # fp32 SGD: weights + grads (8 B); fp32 Adam: + two moments (16 B); bf16 Adam: 2 + 2 + 12 (ZeRO's 16Ψ)
    assert per_param == {("float32", "sgd"): 8, ("float32", "adam"): 16, ("bfloat16", "adam"): 16}
    assert rows["bfloat16", "adam"]["mixed_precision"] and not rows["float32", "adam"]["mixed_precision"]
    # bf16 halves the float activations the forward saves (the int64 token ids stay as they are)
    half = rows["float32", "adam"]["saved_activation_bytes"] / 2
    assert half < rows["bfloat16", "adam"]["saved_activation_bytes"] < 1.01 * half
