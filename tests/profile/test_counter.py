"""Bytes, weights, module paths and phases the op counter records, on hand-computed cases."""

import torch
from torch import nn

from aicompute.profile import profile
from aicompute.profile.counter import tensor_bytes


def test_tensor_bytes_counts_broadcast_dims_once():
    assert tensor_bytes(torch.empty(3, 4)) == 48
    assert tensor_bytes(torch.empty(4).expand(3, 4)) == 16
    assert tensor_bytes(torch.empty(3, 4, dtype=torch.bfloat16)) == 24
    assert tensor_bytes(torch.empty(0, 4).expand(0, 4)) == 0
    assert tensor_bytes(torch.empty(6, 4)[::2]) == 48  # strided rows: 3 distinct rows of 4


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
