"""Data-parallel training on 2 gloo ranks against single-process SGD on the same global batches.

The proof: PS, DDP (with and without gradient accumulation), FSDP2 and local SGD with period 1 each give
the single-process losses to 1e-5 (``train_single_process`` is an independent plain loop on the same
slices of the same permutation). Bytes are checked against hand counts: DDP hands ``4Ψ`` per synchronised
step to its hook (``2Ψ`` with fp16), the parameter server sends and receives ``(p-1)·4Ψ`` per step, the
ring ``2(p-1)/p·4Ψ`` per average. Spawning is slow here, so one launch (``_all_modes``, loaded by path)
runs every mode (and the registered ``ps`` job) in one process group.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from aicompute.errors import AicomputeError
from aicompute.parallel.data_parallel import (
    DataParallelConfig,
    global_batches,
    ring_bytes_sent,
    run_data_parallel,
    train_data_parallel,
    train_single_process,
)
from aicompute.parallel import data_parallel
from aicompute.parallel.jobs import get_job, parse_job_options
from aicompute.parallel.launch import LaunchResult, launch

pytestmark = pytest.mark.usefixtures("two_minute_limit")

STEPS = 20
BASE = DataParallelConfig("ddp", model="mlp", data="digits", steps=STEPS, batch_size=16, lr=0.1, seed=3,
                          progress=False)
RUNS = {
    "ddp": BASE,
    "ps": replace(BASE, mode="ps"),
    "fsdp": replace(BASE, mode="fsdp"),
    "local-sgd-1": replace(BASE, mode="local-sgd", period=1),
    "local-sgd-4": replace(BASE, mode="local-sgd", period=4),
    "ddp-accumulate": replace(BASE, batch_size=8, accumulate=2),
    "ddp-fp16": replace(BASE, hook="fp16"),
}
JOB_ARGV = ["--steps", "3", "--batch-size", "8", "--seed", "1", "--no-progress"]


def _all_modes(ctx):
    """Every run of RUNS in one process group, and the registered ``ps`` job as the CLI calls it; rank 0's
    records by name."""
    records = {name: run_data_parallel(ctx, config) for name, config in RUNS.items()}
    records["job-ps"] = get_job("ps").fn(ctx, **parse_job_options(get_job("ps"), JOB_ARGV))
    return records


@pytest.fixture(scope="module")
def results():
    return launch(f"{__file__}:_all_modes", nproc=2, timeout=60).value


@pytest.fixture(scope="module")
def reference():
    return train_single_process(BASE, world_size=2)


@pytest.mark.parametrize("name", ["ddp", "ps", "fsdp", "local-sgd-1", "ddp-accumulate"])
def test_losses_equal_single_process_training_on_the_global_batch(results, reference, name):
    got = results[name].losses
    assert len(got) == len(reference) == STEPS
    assert max(abs(a - b) for a, b in zip(got, reference)) < 1e-5
    assert reference[-1] < reference[0]  # it does learn


def test_ddp_hook_sees_every_gradient_once_per_synchronised_step(results):
    ddp, acc, fp16 = results["ddp"], results["ddp-accumulate"], results["ddp-fp16"]
    psi = ddp.params
    assert psi == 64 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10  # LeNet-300-100 head on 8×8 digits
    assert ddp.payload_bytes == STEPS * 4 * psi
    assert acc.payload_bytes == STEPS * 4 * psi  # no_sync: the first micro-batch of each step sends nothing
    assert fp16.payload_bytes == STEPS * 2 * psi  # half the bytes on the wire
    assert ddp.bytes_sent == STEPS * 4 * psi  # ring model at p = 2: 2(p-1)/p = 1
    # fp16 gradients change the numbers a little, not the training
    assert max(abs(a - b) for a, b in zip(fp16.losses, ddp.losses)) < 1e-2
    assert fp16.losses != ddp.losses


def test_parameter_server_bytes_are_counted_per_message(results):
    ps = results["ps"]
    # rank 0 is the server: (p-1) gradients in and (p-1) parameter vectors out per step, 4Ψ bytes each
    assert ps.bytes_measured and ps.bytes_recv == ps.bytes_sent == STEPS * 1 * 4 * ps.params
    assert ps.model_state["optimizer"] == 0  # plain SGD keeps no state


def test_local_sgd_trades_bytes_for_agreement(results):
    one, four = results["local-sgd-1"], results["local-sgd-4"]
    per_sync = ring_bytes_sent(one.params, 4, 2, 0)
    assert per_sync == 4 * one.params  # p = 2: rank 0 sends half the vector in each of the two phases
    assert (one.syncs, four.syncs) == (STEPS, STEPS // 4)
    assert one.bytes_sent == STEPS * per_sync and four.bytes_sent == (STEPS // 4) * per_sync
    assert four.test_accuracy > 0.5 and one.test_accuracy > 0.5


def test_fsdp_shards_model_state(results):
    ddp, fsdp = results["ddp"], results["fsdp"]
    # every tensor is cut along dim 0 into 2 pieces of ceil(rows/2) rows; rank 0 holds the first
    shapes = [(300, 64), (300,), (100, 300), (100,), (10, 100), (10,)]
    row = lambda s: (s[1] if len(s) > 1 else 1)  # noqa: E731 — elements per row
    shard = sum(-(-s[0] // 2) * row(s) for s in shapes) * 4
    assert fsdp.model_state["params"] == fsdp.model_state["grads"] == shard
    assert ddp.model_state["params"] == ddp.model_state["grads"] == 4 * ddp.params
    assert fsdp.zero_model["total_bytes"] == 2 * 4 * ddp.params // 2  # ZeRO-3 model: (4 + 4)Ψ / 2
    assert fsdp.model_state["total"] == fsdp.zero_model["total_bytes"]  # every dim 0 here is even


def test_global_batches_cover_each_epoch_once():
    config = DataParallelConfig("ddp", epochs=2, batch_size=5, accumulate=3)
    batches = global_batches(101, 2, config)  # 100 usable, 30 per step: 3 steps per epoch
    assert len(batches) == 6 and all(len(b) == 30 for b in batches)
    first_epoch = set().union(*[set(b.tolist()) for b in batches[:3]])
    assert len(first_epoch) == 90


def test_the_registered_job_takes_command_line_options(results):
    result = results["job-ps"]
    assert result.config == DataParallelConfig("ps", steps=3, batch_size=8, seed=1, progress=False)
    assert result.world_size == 2 and result.global_batch == 16
    assert max(abs(a - b) for a, b in zip(result.losses, train_single_process(result.config, 2))) < 1e-5
    assert result.to_dict()["kind"] == "data-parallel" and result.to_dict()["steps"] == 3


def test_train_data_parallel_launches_the_job_named_by_the_mode(monkeypatch):
    """The launch itself is covered by ``results``; here, what ``train_data_parallel`` asks of it."""
    calls = []

    record = data_parallel.DataParallelResult(BASE, 3, 1, 48, [1.0], 1.0, 0.5, 0, 0, 0, True, 0, {}, {}, 0.0)

    def fake_launch(job, **kw):
        calls.append((job, kw))
        return LaunchResult(job, kw["nproc"], "gloo", 1.5, value=record)

    monkeypatch.setattr(data_parallel, "launch", fake_launch)
    result = train_data_parallel("local-sgd", "mlp", "digits", nproc=3, timeout=9, period=2, progress=False)
    assert calls == [("local-sgd", {"nproc": 3, "backend": None, "timeout": 9,
                                    "options": {"model": "mlp", "data": "digits", "period": 2, "progress": False}})]
    assert result.wall_s == 1.5  # the launch's wall time, spawning included


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "zero"}, "unknown data-parallel mode"),
    ({"mode": "ps", "hook": "fp16"}, "use it with mode ddp"),
    ({"mode": "ddp", "hook": "int4"}, "unknown comm hook"),
    ({"mode": "ddp", "accumulate": 0}, "accumulate"),
])
def test_bad_configs_fail_before_spawning(kwargs, match):
    mode = kwargs.pop("mode")
    with pytest.raises(AicomputeError, match=match):
        train_data_parallel(mode, **kwargs)
