"""Format effects on a trained checkpoint: fp32 is exact, narrower formats cost more, sizes are exact."""

import pytest
import torch

from aicompute.compress.format_effects import cast_weights, format_effects
from aicompute.compress.formats import cast
from aicompute.train import train_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "mlp.pt"
    train_model("mlp", "digits", epochs=1, max_steps=30, out=path, seed=0)
    return path


def test_fp32_is_exact_and_narrow_formats_cost_more(checkpoint):
    from aicompute.train import evaluate_checkpoint

    result = format_effects(checkpoint, formats=("fp32", "bf16", "fp8_e5m2"))
    by = {e.format: e for e in result.effects}
    baseline = evaluate_checkpoint(checkpoint)
    assert by["fp32"].rel_rms_error == 0 and by["fp32"].accuracy == baseline.accuracy
    assert 0 < by["bf16"].rel_rms_error < by["fp8_e5m2"].rel_rms_error
    assert by["bf16"].rel_rms_error <= 2 ** -8  # half a bf16 step, relative
    assert by["fp32"].weight_bytes == 4 * result.params
    assert by["fp8_e5m2"].weight_bytes == result.params
    assert result.to_dict()["kind"] == "format-effects"


def test_cast_weights_copies_and_rounds():
    model = torch.nn.Linear(3, 2)
    before = model.weight.detach().clone()
    cast_model = cast_weights(model, "fp8_e4m3")
    assert torch.equal(model.weight, before)  # input untouched
    assert torch.equal(cast_model.weight, cast(before, "fp8_e4m3"))
    assert not torch.equal(cast_model.weight, before)  # fp8 really rounds these weights
