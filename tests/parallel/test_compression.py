"""DDP comm hooks: top-k with error feedback (ours) against plain all-reduce, torch's PowerSGD / fp16 / bf16
byte counts against their closed forms.

Single process: top-k's pieces against dense references (hypothesis), and the error-feedback invariant
``Σ sent + residual = Σ raw gradients`` per parameter on a fake bucket whose layout changes after the first
step the way DDP's bucket rebuild changes it. On ranks: one launch of 2 gloo ranks (``_runs``, loaded by
path) trains the LeNet-300-100 head on digits for ``STEPS`` steps under each hook, and once more stopped
half-way and resumed from the hook's ``state_dict`` / ``counters``. Spawning is the slow part here, so there
is one launch; the ``p``-dependence of ``sent_bytes`` is checked on its own.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.functional import cross_entropy

from aicompute.errors import AicomputeError
from aicompute.parallel.compression import HOOKS, CommHook, powersgd_payload_elements, topk_decompress, topk_select
from aicompute.parallel.launch import launch

pytestmark = pytest.mark.usefixtures("two_minute_limit")  # the launches below carry their own limit too

STEPS = 8
BATCH = 16
SHAPES = [(300, 64), (300,), (100, 300), (100,), (10, 100), (10,)]  # the mlp on 8×8 digits
PSI = sum(math.prod(s) for s in SHAPES)  # 64·300 + 300 + 300·100 + 100 + 100·10 + 10 = 50,610
RUNS = {
    "none": ("none", {}),
    "fp16": ("fp16", {}),
    "bf16": ("bf16", {}),
    "topk-1": ("topk", {"topk_ratio": 1.0}),
    "topk-0.05": ("topk", {"topk_ratio": 0.05}),
    "powersgd-1": ("powersgd", {"powersgd_rank": 1}),
    "powersgd-2": ("powersgd", {"powersgd_rank": 2}),
}


# -- jobs run by the spawned ranks ------------------------------------------------------------------------

def _train(ctx, name: str, options: dict, first: int = 0, last: int = STEPS, resume: dict | None = None) -> dict:
    """Steps ``first … last - 1`` of DDP SGD under hook ``name``, each rank on its own slice of digits;
    ``resume`` is an earlier call's record to continue from (model, hook state and counters)."""
    from torch.nn.parallel import DistributedDataParallel

    from aicompute.data import get_dataset
    from aicompute.models.mlp import MLP

    train = get_dataset("digits", "train", seed=0)
    torch.manual_seed(0)
    model = MLP(in_features=64, num_classes=10)
    if resume is not None:
        model.load_state_dict(resume["model"])
    ddp = DistributedDataParallel(model)
    hook = CommHook(name, **options)
    hook.register(ddp)
    if resume is not None:
        hook.load_state_dict(resume["hook_state"])
        hook.load_counters(resume["counters"])
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    losses = []
    for t in range(first, last):
        start = (t * ctx.world_size + ctx.rank) * BATCH  # step t's global batch, rank r's part of it
        x, y = train.inputs[start:start + BATCH], train.targets[start:start + BATCH]
        opt.zero_grad()
        loss = cross_entropy(ddp(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    record = {"losses": losses, "params": torch.cat([q.detach().flatten() for q in model.parameters()]),
              "model": model.state_dict(), "hook_state": hook.state_dict(), "counters": hook.counters(),
              "hook": hook.to_dict(), "payload": hook.payload_bytes, "sent": hook.sent_bytes,
              "residual_params": len(hook.residuals),
              "residual_abs": sum(float(r.abs().sum()) for r in hook.residuals.values())}
    if hook.powersgd_state is not None:
        state = hook.powersgd_state
        record["torch_numel"] = (state.total_numel_before_compression, state.total_numel_after_compression)
    try:
        hook.register(ddp)
    except AicomputeError as e:
        record["second_register"] = str(e)
    return record


def _runs(ctx) -> dict:
    runs = {key: _train(ctx, name, options) for key, (name, options) in RUNS.items()}
    half = _train(ctx, "topk", {"topk_ratio": 0.05}, last=STEPS // 2)
    runs["topk-0.05-resumed"] = _train(ctx, "topk", {"topk_ratio": 0.05}, first=STEPS // 2, resume=half)
    runs["topk-0.05-resumed"]["first_half"] = half["losses"]
    return runs


@pytest.fixture(scope="module")
def p2(time_limit):
    with time_limit(120):
        return launch(f"{__file__}:_runs", nproc=2, timeout=60).value


# -- top-k pieces, single process -------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.floats(0.001, 1.0), st.integers(0, 2**16))
def test_topk_select_takes_the_largest_magnitudes(n, ratio, seed):
    x = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    k = math.ceil(ratio * n)
    values, indices = topk_select(x, k)
    assert indices.dtype == torch.int32 and len(set(indices.tolist())) == k
    assert torch.equal(values, x[indices.long()])
    reference = x.abs().sort(descending=True).values[:k]  # the k largest magnitudes, independently
    assert torch.equal(values.abs().sort(descending=True).values, reference)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 30), st.integers(0, 2**16))
def test_topk_decompress_is_the_average_of_the_dense_vectors(p, numel, seed):
    g = torch.Generator().manual_seed(seed)
    k = int(torch.randint(1, numel + 1, (1,), generator=g))
    indices = torch.stack([torch.randperm(numel, generator=g)[:k] for _ in range(p)]).to(torch.int32)  # (p, k)
    values = torch.randn(p, k, generator=g, dtype=torch.float64)
    dense = torch.zeros(p, numel, dtype=torch.float64)  # (p, numel): rank r's sparse vector
    for r in range(p):
        dense[r, indices[r].long()] = values[r]
    assert torch.allclose(topk_decompress(values, indices, numel), dense.mean(0), rtol=0, atol=1e-12)


class FakeBucket:
    """What DDP hands a comm hook: ``buffer()`` holds the gradients of ``parameters()`` back to back and
    ``gradients()`` are views into it."""

    def __init__(self, params: list[nn.Parameter], grads: dict[nn.Parameter, torch.Tensor]):
        self._params = params
        self._buffer = torch.cat([grads[q].flatten() for q in params])  # (n,)
        sizes = [q.numel() for q in params]
        self._views = [v.view(q.shape) for v, q in zip(self._buffer.split(sizes), params)]

    def buffer(self):
        return self._buffer

    def gradients(self):
        return self._views

    def parameters(self):
        return self._params

    def index(self):
        return 0

    def is_last(self):
        return True


@settings(max_examples=30, deadline=None)
@given(st.floats(0.01, 1.0), st.integers(1, 6), st.integers(0, 2**16))
def test_error_feedback_sends_every_gradient_eventually(ratio, steps, seed):
    """Σ_t sent_t + residual_T = Σ_t g_t for each parameter, across a bucket rebuild (order reversed after
    step 0, as DDP reorders by gradient readiness); each step sends exactly ceil(ratio·n) entries, and every
    entry sent is at least as large as every entry left behind."""
    g = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.zeros(shape, dtype=torch.float64)) for shape in [(5, 3), (5,), (2, 5), (2,)]]
    n = sum(q.numel() for q in params)
    hook = CommHook("topk", topk_ratio=ratio)
    raw = {q: torch.zeros_like(q) for q in params}
    sent = {q: torch.zeros_like(q) for q in params}
    for t in range(steps):
        grads = {q: torch.randn(q.shape, generator=g, dtype=torch.float64) for q in params}
        order = params if t == 0 else params[::-1]
        bucket = FakeBucket(order, grads)
        values, indices = hook.select(bucket)
        assert values.numel() == math.ceil(ratio * n)
        left = bucket.buffer().clone()  # the bucket now holds what stays behind
        if values.numel() < n:
            assert values.abs().min() >= left.abs().max()
        dense = torch.zeros(n, dtype=torch.float64)
        dense[indices.long()] = values
        for q, piece in zip(order, dense.split([q.numel() for q in order])):
            sent[q] += piece.view(q.shape)
            raw[q] += grads[q]
    for q in params:
        assert torch.allclose(sent[q] + hook.residuals[q], raw[q], rtol=0, atol=1e-12)


# -- PowerSGD's closed form -------------------------------------------------------------------------------

def test_powersgd_payload_follows_the_rank_r_formula():
    # mlp, r = 1: P and Q of each weight, (300 + 64) + (100 + 300) + (10 + 100) = 874, plus the biases 410
    assert powersgd_payload_elements(SHAPES, 1) == 874 + 410
    assert powersgd_payload_elements(SHAPES, 2) == 2 * 874 + 410
    # a conv weight (6, 1, 5, 5) is viewed as 6 × 25: rank 1 gives 31 < 150/2; rank 4 gives 124 > 150/2: sent whole
    assert powersgd_payload_elements([(6, 1, 5, 5)], 1) == 31
    assert powersgd_payload_elements([(6, 1, 5, 5)], 4) == 150
    # min_compression_rate: 10 × 100 at rank 1 is (10 + 100)·1 = 110, worth it at rate 2, not at rate 10
    assert powersgd_payload_elements([(10, 100)], 1, 2.0) == 110
    assert powersgd_payload_elements([(10, 100)], 1, 10.0) == 1000


# -- on 2 and 3 ranks -------------------------------------------------------------------------------------

def test_topk_with_ratio_one_is_plain_all_reduce(p2):
    plain, topk = p2["none"], p2["topk-1"]
    assert max(abs(a - b) for a, b in zip(plain["losses"], topk["losses"])) < 1e-6
    assert torch.allclose(plain["params"], topk["params"], rtol=0, atol=1e-6)
    assert topk["residual_params"] == len(SHAPES) and topk["residual_abs"] == 0.0  # nothing left behind
    assert p2["none"]["losses"][-1] < p2["none"]["losses"][0]  # it does learn


def test_bytes_follow_the_closed_forms_on_two_ranks(p2):
    # one bucket per step (the model's 202 KB fit DDP's first bucket), so one hook call per step
    assert all(run["hook"]["calls"] == run["hook"]["steps"] == STEPS for run in p2.values())
    assert p2["none"]["payload"] == STEPS * 4 * PSI
    assert p2["fp16"]["payload"] == p2["bf16"]["payload"] == STEPS * 2 * PSI  # half of none's
    assert p2["topk-1"]["payload"] == STEPS * (4 + 4) * PSI  # every value and its int32 index
    k = math.ceil(0.05 * PSI)  # 2,531
    assert p2["topk-0.05"]["payload"] == STEPS * 8 * k
    for run in p2.values():  # p = 2: the ring's 2(p-1)/p and the all-gather's (p-1) are both 1
        assert run["sent"] == run["payload"]


def test_powersgd_bytes_match_torchs_own_count(p2):
    for rank, compressed in ((1, 874 + 410), (2, 2 * 874 + 410)):
        run = p2[f"powersgd-{rank}"]
        # torch all-reduces the whole bucket for its first 2 iterations, then P, Q and the biases
        assert run["payload"] == 2 * 4 * PSI + (STEPS - 2) * 4 * compressed
        assert run["torch_numel"] == ((STEPS - 2) * PSI, (STEPS - 2) * compressed)  # PowerSGDState's tally
        assert run["hook"]["compression_ratio"] == pytest.approx(STEPS * PSI / (2 * PSI + (STEPS - 2) * compressed))


def test_compressed_hooks_still_train(p2):
    plain = p2["none"]["losses"]
    for key in ("fp16", "bf16"):  # 16-bit sums move the numbers a little, not the training
        assert max(abs(a - b) for a, b in zip(p2[key]["losses"], plain)) < 2e-2 and p2[key]["losses"] != plain
    for key in ("topk-0.05", "powersgd-1", "powersgd-2"):
        losses = p2[key]["losses"]
        assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert p2["topk-0.05"]["residual_abs"] > 0  # 95 % of each step stays behind for later


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_sent_bytes_apply_the_ring_and_all_gather_models(p):
    """At p = 2 both factors are 1, so the launch above cannot tell them apart: the model on its own."""
    hook = CommHook("topk")
    hook.world_size, hook.allreduce_payload_bytes, hook.allgather_payload_bytes = p, 3000, 800
    assert hook.payload_bytes == 3800
    assert hook.sent_bytes == round(2 * (p - 1) / p * 3000) + (p - 1) * 800  # all-reduce + all-gather
    assert hook.sent_bytes == {1: 0, 2: 3800, 3: 4000 + 1600, 4: 4500 + 2400}[p]


def test_a_resumed_run_continues_as_an_uninterrupted_one(p2):
    """Model weights, the residuals (``state_dict``) and the counters carried over half-way: the same losses,
    bytes and residuals as the run that never stopped."""
    whole, resumed = p2["topk-0.05"], p2["topk-0.05-resumed"]
    assert resumed["first_half"] + resumed["losses"] == whole["losses"]
    assert torch.equal(resumed["params"], whole["params"])
    assert resumed["counters"] == whole["counters"] and resumed["sent"] == whole["sent"]
    assert resumed["residual_abs"] == whole["residual_abs"] > 0


def test_a_hook_registers_once(p2):
    assert "already registered" in p2["none"]["second_register"]


# -- bad input --------------------------------------------------------------------------------------------

def test_hook_names():
    assert list(HOOKS) == ["none", "fp16", "bf16", "powersgd", "topk"]


@pytest.mark.parametrize("args, kwargs, match", [
    (("top-k",), {}, r"unknown comm hook 'top-k' \(did you mean 'topk'\?\)"),
    (("topk",), {"topk_ratio": 0.0}, r"topk_ratio .* must be in \(0, 1\]"),
    (("topk",), {"topk_ratio": 1.5}, r"topk_ratio .* must be in \(0, 1\]"),
    (("topk",), {"topk_ratio": float("nan")}, r"topk_ratio .* must be in \(0, 1\]"),
    (("topk",), {"topk_ratio": True}, r"topk_ratio"),
    (("powersgd",), {"powersgd_rank": 0}, r"powersgd_rank must be a positive integer"),
    (("powersgd",), {"powersgd_start_iter": 1}, r"powersgd_start_iter must be an integer ≥ 2"),
    (("powersgd",), {"min_compression_rate": 0}, r"min_compression_rate must be > 0"),
])
def test_bad_hooks_are_refused(args, kwargs, match):
    with pytest.raises(AicomputeError, match=match):
        CommHook(*args, **kwargs)


def test_a_hook_needs_a_ddp_model():
    with pytest.raises(AicomputeError, match="DistributedDataParallel model, got Linear"):
        CommHook("topk").register(nn.Linear(2, 2))
    with pytest.raises(AicomputeError, match="register the comm hook on its DDP model before loading"):
        CommHook("topk").load_state_dict({"residuals": {}})
