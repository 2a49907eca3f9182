"""The distributed tour: the seed's traffic formulas, and a measured sweep from real ranks."""

import json

import pytest

from aicompute.demo.parallel import parallel_tour

pytestmark = pytest.mark.usefixtures("two_minute_limit")


def test_traffic_follows_the_seed_and_the_sweep_is_measured():
    v = 1 << 20
    tour = parallel_tour(nbytes=v, devices=(2, 4), sizes=(4096,), repeats=1, steps=3)
    two, four = tour["traffic"]
    assert two["ring_bytes_per_rank"] == 2 * (2 - 1) * v / 2 and four["ring_bytes_per_rank"] == 2 * 3 * v / 4
    assert four["ps_server_bytes"] == 2 * 3 * v  # (p − 1)V in and (p − 1)V out
    assert four["ring_total_bytes"] == 4 * four["ring_bytes_per_rank"]
    algorithms = {r["algorithm"] for r in tour["comm"]["rows"]}
    assert {"ring", "ps", "backend"} <= algorithms
    assert all(r["time_ms"] > 0 for r in tour["comm"]["rows"])
    assert json.loads(json.dumps(tour))["kind"] == "parallel-tour"
    assert [r["mode"] for r in tour["training"]] == ["ddp", "ps"]
    assert all(r["steps"] == 3 and r["max_loss_diff"] < 1e-5 for r in tour["training"])
