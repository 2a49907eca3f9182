"""Bytes, weights, module paths and phases the op counter records, on hand-computed cases."""

import torch
from torch import nn

from aicompute.profile import profile


def test_linear_bytes_split_into_weights_and_activations():
    result = profile(nn.Linear(8, 3), input_shape=(2, 8))
    (mm,) = [r for r in result.records if r.category == "matmul"]
    assert mm.op == "aten.addmm" and mm.module == "" and mm.phase == "forward"
    assert mm.macs == 2 * 8 * 3 and mm.flops == 2 * mm.macs
    assert mm.weight_read == (8 * 3 + 3) * 4  # weight and bias
    assert mm.act_read == 2 * 8 * 4
    assert mm.written == 2 * 3 * 4
    assert mm.dtype == "float32"


def test_embedding_reads_only_gathered_rows():
    result = profile(nn.Embedding(1000, 16), torch.zeros(2, 5, dtype=torch.long))
    (emb,) = [r for r in result.records if r.op == "aten.embedding"]
    assert emb.weight_read == 2 * 5 * 16 * 4  # the rows looked up, not the 1000 x 16 table
    assert emb.act_read == 2 * 5 * 8  # int64 ids
    assert emb.flops == 0 and emb.category == "embedding"


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.relu(self.fc(x))


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = Inner()
        self.b = nn.Sequential(nn.Linear(4, 2))

    def forward(self, x):
        return self.b(self.a(x) * 2)


def test_records_carry_innermost_module_and_phase():
    result = profile(Outer(), input_shape=(3, 4), mode="training")
    forward = [(r.op, r.module) for r in result.records if r.phase == "forward" and r.category != "creation"]
    assert forward == [("aten.addmm", "a.fc"), ("aten.relu", "a"), ("aten.mul", ""), ("aten.addmm", "b.0")]
    backward_modules = {r.module for r in result.records if r.phase == "backward"}
    assert {"a.fc", "b.0"} <= backward_modules
    # the last layer's weight gradient and input gradient are matmuls inside b.0 during backward
    b0 = [r for r in result.records if r.phase == "backward" and r.module == "b.0" and r.category == "matmul"]
    assert sum(r.macs for r in b0) == 2 * (3 * 4 * 2)


def test_bf16_halves_bytes():
    fp32 = profile(nn.Linear(16, 16), input_shape=(4, 16)).total
    bf16 = profile(nn.Linear(16, 16), input_shape=(4, 16), dtype="bf16").total
    assert bf16.moved * 2 == fp32.moved
    assert bf16.macs == fp32.macs


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(64, 64), nn.Linear(64, 64)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


class _Checkpointed(nn.Module):
    def __init__(self, reentrant: bool | None) -> None:
        super().__init__()
        self.a, self.b, self.reentrant = nn.Linear(64, 64), _Block(), reentrant

    def forward(self, x):
        x = self.a(x)
        if self.reentrant is None:
            return self.b(x)
        return torch.utils.checkpoint.checkpoint(self.b, x, use_reentrant=self.reentrant)


def test_checkpoint_recomputation_belongs_to_the_recomputed_module():
    # one Linear(64, 64) on 8 rows: 2·8·64·64 = 65,536 FLOPs forward; the recomputed forward runs in backward
    linear = 2 * 8 * 64 * 64
    flops = {}
    for reentrant in (None, True, False):
        result = profile(_Checkpointed(reentrant), input_shape=(8, 64), mode="training")
        flops[reentrant] = {row.path: row.cost.flops for row in result.by_module()}
        recomputed = [r for r in result.records if r.phase == "backward" and r.op == "aten.addmm"]
        assert {r.module for r in recomputed} == ({"b.l1", "b.l2"} if reentrant else {"b.l1"} if reentrant is False
                                                   else set())
    plain = flops[None]
    # reentrant: the whole block runs again; a is untouched
    assert flops[True]["b.l1"] == plain["b.l1"] + linear and flops[True]["b.l2"] == plain["b.l2"] + linear
    assert flops[True]["a"] == plain["a"]
    # non-reentrant stops recomputing once it has what backward needs: l2's input, not l2's output
    assert flops[False]["b.l1"] == plain["b.l1"] + linear and flops[False]["b.l2"] == plain["b.l2"]
    assert flops[False]["a"] == plain["a"]


def test_the_backward_seed_is_not_an_op_of_the_model():
    result = profile(nn.Linear(8, 4), input_shape=(2, 8), mode="training")
    assert [(r.op, r.phase) for r in result.records] == [
        ("aten.addmm", "forward"), ("aten.mm", "backward"), ("aten.sum", "backward")]  # dW = gᵀx, db = Σg
