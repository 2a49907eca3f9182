"""The ZeRO memory model against the ZeRO paper's worked example and its closed forms, and the measured
model-state bytes of a real optimizer against hand counts (no ranks needed)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.parallel.zero import FP32_ADAM, ZeroMemory, model_state_bytes, zero_memory, zero_table


def test_the_zero_papers_worked_example():
    """Rajbhandari et al. 2020, Fig. 1 / Table 1: 7.5B parameters, N_d = 64, mixed-precision Adam (K = 12):
    120 GB for DDP, 31.4 GB with P_os, 16.6 GB with P_os+g, 1.9 GB with P_os+g+p (GB = 1e9 bytes)."""
    rows = zero_table(7_500_000_000, 64)
    assert [r.stage for r in rows] == [0, 1, 2, 3]
    assert [round(r.total / 1e9, 1) for r in rows] == [120.0, 31.4, 16.6, 1.9]
    # the exact values behind the rounding: 16Ψ, 4Ψ + 12Ψ/64, 2Ψ + 14Ψ/64, 16Ψ/64
    assert [r.total for r in rows] == [120_000_000_000, 31_406_250_000, 16_640_625_000, 1_875_000_000]


@settings(max_examples=60, deadline=None)
@given(psi=st.integers(1, 10**12), n=st.integers(1, 4096))
def test_closed_forms_for_any_size(psi, n):
    ddp, s1, s2, s3 = zero_table(psi, n)
    k = 12
    shard = lambda b: -(-b // n)  # noqa: E731 — ceil division
    assert ddp.total == (2 + 2 + k) * psi
    assert s1.total == 2 * psi + 2 * psi + shard(k * psi)
    assert s2.total == 2 * psi + shard(2 * psi) + shard(k * psi)
    assert s3.total == shard(2 * psi) + shard(2 * psi) + shard(k * psi)
    assert ddp.total >= s1.total >= s2.total >= s3.total  # each stage shards one more part
    if n == 1:  # one rank: nothing to shard
        assert ddp.total == s3.total


def test_other_precisions_and_to_dict():
    m = zero_memory(1000, 4, 3, param_bytes=FP32_ADAM[0], grad_bytes=FP32_ADAM[1], optimizer_bytes=FP32_ADAM[2])
    assert (m.param_bytes, m.grad_bytes, m.optimizer_bytes, m.total) == (1000, 1000, 2000, 4000)
    d = zero_memory(10, 2, 1).to_dict()
    assert d["kind"] == "zero-memory" and d["total_bytes"] == 20 + 20 + 60 and "P_os" in d["name"]


@pytest.mark.parametrize("kwargs, match", [
    ({"num_params": 0, "world_size": 2, "stage": 1}, "num_params"),
    ({"num_params": 10, "world_size": 0, "stage": 1}, "world_size"),
    ({"num_params": 10, "world_size": 2, "stage": 4}, "stage must be one of"),
    ({"num_params": 10, "world_size": 2, "stage": 1, "optimizer_bytes": -1}, "optimizer_bytes"),
])
def test_bad_arguments_are_user_errors(kwargs, match):
    with pytest.raises(AicomputeError, match=match):
        zero_memory(**kwargs)


def test_measured_bytes_of_fp32_adam_match_the_model():
    """After one Adam step, a rank with a plain (unsharded) model holds 4Ψ + 4Ψ + 8Ψ bytes (+ the step
    counters, one fp32 scalar per parameter tensor) — the model's DDP row with FP32_ADAM."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3))  # 45 + 18 = 63 parameters
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = model_state_bytes(model, opt)
    assert before == {"params": 63 * 4, "grads": 0, "optimizer": 0, "total": 63 * 4}
    model(torch.randn(2, 8)).sum().backward()
    opt.step()
    measured = model_state_bytes(model, opt)
    steps = 4 * 4  # four parameter tensors, one float32 ``step`` each
    expected = zero_memory(63, 1, 0, param_bytes=4, grad_bytes=4, optimizer_bytes=8)
    assert isinstance(expected, ZeroMemory)
    assert measured["params"] == expected.param_bytes and measured["grads"] == expected.grad_bytes
    assert measured["optimizer"] == expected.optimizer_bytes + steps
    assert measured["total"] == expected.total + steps
