"""Data-parallel training on 2 and 4 gloo ranks against single-process SGD on the same global batches,
a rank killed mid-epoch and the run resumed, and bad jobs refused before any rank starts.

The proof: PS, DDP (with and without gradient accumulation), FSDP2 and local SGD with period 1 each give
the single-process losses to 1e-5 (``train_single_process`` is an independent plain loop on the same
slices of the same permutation); DDP, PS and FSDP again at 4 ranks. Bytes are checked against hand counts:
DDP hands ``4Ψ`` per synchronised step to its hook (``2Ψ`` with fp16), the parameter server sends and
receives ``(p-1)·4Ψ`` per step, the ring ``2(p-1)/p·4Ψ`` per average. Spawning is slow here (4 ranks share
2 cores), so one launch per world size (``_all_modes``, ``_four_rank_modes``, loaded by path) runs every
mode in one process group, and the fault test's restart is compared with the 4-rank top-k DDP run of that
launch.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.parallel import data_parallel
from aicompute.parallel import launch as launch_module
from aicompute.parallel.checkpoint import checkpoint_steps
from aicompute.parallel.collectives import ring_bytes_sent
from aicompute.parallel.data_parallel import (
    DataParallelConfig,
    DataParallelResult,
    global_batches,
    run_data_parallel,
    train_data_parallel,
    train_single_process,
)
from aicompute.parallel.jobs import get_job, parse_job_options
from aicompute.parallel.launch import LaunchResult, RankFailedError, launch

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
    "fsdp-accumulate": replace(BASE, mode="fsdp", batch_size=8, accumulate=2),
    "ddp-fp16": replace(BASE, hook="fp16"),
    "ddp-topk": replace(BASE, hook="topk", topk_ratio=0.1),
    "ddp-powersgd": replace(BASE, hook="powersgd", powersgd_rank=2),
}
FOUR = replace(BASE, batch_size=8)  # global batch 32 on 4 ranks
JOB_ARGV = ["--steps", "3", "--batch-size", "8", "--seed", "1", "--no-progress"]


def _all_modes(ctx):
    """Every run of RUNS in one process group, and the registered ``ps`` job as the CLI calls it; rank 0's
    records by name."""
    records = {name: run_data_parallel(ctx, config) for name, config in RUNS.items()}
    records["job-ps"] = get_job("ps").fn(ctx, **parse_job_options(get_job("ps"), JOB_ARGV))
    return records


def _four_rank_modes(ctx):
    records = {mode: run_data_parallel(ctx, replace(FOUR, mode=mode)) for mode in ("ddp", "ps", "fsdp")}
    records["ddp-topk"] = run_data_parallel(ctx, replace(FOUR, hook="topk", topk_ratio=0.1))
    return records


@pytest.fixture(scope="module")
def results():
    return launch(f"{__file__}:_all_modes", nproc=2, timeout=60).value


@pytest.fixture(scope="module")
def results4():
    return launch(f"{__file__}:_four_rank_modes", nproc=4, timeout=60).value


def _assert_gone(pids):
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddp", "ps", "fsdp", "local-sgd-1", "ddp-accumulate", "fsdp-accumulate"])
def test_losses_equal_single_process_training_on_the_global_batch(results, name):
    reference = train_single_process(BASE, world_size=2)
    got = results[name].losses
    assert len(got) == len(reference) == STEPS
    assert max(abs(a - b) for a, b in zip(got, reference)) < 1e-5
    assert reference[-1] < reference[0]  # it does learn


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "ps", "fsdp"])
def test_four_ranks_equal_single_process_training_too(results4, mode):
    reference = train_single_process(FOUR, world_size=4)
    got = results4[mode]
    assert got.world_size == 4 and got.global_batch == 32 and len(got.losses) == len(reference) == STEPS
    assert max(abs(a - b) for a, b in zip(got.losses, reference)) < 1e-5
    assert reference[-1] < reference[0]


@pytest.mark.slow
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


@pytest.mark.slow
def test_compressing_hooks_report_their_own_bytes(results):
    ddp, topk, powersgd = results["ddp"], results["ddp-topk"], results["ddp-powersgd"]
    psi = ddp.params
    k = -(-psi // 10)  # ceil(0.1·Ψ) of the one bucket, sent as fp32 value + int32 index
    assert topk.payload_bytes == STEPS * k * 8
    assert topk.bytes_sent == topk.payload_bytes  # all-gather: (p-1) times its piece, p = 2
    # PowerSGD, rank 2: two plain warm-up steps, then P and Q ((n + m)·2) for each matrix worth compressing,
    # the rest as is: 300×64 → 728, bias 300, 100×300 → 800, bias 100, 10×100 → 220, bias 10
    assert powersgd.payload_bytes == 2 * 4 * psi + (STEPS - 2) * 4 * (728 + 300 + 800 + 100 + 220 + 10)
    assert topk.syncs == powersgd.syncs == ddp.syncs == STEPS
    for run in (topk, powersgd):  # they learn, a little behind the exact average
        assert run.losses[-1] < run.losses[0] and abs(run.losses[0] - ddp.losses[0]) < 1e-6


@pytest.mark.slow
def test_parameter_server_bytes_are_counted_per_message(results, results4):
    # rank 0 is the server: (p-1) gradients in and (p-1) parameter vectors out per step, 4Ψ bytes each
    for ps, p in ((results["ps"], 2), (results4["ps"], 4)):
        assert ps.bytes_measured and ps.bytes_recv == ps.bytes_sent == STEPS * (p - 1) * 4 * ps.params
        assert ps.model_state["optimizer"] == 0  # plain SGD keeps no state
    ddp4 = results4["ddp"]  # the ring model: 2(p-1)/p · 4Ψ per step, whatever p
    assert ddp4.bytes_sent == round(2 * 3 / 4 * STEPS * 4 * ddp4.params)


@pytest.mark.slow
def test_local_sgd_trades_bytes_for_agreement(results):
    one, four = results["local-sgd-1"], results["local-sgd-4"]
    per_sync = ring_bytes_sent(one.params, 4, 2, 0)
    assert per_sync == 4 * one.params  # p = 2: rank 0 sends half the vector in each of the two phases
    assert (one.syncs, four.syncs) == (STEPS, STEPS // 4)
    assert one.bytes_sent == STEPS * per_sync and four.bytes_sent == (STEPS // 4) * per_sync
    assert four.test_accuracy > 0.5 and one.test_accuracy > 0.5


@pytest.mark.slow
def test_fsdp_shards_model_state(results, results4):
    ddp, fsdp = results["ddp"], results["fsdp"]
    # every tensor is cut along dim 0 into p pieces of ceil(rows/p) rows; rank 0 holds the first
    shapes = [(300, 64), (300,), (100, 300), (100,), (10, 100), (10,)]
    row = lambda s: (s[1] if len(s) > 1 else 1)  # noqa: E731 — elements per row
    shard = lambda p: sum(-(-s[0] // p) * row(s) for s in shapes) * 4  # noqa: E731
    assert fsdp.model_state["params"] == fsdp.model_state["grads"] == shard(2)
    assert ddp.model_state["params"] == ddp.model_state["grads"] == 4 * ddp.params
    assert fsdp.zero_model["total_bytes"] == 2 * 4 * ddp.params // 2  # ZeRO-3 model: (4 + 4)Ψ / 2
    assert fsdp.model_state["total"] == fsdp.zero_model["total_bytes"]  # every dim 0 here is even
    assert results4["fsdp"].model_state["params"] == shard(4)  # 10 rows over 4 ranks: 3, 3, 3, 1
    # FSDP2 gathers the parameters for forward and again for backward in every micro-batch, and
    # reduce-scatters the gradients once per step (set_requires_gradient_sync on the last micro-batch only)
    psi_bytes = 4 * ddp.params
    assert fsdp.payload_bytes == 3 * STEPS * psi_bytes
    assert results["fsdp-accumulate"].payload_bytes == (2 * 2 + 1) * STEPS * psi_bytes
    assert fsdp.bytes_sent == psi_bytes * 3 * STEPS // 2  # (p-1)/p of it at p = 2


def test_global_batches_cover_each_epoch_once():
    config = DataParallelConfig("ddp", epochs=2, batch_size=5, accumulate=3)
    batches = global_batches(101, 2, config)  # 100 usable, 30 per step: 3 steps per epoch
    assert len(batches) == 6 and all(len(b) == 30 for b in batches)
    first_epoch = set().union(*[set(b.tolist()) for b in batches[:3]])
    assert len(first_epoch) == 90


@pytest.mark.slow
def test_the_registered_job_takes_command_line_options(results):
    result = results["job-ps"]
    assert result.config == DataParallelConfig("ps", steps=3, batch_size=8, seed=1, progress=False)
    assert result.world_size == 2 and result.global_batch == 16
    assert max(abs(a - b) for a, b in zip(result.losses, train_single_process(result.config, 2))) < 1e-5
    assert result.to_dict()["kind"] == "data-parallel" and result.to_dict()["steps"] == 3


def test_the_job_parses_checkpoint_and_fault_options():
    job = get_job("ddp")
    argv = ["--checkpoint-every", "4", "--fail-rank", "1", "--fail-step", "7", "--fail-mode", "kill"]
    assert parse_job_options(job, argv) == {"checkpoint_every": 4, "fail_rank": 1, "fail_step": 7,
                                            "fail_mode": "kill"}


# --- a rank killed mid-epoch, and the restart --------------------------------------------------------

FAULT_RUN = {"steps": STEPS, "batch_size": 8, "seed": 3, "lr": 0.1, "progress": False, "checkpoint_every": 4,
             "hook": "topk", "topk_ratio": 0.1}  # the top-k residuals must come back too


@pytest.mark.slow
def test_a_rank_killed_mid_epoch_stops_the_run_and_resume_ends_as_an_uninterrupted_run(tmp_path, results4, capfd):
    assert DataParallelConfig("ddp", **FAULT_RUN) == replace(FOUR, hook="topk", topk_ratio=0.1, checkpoint_every=4)
    t0 = time.monotonic()
    with pytest.raises(RankFailedError, match="^rank 2 failed: killed by signal SIGKILL$") as info:
        train_data_parallel("ddp", nproc=4, timeout=60, checkpoint_dir=tmp_path, fail_rank=2, fail_step=11,
                            fail_mode="kill", **FAULT_RUN)
    # start-up and 11 steps, then the launcher sees the death itself: no peer sits out its 60 s timeout
    assert time.monotonic() - t0 < 60
    _assert_gone(info.value.pids)
    assert checkpoint_steps(tmp_path) == [4, 8]  # step 11 died before its update; 12 was never reached
    assert not list(tmp_path.glob(".*.partial"))
    capfd.readouterr()

    resumed = train_data_parallel("ddp", nproc=4, timeout=60, checkpoint_dir=tmp_path, resume=True,
                                  **{**FAULT_RUN, "progress": True})
    assert "[ddp] resuming after step 8" in capfd.readouterr().err  # rank 0's progress
    uninterrupted = results4["ddp-topk"]
    assert resumed.resumed_from == 8 and len(resumed.losses) == STEPS
    # bit for bit: the record read back, then the same batches from the same weights and residuals, summed in
    # rank order (a plain all-reduce hook would differ by an ulp at 4 ranks: see dp_checkpoint's docstring)
    assert resumed.losses == uninterrupted.losses
    assert resumed.test_loss == uninterrupted.test_loss
    assert (resumed.payload_bytes, resumed.bytes_sent, resumed.syncs) == \
        (uninterrupted.payload_bytes, uninterrupted.bytes_sent, uninterrupted.syncs)  # the whole run's
    assert checkpoint_steps(tmp_path) == [16, 20]


# --- the launch, and bad input --------------------------------------------------------------------------


def test_train_data_parallel_launches_the_job_named_by_the_mode(monkeypatch):
    """The launch itself is covered by ``results``; here, what ``train_data_parallel`` asks of it."""
    calls = []

    record = DataParallelResult(BASE, 3, 1, 48, [1.0], 1.0, 0.5, 0, 0, 0, True, 0, {}, {}, 0.0)

    def fake_launch(job, **kw):
        calls.append((job, kw))
        return LaunchResult(job, kw["nproc"], "gloo", 1.5, value=record)

    monkeypatch.setattr(data_parallel, "launch", fake_launch)
    result = train_data_parallel("local-sgd", "mlp", "digits", nproc=3, timeout=9, checkpoint_dir="ck",
                                 resume=True, period=2, progress=False)
    assert calls == [("local-sgd", {"nproc": 3, "backend": None, "timeout": 9, "checkpoint_dir": "ck",
                                    "resume": True,
                                    "options": {"model": "mlp", "data": "digits", "period": 2, "progress": False}})]
    assert result.wall_s == 1.5  # the launch's wall time, spawning included


def _wide_net(num_classes: int = 10) -> nn.Module:
    """Reads 28×28 images: not digits' 8×8."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))


def _three_classes(num_classes: int = 10) -> nn.Module:
    """Ignores the class count it is given."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


@pytest.mark.parametrize("mode, kwargs, match", [
    ("zero", {}, r"unknown data-parallel mode 'zero'; use one of \['ps', 'ddp', 'fsdp', 'local-sgd'\]"),
    ("ps", {"hook": "fp16"}, "--hook fp16 compresses DDP's all-reduce; use it with mode ddp, not ps"),
    ("ddp", {"hook": "int4"}, "unknown comm hook 'int4'"),
    ("ddp", {"hook": "topc"}, "unknown comm hook 'topc' \\(did you mean 'topk'\\?\\)"),
    ("ddp", {"topk_ratio": 0.1}, "--topk-ratio sets the topk hook; add --hook topk \\(the hook is 'none'\\)"),
    ("ddp", {"hook": "topk", "topk_ratio": 1.5}, "topk_ratio .* must be in \\(0, 1\\]"),
    ("ddp", {"hook": "powersgd", "powersgd_rank": 0}, "powersgd_rank must be a positive integer, got 0"),
    ("ddp", {"accumulate": 0}, "accumulate must be a positive integer, got 0"),
    ("ddp", {"checkpoint_every": -1}, "checkpoint_every must be a non-negative integer"),
    ("ddp", {"fail_mode": "boom"}, "unknown --fail-mode 'boom'"),
    ("ddp", {"nproc": 0}, "nproc must be a positive integer, got 0"),
    ("ddp", {"resume": True}, "--resume needs --checkpoint-dir"),
    ("ddp", {"stepz": 3}, "no option 'stepz'.*did you mean 'steps'"),
    ("fsdp", {"model_name": "lenet6"}, "unknown model 'lenet6' \\(did you mean 'lenet5'\\?\\)"),
    ("ddp", {"data": "mnistt"}, "unknown data set 'mnistt' \\(did you mean 'mnist'\\?\\)"),
    ("ps", {"model_name": "transformer", "data": "mnist"}, "reads token sequences .* but data set 'mnist' gives image"),
    ("ddp", {"model_name": "lenet5", "data": "chars"}, "reads images .* but data set 'chars' gives tokens"),
    ("local-sgd", {"model_name": "gpt3-175b", "data": "chars"}, "'gpt3-175b' is too large to train here"),
    ("ddp", {"model_name": f"{__name__}:_wide_net"},
     r"cannot read data set 'digits': its inputs are \(1, 8, 8\) \(float32\).*RuntimeError"),
    ("ddp", {"model_name": f"{__name__}:_three_classes"},
     r"gives \(2, 3\) on a batch of 2 from 'digits', but training needs logits of shape \(2, 10\)"),
])
def test_bad_jobs_fail_before_any_rank_starts(monkeypatch, mode, kwargs, match):
    def spawn(*args, **kw):
        raise AssertionError("a rank was spawned")

    monkeypatch.setattr(launch_module, "_spawn", spawn)
    with pytest.raises(AicomputeError, match=match):
        train_data_parallel(mode, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_nccl_without_cuda_fails_before_any_rank_starts():
    with pytest.raises(AicomputeError, match="backend nccl needs CUDA GPUs and torch sees none here; use --backend"):
        train_data_parallel("ddp", backend="nccl")


def test_resume_refusals_and_a_bad_fail_rank_fail_before_any_rank_starts(tmp_path, monkeypatch):
    one = dict(steps=2, batch_size=8, progress=False, nproc=1, timeout=30)
    train_data_parallel("ddp", hook="powersgd", checkpoint_dir=tmp_path / "psgd", **one)
    launch("allreduce-check", nproc=1, timeout=30, checkpoint_dir=tmp_path / "other", options={"steps": 1, "numel": 10})
    spawned = []
    monkeypatch.setattr("aicompute.parallel.launch._spawn", lambda spec, nproc: spawned.append(spec))
    refusals = [
        # PowerSGD's own state is not checkpointed: its run cannot be resumed to the same losses
        ({"hook": "powersgd", "checkpoint_dir": tmp_path / "psgd", "resume": True},
         "PowerSGD's own state .* is not checkpointed"),
        ({"checkpoint_dir": tmp_path / "psgd", "resume": True},
         r"other settings \(hook 'none' here, 'powersgd' there\)"),
        ({"checkpoint_dir": tmp_path / "psgd", "resume": True, "nproc": 2},
         "written by 1 ranks, this run has 2: resume with --nproc 1"),
        ({"hook": "powersgd", "checkpoint_dir": tmp_path / "psgd"}, r"already holds checkpoints of a run \(steps \[2\]\)"),
        # another job's checkpoint: DCP cannot read it as this job's, said in one line
        ({"checkpoint_dir": tmp_path / "other", "resume": True}, "cannot be read as this job's"),
        ({"fail_rank": 1}, "--fail-rank 1 names no rank of 1"),
    ]
    for options, message in refusals:
        with pytest.raises(AicomputeError, match=message) as err:
            train_data_parallel("ddp", **{**one, **options})
        assert "\n" not in str(err.value) and not str(err.value).startswith("rank")
    assert spawned == []
