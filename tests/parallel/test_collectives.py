"""Our P2P collectives against torch.distributed's own on 2, 3 and 4 gloo ranks, exact byte counts, and the
α-β model against its closed forms.

Each world size is one launch of ``_rank_checks`` (this file, loaded by path in every rank): it runs every
collective on integer tensors (so sums are exact whatever the order) and on floats, and returns what it
saw; the test asserts on it. Sizes include ones not divisible by p, smaller than p, and empty; a 3-element
segment makes the pipelined ring run many uneven segments per chunk.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.errors import AicomputeError
from aicompute.parallel.collectives import (
    AlphaBeta, CommStats, all_reduce_with, chunk_bounds, cost_terms, ps_all_reduce_, recursive_doubling_all_reduce_,
    ring_all_gather, ring_all_reduce_, ring_bytes_sent, ring_reduce_scatter, ring_workspace,
)
from aicompute.parallel.launch import launch

SEGMENTS = (None, 24, 1 << 20)  # whole chunks (blocking); 3 int64 per segment; the default-sized segment


def _sizes(p: int) -> list[int]:
    return [0, 1, p - 1, p, 2 * p + 1, 7 * p, 101, 1000]


def _rank_checks(ctx) -> dict:
    """Run on every rank: compare each collective with the backend's; return every rank's findings."""
    p, r = ctx.world_size, ctx.rank
    bad: list[str] = []
    g = torch.Generator().manual_seed(1234 + r)

    def ints(n: int) -> torch.Tensor:
        return torch.randint(-1000, 1000, (n,), generator=g, dtype=torch.int64)

    for n in _sizes(p):
        x = ints(n)
        ref = x.clone()
        dist.all_reduce(ref)
        for seg in SEGMENTS:
            if not torch.equal(ring_all_reduce_(x.clone(), segment_bytes=seg), ref):
                bad.append(f"ring all-reduce n={n} segment={seg}")
        for name in ("ps", "recursive-doubling", "ring-blocking"):
            if not torch.equal(all_reduce_with(name, x.clone()), ref):
                bad.append(f"{name} n={n}")
        lo, hi = chunk_bounds(n, p)[r]
        for seg in SEGMENTS:
            if not torch.equal(ring_reduce_scatter(x, segment_bytes=seg), ref[lo:hi]):
                bad.append(f"ring reduce-scatter n={n} segment={seg}")
            if not torch.equal(ring_all_gather(ref[lo:hi], numel=n, segment_bytes=seg), ref):
                bad.append(f"ring all-gather n={n} segment={seg}")
        if n % p == 0 and n:  # the backend's own reduce-scatter / all-gather need equal chunks
            rs = torch.empty(n // p, dtype=x.dtype)
            dist.reduce_scatter_tensor(rs, x.clone())
            if not torch.equal(ring_reduce_scatter(x), rs):
                bad.append(f"reduce_scatter_tensor n={n}")
            ag = torch.empty(n, dtype=x.dtype)
            dist.all_gather_into_tensor(ag, x[lo:hi].clone())
            if not torch.equal(ring_all_gather(x[lo:hi]), ag):
                bad.append(f"all_gather_into_tensor n={n}")

    # float reductions: avg / max / min, a workspace, a non-contiguous tensor (written back in place)
    f = torch.randn(37, 5, generator=g, dtype=torch.float64)
    ref = f.clone()
    dist.all_reduce(ref)
    if not torch.allclose(ring_all_reduce_(f.clone(), op="avg", workspace=ring_workspace(f, p)), ref / p):
        bad.append("ring avg")
    for op, reduce_op in (("max", dist.ReduceOp.MAX), ("min", dist.ReduceOp.MIN)):
        expect = f.clone()
        dist.all_reduce(expect, op=reduce_op)
        for name in ("ring", "ps", "recursive-doubling"):
            if not torch.equal(all_reduce_with(name, f.clone(), op=op), expect):
                bad.append(f"{name} {op}")
    t = f.clone().t()  # (5, 37), non-contiguous
    out = ring_all_reduce_(t, segment_bytes=64)
    if out is not t or not torch.allclose(t, ref.t()):
        bad.append("ring on a non-contiguous tensor")

    # every rank must end with the very same bits (each chunk is reduced once, then copied around)
    same = {}
    for name in ("ring", "ps", "recursive-doubling"):
        mine = all_reduce_with(name, f.clone())
        gathered = [torch.empty_like(mine) for _ in range(p)]
        dist.all_gather(gathered, mine)
        same[name] = all(torch.equal(gathered[0], other) for other in gathered)

    # byte counts of one call on n = 1000 (uneven for p = 3) and on n = 12·p (even), int64
    counts = {}
    for n in (1000, 12 * p):
        for name in ("ring", "ps", "recursive-doubling"):
            stats = CommStats()
            all_reduce_with(name, ints(n), stats=stats)
            counts[f"{name}/{n}"] = stats.to_dict()
        stats = CommStats()
        ring_reduce_scatter(ints(n), stats=stats)
        counts[f"reduce-scatter/{n}"] = stats.to_dict()
        stats = CommStats()
        lo, hi = chunk_bounds(n, p)[r]
        ring_all_gather(ints(hi - lo), numel=n, stats=stats)
        counts[f"all-gather/{n}"] = stats.to_dict()
    everyone = [None] * p
    dist.all_gather_object(everyone, {"bad": bad, "same": same, "counts": counts})
    return {"ranks": everyone}


@pytest.fixture(scope="module", params=[2, 3, 4], ids=lambda p: f"p{p}")
def run(request, time_limit):
    with time_limit(120):
        return request.param, launch(f"{__file__}:_rank_checks", nproc=request.param, timeout=60).value["ranks"]


@pytest.mark.slow
def test_every_collective_equals_the_backends(run):
    p, ranks = run
    assert [r["bad"] for r in ranks] == [[]] * p


@pytest.mark.slow
def test_every_rank_gets_bit_identical_results(run):
    _, ranks = run
    assert all(all(r["same"].values()) for r in ranks)


@pytest.mark.slow
def test_ring_bytes_are_2_p_minus_1_over_p_of_v_per_rank(run):
    p, ranks = run
    v = 12 * p * 8  # int64 bytes, divisible by p
    for r in ranks:
        ring = r["counts"][f"ring/{12 * p}"]
        assert ring["bytes_sent"] == ring["bytes_recv"] == 2 * (p - 1) * v // p
        assert ring["messages_sent"] == 2 * (p - 1)  # one whole-chunk segment per step (1 MiB segments)
        for phase in ("reduce-scatter", "all-gather"):
            one = r["counts"][f"{phase}/{12 * p}"]
            assert one["bytes_sent"] == one["bytes_recv"] == (p - 1) * v // p


@pytest.mark.slow
def test_ring_bytes_with_uneven_chunks_are_exact(run):
    """Rank r sends every chunk but its own in the reduce-scatter and every chunk but r+1's in the
    all-gather; it receives every chunk but r-1's, then every chunk but its own."""
    p, ranks = run
    n = 1000
    size = [hi - lo for lo, hi in chunk_bounds(n, p)]
    for r, found in enumerate(ranks):
        ring = found["counts"][f"ring/{n}"]
        assert ring["bytes_sent"] == 8 * ((n - size[r]) + (n - size[(r + 1) % p]))
        assert ring["bytes_recv"] == 8 * ((n - size[(r - 1) % p]) + (n - size[r]))


@pytest.mark.slow
def test_parameter_server_moves_p_minus_1_v_through_the_server(run):
    p, ranks = run
    v = 1000 * 8
    server = ranks[0]["counts"]["ps/1000"]
    assert server["bytes_recv"] == server["bytes_sent"] == (p - 1) * v
    for worker in ranks[1:]:
        assert worker["counts"]["ps/1000"]["bytes_sent"] == worker["counts"]["ps/1000"]["bytes_recv"] == v


@pytest.mark.slow
def test_recursive_doubling_bytes(run):
    p, ranks = run
    v = 1000 * 8
    rounds = int(math.log2(p))
    sent = [r["counts"]["recursive-doubling/1000"]["bytes_sent"] for r in ranks]
    if p & (p - 1) == 0:
        assert sent == [rounds * v] * p
    else:  # p = 3: rank 0 folds into rank 1 and gets the result back; ranks 1 and 2 do one round
        assert sent == [v, 2 * v, v]


@given(numel=st.integers(0, 10_000), p=st.integers(1, 9), element_size=st.sampled_from([1, 2, 4, 8]))
def test_ring_bytes_follow_the_closed_form(numel, p, element_size):
    sent = [ring_bytes_sent(numel, element_size, p, r) for r in range(p)]
    # every chunk travels p-1 hops in each of the two phases: 2(p-1)V over all ranks
    assert sum(sent) == 2 * (p - 1) * numel * element_size
    # each rank sends 2(p-1) chunks, each of floor or ceil of V/p elements
    lo, hi = numel // p, -(-numel // p)
    assert all(2 * (p - 1) * lo * element_size <= s <= 2 * (p - 1) * hi * element_size for s in sent)
    if numel % p == 0:
        assert set(sent) <= {2 * (p - 1) * numel // p * element_size}  # the seed's 2(p-1)V/p


def test_ring_bytes_of_a_hand_case():
    # 10 elements on 4 ranks: chunks of 3, 3, 2, 2 (chunk_bounds). Rank 0 sends chunks 3, 2, 1 while
    # reducing and 0, 3, 2 while gathering: 2 + 2 + 3 + 3 + 2 + 2 = 14 elements.
    assert chunk_bounds(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert ring_bytes_sent(10, 4, 4, 0) == 14 * 4


@given(numel=st.integers(0, 10_000), parts=st.integers(1, 64))
def test_chunk_bounds_cut_like_tensor_split(numel, parts):
    bounds = chunk_bounds(numel, parts)
    expected = [t.numel() for t in torch.arange(numel).tensor_split(parts)]
    assert [hi - lo for lo, hi in bounds] == expected
    assert bounds[0][0] == 0 and bounds[-1][1] == numel
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


@given(p=st.integers(2, 1024), v=st.integers(1, 1 << 30))
def test_cost_terms_match_the_seed(p, v):
    ring = cost_terms("ring", v, p)
    assert ring.steps == 2 * (p - 1)
    assert ring.bytes == pytest.approx(2 * (p - 1) * v / p)
    half = cost_terms("ring-reduce-scatter", v, p)
    assert (half.steps, half.bytes) == (p - 1, pytest.approx((p - 1) * v / p))
    assert cost_terms("ps", v, p).bytes == 2 * (p - 1) * v  # grows with p at the server
    assert ring.bytes < 2 * v  # per-rank ring traffic stays under 2V whatever p


def test_recursive_doubling_terms():
    assert cost_terms("recursive-doubling", 100, 8) == cost_terms("recursive-doubling", 100, 8).__class__(3, 300.0)
    assert cost_terms("recursive-doubling", 100, 6).steps == 2 + 2  # log2(4) rounds + fold + unfold
    assert cost_terms("backend", 100, 4) is None
    assert cost_terms("ring", 100, 1).bytes == 0


def test_ring_time_tends_to_2v_over_beta_independent_of_p():
    """The seed's point: the ring's time (p-1)V/(pβ) per phase barely depends on p."""
    model = AlphaBeta(alpha_s=0.0, beta_bytes_per_s=1e9)
    v = 1 << 30
    times = [model.predict_s("ring", v, p) for p in (2, 8, 64, 1024)]
    assert times[0] == pytest.approx(v / 1e9)  # p = 2: 2·1·V/2
    assert times[-1] == pytest.approx(2 * v / 1e9, rel=1e-2)
    assert times == sorted(times)


@settings(max_examples=50)
@given(alpha=st.floats(0, 1e-3), beta=st.floats(1e6, 1e11))
def test_alpha_beta_fit_recovers_a_line(alpha, beta):
    sizes = [1 << 10, 1 << 14, 1 << 18, 1 << 22]
    fitted = AlphaBeta.fit(sizes, [alpha + m / beta for m in sizes])
    assert fitted.alpha_s == pytest.approx(alpha, abs=1e-9)
    assert fitted.beta_bytes_per_s == pytest.approx(beta, rel=1e-6)
    assert fitted.predict_s("ring", 1 << 20, 4) == pytest.approx(6 * alpha + 1.5 * (1 << 20) / beta, rel=1e-5)


def test_alpha_beta_fit_rejects_what_it_cannot_fit():
    with pytest.raises(AicomputeError, match="two different message sizes"):
        AlphaBeta.fit([1024, 1024], [1e-5, 2e-5])
    with pytest.raises(AicomputeError, match="did not grow"):
        AlphaBeta.fit([1024, 4096], [2e-5, 1e-5])
    assert AlphaBeta.fit([1000, 2000], [0.0, 1e-3]).alpha_s == 0.0  # a negative intercept is clipped


def test_bad_arguments_are_explained_before_any_communication():
    with pytest.raises(AicomputeError, match="unknown reduction 'summ'.*did you mean 'sum'"):
        ring_all_reduce_(torch.zeros(4), op="summ")
    with pytest.raises(AicomputeError, match="avg.*floating-point"):
        ps_all_reduce_(torch.zeros(4, dtype=torch.int64), op="avg")
    with pytest.raises(AicomputeError, match="unknown all-reduce algorithm 'rign'.*'ring'"):
        all_reduce_with("rign", torch.zeros(4))
    with pytest.raises(AicomputeError, match="no cost model"):
        cost_terms("tree", 10, 4)
    with pytest.raises(AicomputeError, match="unknown reduction"):
        recursive_doubling_all_reduce_(torch.zeros(2), op="prod")
