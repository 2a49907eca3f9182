"""Roll-ups: module-tree sums equal the flat totals; op rows group by name."""

from torch import nn

from aicompute.profile import profile
from aicompute.profile.records import OpRecord
from aicompute.profile.rollup import ancestors, by_module, by_op, sum_records


def _rec(op, module, flops, macs=0, category="elementwise", nbytes=(1, 2, 3)):
    return OpRecord(op, module, "forward", category, "float32", macs, flops, *nbytes)


def test_ancestors():
    assert ancestors("a.b.c") == ["a.b.c", "a.b", "a", ""]
    assert ancestors("") == [""]


def test_sum_separates_uncounted():
    cost = sum_records([_rec("aten.mm", "x", 20, 10, "matmul"), _rec("aten.foo", "x", None)])
    assert (cost.calls, cost.macs, cost.flops, cost.tensor_flops) == (2, 10, 20, 20)
    assert (cost.uncounted_calls, cost.uncounted_bytes) == (1, 6)
    assert cost.moved == 12 and cost.intensity == 20 / 12


def test_module_rows_roll_up_to_the_root():
    modules = {"": ("Net", 10), "a": ("Seq", 6), "a.0": ("Linear", 6), "b": ("Linear", 4)}
    records = [_rec("aten.mm", "a.0", 8, 4, "matmul"), _rec("aten.relu", "a", 1), _rec("aten.add", "b", 2)]
    rows = {row.path: row for row in by_module(records, modules)}
    assert rows[""].cost.flops == 11 and rows["a"].cost.flops == 9 and rows["a.0"].cost.flops == 8
    assert rows["b"].cost.calls == 1
    shallow = by_module(records, modules, depth=1)
    assert [row.path for row in shallow] == ["", "a", "b"]


def test_op_rows_group_and_sort():
    rows = by_op([_rec("aten.relu", "a", 1), _rec("aten.mm", "a", 8, 4, "matmul"), _rec("aten.relu", "b", 1)])
    assert [(r.op, r.cost.calls, r.cost.flops) for r in rows] == [("aten.mm", 1, 8), ("aten.relu", 2, 2)]


def test_real_model_tree_is_consistent():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    result = profile(net, input_shape=(2, 1, 8, 8))
    rows = result.by_module()
    root = rows[0]
    assert root.path == "" and root.cost.macs == result.macs
    assert sum(row.cost.flops for row in rows if row.depth == 1) == root.cost.flops
    assert [row.params for row in rows] == [4 * 9 + 4 + 144 * 10 + 10, 40, 0, 0, 1450]


class _Twice(nn.Module):
    """Calls one Linear twice and returns a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        self.shared = nn.Linear(4, 4)

    def forward(self, x):
        y = self.body(x)
        return self.shared(y), self.shared(y).sum()


def test_output_bytes_are_what_each_forward_returns():
    result = profile(_Twice(), input_shape=(2, 8), mode="training")
    out = {row.path: row.output_bytes for row in result.by_module()}
    # float32, batch 2: body.0 → 2×16, body.1 → 2×16, body.2 → 2×4; shared runs twice (2×4 each); the
    # model returns 2×4 and a scalar. Backward adds nothing, though it writes plenty.
    assert out == {"": 4 * (8 + 1), "body": 32, "body.0": 128, "body.1": 128, "body.2": 32, "shared": 64}


class _Fallback(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.slow = nn.Linear(8, 4)

    def forward(self, x):
        try:
            raise NotImplementedError("no fast path")
        except NotImplementedError:
            return self.slow(x)  # called while an exception is being handled: it still returns normally


def test_a_module_called_in_an_except_block_still_has_its_output():
    result = profile(_Fallback(), input_shape=(2, 8))
    assert {row.path: row.output_bytes for row in result.by_module()} == {"": 32, "slow": 32}
