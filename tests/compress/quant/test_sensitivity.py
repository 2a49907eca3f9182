from dataclasses import replace

import pytest

from aicompute.compress.quant.ptq import QuantConfig, quantize
from aicompute.compress.quant.sensitivity import mixed_precision, sensitivity

CONFIG = QuantConfig(bits=2, act_bits=None)


def test_sensitivity_row_is_the_layer_quantized_alone(digits_mlp):
    model, train, test = digits_mlp
    rows = sensitivity(model, train, test, CONFIG)
    assert sorted(r.name for r in rows) == ["layers.0", "layers.2", "layers.4"]
    assert [r.drop_pt for r in rows] == sorted((r.drop_pt for r in rows), reverse=True)
    alone = quantize(model, train, replace(CONFIG, skip=("layers.0", "layers.2")), eval_data=test)
    assert {r.name: r.accuracy for r in rows}["layers.4"] == alone.accuracy


def test_mixed_precision_raises_the_most_sensitive_layers_first(digits_mlp):
    model, train, test = digits_mlp
    result = mixed_precision(model, train, test, CONFIG, budget_pt=0.2)
    ranked = [r["name"] for r in result.extra["sensitivity"]]
    raised = result.extra["raised_to_high_bits"]
    assert raised == ranked[: len(raised)]
    assert result.accuracy_drop <= 0.2 or len(raised) == len(ranked)
    assert {layer.name: layer.weight_bits for layer in result.layers} == {
        name: 8 if name in raised else 2 for name in ranked}
    with pytest.raises(Exception):
        mixed_precision(model, train, test, CONFIG, budget_pt=-1)
