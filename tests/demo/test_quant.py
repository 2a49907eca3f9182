"""The quantization tour's record: a sweep from the library, receipts measured, JSON-safe."""

import json

import pytest

from aicompute.demo.quant import FULL_BITS, WEIGHT_ONLY_BITS, quant_tour


@pytest.fixture(scope="module")
def tour():
    return quant_tour(epochs=1, resnet_width=4, batch_size=8, repeats=2)


def test_sweep_covers_every_bit_width(tour):
    labels = [p["label"] for p in tour["sweep"]]
    assert labels == [f"W{b}" for b in WEIGHT_ONLY_BITS] + [f"W{b}A{b}" for b in FULL_BITS]
    w8 = tour["sweep"][0]
    assert w8["drop_pt"] == pytest.approx(100 * (tour["float_accuracy"] - w8["accuracy"]))
    assert json.loads(json.dumps(tour))["kind"] == "quant-tour"


def test_receipts_are_measured(tour):
    for receipt in tour["receipts"]:
        assert receipt["quant_bytes"] < receipt["float_bytes"]
        assert receipt["ort_float_ms"] > 0 and receipt["ort_quant_ms"] > 0
        assert receipt["integer_ops"]
    assert tour["receipts"][0]["ort_accuracy"] is not None
    assert tour["receipts"][1]["ort_accuracy"] is None  # untrained: size and speed only

