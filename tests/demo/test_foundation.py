import json

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
        assert c.ours_ms_per_step > 0 and c.torch_ms_per_step > 0
        assert abs(c.ratio - c.ours_ms_per_step / c.torch_ms_per_step) < 1e-12
    assert check.to_dict()["kind"] == "recurrent-check"
