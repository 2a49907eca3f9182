import json

import torch

from aicompute.demo.foundation import perceptron_lesson, recurrent_check


def test_perceptron_lesson_separable_vs_xor():
    lesson = perceptron_lesson(epochs=30)
    by_name = {p.name: p for p in lesson.problems}
    for name in ("AND", "OR"):
        assert by_name[name].converged and by_name[name].mistakes[-1] == 0
        assert by_name[name].train_accuracy == 1.0
    xor = by_name["XOR"]
    assert not xor.converged and len(xor.mistakes) == 30
    assert min(xor.mistakes) >= 1 and xor.train_accuracy < 1.0
    record = json.loads(json.dumps(lesson.to_dict()))
    assert [p["name"] for p in record["problems"]] == ["AND", "OR", "XOR"]


def test_recurrent_check_matches_torch():
    check = recurrent_check(batch=4, steps=5, input_size=3, hidden_size=8, repeats=2)
    assert [c.cell for c in check.cells] == ["RNN", "LSTM", "GRU"]
    for c in check.cells:
        assert c.max_abs_diff < 1e-5
        assert c.ours_ms_per_step > 0 and c.torch_ms_per_step > 0 and c.ours_train_ms_per_step > 0
    assert check.to_dict()["kind"] == "recurrent-check"


def test_recurrent_check_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    recurrent_check(batch=2, steps=2, input_size=2, hidden_size=2, repeats=1, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_recurrent_check_catches_a_wrong_cell(monkeypatch):
    """The check must see a difference when our layer does not compute torch's function."""
    from aicompute.demo import foundation
    from aicompute.nn.recurrent import GRU

    class SwappedGates(GRU):  # the z ↔ 1 − z mistake: same weights, other convention
        @classmethod
        def from_torch(cls, module):
            layer = GRU.from_torch(module)
            with torch.no_grad():
                for name, p in layer.named_parameters():
                    if p.shape[0] == 3 * module.hidden_size:
                        h = module.hidden_size
                        p[h:2 * h].neg_()  # negate the update gate's rows
            return layer

    monkeypatch.setattr(foundation, "_CELLS", (("GRU", SwappedGates, torch.nn.GRU),))
    check = recurrent_check(batch=3, steps=4, input_size=3, hidden_size=5, repeats=1)
    assert check.cells[0].max_abs_diff > 1e-3
