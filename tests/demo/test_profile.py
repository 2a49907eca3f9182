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
