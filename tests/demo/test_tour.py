import json

import pytest

from aicompute.demo import DemoResult, Step, default_steps, run_demo
from aicompute.report.html import Chapter


class _Record:
    def __init__(self, value):
        self.value = value

    def to_dict(self):
        return {"value": self.value}


def _chapter(record):
    return Chapter(f"value is {record['value']}").table(["v"], [(record["value"],)])


def test_run_demo_writes_every_record_and_one_report(tmp_path):
    steps = [Step("a", "A", lambda: _Record(1), _chapter), Step("b", "B", lambda: {"value": 2}, _chapter)]
    result = run_demo(tmp_path / "out", steps=steps, progress=False)
    assert isinstance(result, DemoResult)
    assert json.loads((tmp_path / "out" / "a.json").read_text()) == {"value": 1}
    assert json.loads((tmp_path / "out" / "b.json").read_text()) == {"value": 2}
    page = result.report.read_text()
    assert "value is 1" in page and "value is 2" in page
    assert page.index("value is 1") < page.index("value is 2")  # chapters in step order
    assert set(result.seconds) == {"a", "b"}
    assert result.to_dict()["records"] == ["a", "b"]


def test_a_failing_step_leaves_no_report(tmp_path):
    def boom():
        raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        run_demo(tmp_path, steps=[Step("x", "X", boom, _chapter)], progress=False)
    assert not (tmp_path / "report.html").exists()


def test_default_steps_cover_the_foundation_tour():
    keys = [s.key for s in default_steps()]
    assert keys[:4] == ["zoo", "train_lenet5_mnist", "perceptron", "recurrent"]
    assert len(keys) == len(set(keys))
