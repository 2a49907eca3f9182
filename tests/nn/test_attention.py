"""Scoring functions, key-value attention and multi-head self-attention against loops and torch."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from torch.nn.attention.bias import causal_lower_right

from aicompute.errors import AicomputeError
from aicompute.nn.attention import (
    AdditiveScore,
    BilinearScore,
    KVCache,
    MultiHeadSelfAttention,
    causal_mask,
    dot_score,
    key_value_attention,
    scaled_dot_score,
)

settings.register_profile("attention", deadline=None, max_examples=25)
settings.load_profile("attention")
f64 = torch.float64


def _randn(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=f64)


shapes = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 6), st.integers(1, 5), st.integers(0, 999))


@given(shapes)
def test_scorers_match_per_pair_loops(shape):
    m, n, d, dq, seed = shape
    gen = torch.Generator().manual_seed(seed)
    keys, queries, queries_dq = _randn(gen, n, d), _randn(gen, m, d), _randn(gen, m, dq)
    bil = BilinearScore(d, dq).double()
    add = AdditiveScore(d, dq, hidden_dim=3).double()
    W, Wa, Ua, v = bil.W.detach(), add.W.weight.detach(), add.U.weight.detach(), add.v.weight.detach()[0]
    with torch.no_grad():
        s_dot, s_scaled = dot_score(keys, queries), scaled_dot_score(keys, queries)
        s_bil, s_add = bil(keys, queries_dq), add(keys, queries_dq)
    for mi in range(m):
        for ni in range(n):
            x, q = keys[ni], queries[mi]
            dot = float(x @ q)
            assert s_dot[mi, ni].item() == pytest.approx(dot, rel=1e-12, abs=1e-12)
            assert s_scaled[mi, ni].item() == pytest.approx(dot / math.sqrt(d), abs=1e-12)
            qd = queries_dq[mi]
            assert s_bil[mi, ni].item() == pytest.approx(float(x @ W @ qd), abs=1e-12)
            additive = float(v @ torch.tanh(Wa @ x + Ua @ qd))  # vᵀ tanh(Wx + Uq)
            assert s_add[mi, ni].item() == pytest.approx(additive, abs=1e-12)


def test_bilinear_with_identity_is_dot_and_scorers_broadcast_over_batch():
    gen = torch.Generator().manual_seed(0)
    keys, queries = _randn(gen, 2, 3, 5, 4), _randn(gen, 2, 3, 6, 4)  # (..., N, D), (..., M, D)
    bil = BilinearScore(4, 4).double()
    with torch.no_grad():
        bil.W.copy_(torch.eye(4))
    assert bil(keys, queries).shape == (2, 3, 6, 5)
    torch.testing.assert_close(bil(keys, queries), dot_score(keys, queries))
    assert AdditiveScore(4, 4, 8).double()(keys, queries).shape == (2, 3, 6, 5)


@given(shapes, st.booleans())
def test_key_value_attention_is_the_softmax_weighted_sum(shape, masked):
    m, n, d, dv, seed = shape
    gen = torch.Generator().manual_seed(seed)
    q, k, v = _randn(gen, m, d), _randn(gen, n, d), _randn(gen, n, dv)
    mask = torch.rand(m, n, generator=gen) < 0.6 if masked else torch.ones(m, n, dtype=torch.bool)
    mask[:, 0] = True  # every query keeps at least one key
    out, weights = key_value_attention(q, k, v, mask=mask if masked else None)
    for mi in range(m):
        scores = [float(k[ni] @ q[mi]) / math.sqrt(d) if mask[mi, ni] else -math.inf for ni in range(n)]
        top = max(scores)
        e = [math.exp(s - top) for s in scores]
        want_w = [x / sum(e) for x in e]
        assert weights[mi].tolist() == pytest.approx(want_w, abs=1e-12)
        want_out = sum(w * v[ni] for ni, w in enumerate(want_w))
        torch.testing.assert_close(out[mi], want_out, rtol=0, atol=1e-12)
    assert torch.all(weights[~mask] == 0)


def test_key_value_attention_agrees_with_sdpa_and_float_masks():
    gen = torch.Generator().manual_seed(1)
    q, k, v = _randn(gen, 2, 3, 4, 8), _randn(gen, 2, 3, 6, 8), _randn(gen, 2, 3, 6, 5)
    mask = torch.rand(4, 6, generator=gen) < 0.5
    mask[:, -1] = True
    out, _ = key_value_attention(q, k, v, mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=0, atol=1e-12)
    additive = torch.zeros(4, 6, dtype=f64).masked_fill(~mask, -math.inf)
    torch.testing.assert_close(key_value_attention(q, k, v, mask=additive)[0], out, rtol=0, atol=0)


def test_single_query_vector_and_plain_attention():
    gen = torch.Generator().manual_seed(2)
    x, q = _randn(gen, 7, 4), _randn(gen, 4)
    out, weights = key_value_attention(q[None, :], x, x)  # plain attention: keys = values = inputs
    assert out.shape == (1, 4) and weights.shape == (1, 7)
    torch.testing.assert_close(out[0], torch.softmax(x @ q / 2.0, dim=0) @ x)  # √D = 2


def test_key_value_count_mismatch_is_a_user_error():
    with pytest.raises(AicomputeError, match="3 keys but 4 values"):
        key_value_attention(torch.randn(2, 5), torch.randn(3, 5), torch.randn(4, 5))


def test_causal_mask_is_lower_triangular_like_sdpa():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    gen = torch.Generator().manual_seed(3)
    q, k, v = _randn(gen, 1, 4, 3), _randn(gen, 1, 6, 3), _randn(gen, 1, 6, 3)
    torch.testing.assert_close(
        key_value_attention(q, k, v, mask=causal_mask(4, 6))[0],
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
    )


def _pair(embed=16, heads=4, causal=False, seed=0, **kw):
    torch.manual_seed(seed)
    fast = MultiHeadSelfAttention(embed, heads, causal=causal, **kw).double()
    slow = MultiHeadSelfAttention(embed, heads, causal=causal, use_sdpa=False, **kw).double()
    slow.load_state_dict(fast.state_dict())
    return fast, slow


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_sdpa_and_explicit_paths_agree(causal, with_mask):
    fast, slow = _pair(causal=causal)
    x = torch.randn(3, 7, 16, dtype=f64, requires_grad=True)
    mask = None
    if with_mask:  # key padding: the last 2 positions of example 0 are padding
        mask = torch.ones(3, 1, 1, 7, dtype=torch.bool)
        mask[0, ..., 5:] = False
    y_fast, y_slow = fast(x, mask), slow(x, mask)
    torch.testing.assert_close(y_fast, y_slow, rtol=0, atol=1e-6)
    (g_fast,) = torch.autograd.grad(y_fast.square().sum(), x)
    (g_slow,) = torch.autograd.grad(y_slow.square().sum(), x)
    torch.testing.assert_close(g_fast, g_slow, rtol=0, atol=1e-6)


@pytest.mark.parametrize("use_sdpa", [True, False])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_multihead_attention(use_sdpa, causal, bias):
    torch.manual_seed(4)
    ref = torch.nn.MultiheadAttention(12, 3, bias=bias, batch_first=True).double().eval()
    ours = MultiHeadSelfAttention.from_torch(ref, causal=causal, use_sdpa=use_sdpa).eval()
    assert ours.q_proj.weight.dtype == f64
    x = torch.randn(2, 5, 12, dtype=f64)
    forbid = ~causal_mask(5) if causal else None  # torch's boolean masks mark what is *not* attended
    want, _ = ref(x, x, x, attn_mask=forbid, need_weights=False)
    torch.testing.assert_close(ours(x), want, rtol=0, atol=1e-6)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])  # torch: True = padding
    want, _ = ref(x, x, x, key_padding_mask=padding, attn_mask=forbid, need_weights=False)
    torch.testing.assert_close(ours(x, mask=~padding[:, None, None, :]), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_causal_output_ignores_the_future(use_sdpa):
    fast, slow = _pair(causal=True)
    model = fast if use_sdpa else slow
    x = torch.randn(1, 6, 16, dtype=f64)
    x2 = x.clone()
    x2[:, 4:] += 1.0  # change positions 4 and 5 only
    y, y2 = model(x), model(x2)
    torch.testing.assert_close(y[:, :4], y2[:, :4], rtol=0, atol=1e-12)
    assert (y[:, 4:] - y2[:, 4:]).abs().max() > 1e-3


def test_float_mask_combines_with_causal():
    fast, slow = _pair(causal=True)
    x = torch.randn(2, 5, 16, dtype=f64)
    bias = torch.randn(5, 5, dtype=f64)  # an additive (ALiBi-like) score bias
    torch.testing.assert_close(fast(x, bias), slow(x, bias), rtol=0, atol=1e-6)
    assert (fast(x, bias) - fast(x)).abs().max() > 1e-6


def test_dropout_only_in_training():
    fast, slow = _pair(dropout=0.5)
    plain, _ = _pair(dropout=0.0)
    x = torch.randn(2, 5, 16, dtype=f64)
    for m in (fast, slow):
        m.eval()
        torch.testing.assert_close(m(x), plain(x), rtol=0, atol=1e-6)
        m.train()
        assert (m(x) - plain(x)).abs().max() > 1e-3


def test_bad_configurations_are_user_errors():
    with pytest.raises(AicomputeError, match=r"embed_dim \(10\) must be a multiple of num_heads \(4\)"):
        MultiHeadSelfAttention(10, 4)
    with pytest.raises(AicomputeError, match="num_heads must be a positive integer, got 0"):
        MultiHeadSelfAttention(8, 0)
    with pytest.raises(AicomputeError, match=r"dropout must be a probability in \[0, 1\), got 1.0"):
        MultiHeadSelfAttention(8, 2, dropout=1.0)
    with pytest.raises(AicomputeError, match=r"expects input \(batch, seq_len, 8\)"):
        MultiHeadSelfAttention(8, 2)(torch.randn(3, 8))
    with pytest.raises(AicomputeError, match="kdim == vdim == embed_dim"):
        MultiHeadSelfAttention.from_torch(torch.nn.MultiheadAttention(8, 2, kdim=4, vdim=4))


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_fully_masked_rows_are_zero_and_the_rest_unchanged(kind):
    gen = torch.Generator().manual_seed(5)
    q, k, v = _randn(gen, 2, 4, 8), _randn(gen, 2, 6, 8), _randn(gen, 2, 6, 5)
    allowed = torch.rand(4, 6, generator=gen) < 0.7
    allowed[:, 0] = True
    allowed[2] = False  # query 2 may attend to nothing
    mask = allowed if kind == "bool" else torch.zeros(4, 6, dtype=f64).masked_fill(~allowed, -math.inf)
    out, weights = key_value_attention(q, k, v, mask=mask)
    assert torch.all(out[:, 2] == 0) and torch.all(weights[:, 2] == 0)
    assert torch.isfinite(out).all()
    keep = [0, 1, 3]  # every other query: the same as without the dead row
    ref, _ = key_value_attention(q[:, keep], k, v, mask=mask[keep])
    torch.testing.assert_close(out[:, keep], ref, rtol=0, atol=0)
    # torch's own SDPA gives the same zero row (checked on CPU, torch 2.13)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_both_paths_agree_on_fully_masked_rows_and_their_gradients(causal):
    fast, slow = _pair(causal=causal)
    x = torch.randn(2, 5, 16, dtype=f64, requires_grad=True)
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, :, 3] = False  # example 0, query 3: no key at all
    y_fast, y_slow = fast(x, mask), slow(x, mask)
    assert torch.isfinite(y_slow).all()
    torch.testing.assert_close(y_fast, y_slow, rtol=0, atol=1e-10)
    # the dead row's head outputs are zero, so what is left of it is out_proj's bias
    torch.testing.assert_close(y_slow[0, 3], slow.out_proj.bias.detach(), rtol=0, atol=0)
    (g_fast,) = torch.autograd.grad(y_fast.square().sum(), x)
    (g_slow,) = torch.autograd.grad(y_slow.square().sum(), x)
    assert torch.isfinite(g_slow).all()
    torch.testing.assert_close(g_fast, g_slow, rtol=0, atol=1e-10)


def test_sharded_heads_run_and_sum_to_the_full_layer():
    """A Megatron split: q/k/v column shards (half the heads each) and out_proj row shards, summed."""
    torch.manual_seed(6)
    full = MultiHeadSelfAttention(16, 4, causal=True).double().eval()
    x = torch.randn(2, 7, 16, dtype=f64)
    total = torch.zeros(2, 7, 16, dtype=f64)
    for part in range(2):
        rows = slice(part * 8, (part + 1) * 8)  # heads 2·part and 2·part + 1
        shard = MultiHeadSelfAttention(16, 4, causal=True, bias=False).double().eval()
        with torch.no_grad():
            for name in ("q_proj", "k_proj", "v_proj"):
                proj = torch.nn.Linear(16, 8).double()
                proj.weight.copy_(getattr(full, name).weight[rows])
                proj.bias.copy_(getattr(full, name).bias[rows])
                setattr(shard, name, proj)
            shard.out_proj = torch.nn.Linear(8, 16, bias=False).double()
            shard.out_proj.weight.copy_(full.out_proj.weight[:, rows])
        total += shard(x)
    torch.testing.assert_close(total + full.out_proj.bias, full(x), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------- KV cache


def test_causal_mask_offset_is_torchs_lower_right_causal_bias():
    assert causal_mask(2, 4, offset=2).tolist() == [[True, True, True, False], [True, True, True, True]]
    for m, n in [(1, 1), (1, 6), (3, 5), (4, 4)]:
        assert torch.equal(causal_mask(m, n, offset=n - m), causal_lower_right(m, n)._materialize())


def _chunks(n, cuts):
    """[start, end) pieces of range(n) cut at the sorted positions ``cuts``."""
    edges = [0, *sorted(set(c for c in cuts if 0 < c < n)), n]
    return list(zip(edges[:-1], edges[1:]))


@settings(max_examples=20)
@given(n=st.integers(1, 9), cuts=st.lists(st.integers(1, 8), max_size=4), use_sdpa=st.booleans(),
       seed=st.integers(0, 999))
def test_chunked_causal_decoding_equals_the_full_forward(n, cuts, use_sdpa, seed):
    """Any split of a sequence into prefill chunks and decode steps gives the full causal forward's rows."""
    fast, slow = _pair(causal=True, seed=seed)
    attn = (fast if use_sdpa else slow).eval()
    x = torch.randn(2, n, 16, dtype=f64, generator=torch.Generator().manual_seed(seed))
    cache = attn.new_kv_cache(2, max_len=n + 1)
    rows = [attn(x[:, a:b], kv_cache=cache, start=a) for a, b in _chunks(n, cuts)]
    torch.testing.assert_close(torch.cat(rows, dim=1), attn(x), rtol=0, atol=1e-12)


def test_offset_mask_is_what_torchs_lower_right_bias_computes():
    """Three new queries after four cached keys, against SDPA with torch's own bottom-right causal bias."""
    _, attn = _pair(causal=True)  # the explicit (non-SDPA) path
    x = torch.randn(1, 7, 16, dtype=f64)
    cache = attn.new_kv_cache(1, 7)
    attn(x[:, :4], kv_cache=cache, start=0)
    y = attn(x[:, 4:], kv_cache=cache, start=4)

    def heads(proj, z):
        return proj(z).view(1, -1, 4, 4).transpose(1, 2)  # (B, T, 16) -> (B, h=4, T, d=4)

    q, k, v = heads(attn.q_proj, x[:, 4:]), heads(attn.k_proj, x), heads(attn.v_proj, x)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(3, 7))  # (1, 4, 3, 4)
    torch.testing.assert_close(y, attn.out_proj(ref.transpose(1, 2).reshape(1, 3, 16)), rtol=0, atol=1e-12)


def test_cache_holds_the_key_and_value_projections_in_place():
    fast, _ = _pair(causal=True)
    x = torch.randn(2, 5, 16, dtype=f64)
    cache = fast.new_kv_cache(2, 8)
    k_storage, v_storage = cache.k.data_ptr(), cache.v.data_ptr()
    fast(x[:, :3], kv_cache=cache, start=0)
    fast(x[:, 3:], kv_cache=cache, start=3)
    assert (cache.k.data_ptr(), cache.v.data_ptr()) == (k_storage, v_storage)  # written, not replaced
    for proj, stored in ((fast.k_proj, cache.k), (fast.v_proj, cache.v)):
        want = proj(x).view(2, 5, 4, 4).permute(0, 2, 1, 3)  # (B, T, h·d) -> (B, h, T, d)
        torch.testing.assert_close(stored[:, :, :5], want, rtol=0, atol=1e-12)
        assert not stored[:, :, 5:].any()  # never written: still the zeros it was allocated with
    assert (cache.batch_size, cache.num_heads, cache.max_len, cache.head_dim) == (2, 4, 8, 4)
    assert cache.dtype == f64 and cache.nbytes == 2 * 2 * 4 * 8 * 4 * 8


def test_one_query_needs_no_mask_and_a_prefill_uses_is_causal(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append((args[1].shape[2], kwargs.get("is_causal", False), kwargs.get("attn_mask")))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    fast, _ = _pair(causal=True)
    cache = fast.new_kv_cache(1, 6)
    x = torch.randn(1, 6, 16, dtype=f64)
    fast(x[:, :3], kv_cache=cache, start=0)  # prefill: is_causal, no mask
    fast(x[:, 3:4], kv_cache=cache, start=3)  # decode: one query over 4 keys, no mask at all
    fast(x[:, 4:], kv_cache=cache, start=4)  # chunk after a prefix: the bottom-right (2, 6) mask
    (s0, causal0, m0), (s1, causal1, m1), (s2, causal2, m2) = calls
    assert (s0, causal0, m0) == (3, True, None)
    assert (s1, causal1, m1) == (4, False, None)
    assert (s2, causal2) == (6, False) and torch.equal(m2, causal_lower_right(2, 6)._materialize())


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_non_causal_cache_attends_to_every_cached_key(use_sdpa):
    fast, slow = _pair(causal=False)
    attn = fast if use_sdpa else slow
    x = torch.randn(2, 6, 16, dtype=f64)
    cache = attn.new_kv_cache(2, 6)
    attn(x[:, :4], kv_cache=cache, start=0)
    y = attn(x[:, 4:], kv_cache=cache, start=4)
    torch.testing.assert_close(y, attn(x)[:, 4:], rtol=0, atol=1e-12)  # keys 0..5 for both new queries


@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("use_sdpa", [True, False])
def test_padding_mask_combines_with_the_offset_causal_mask(kind, use_sdpa):
    fast, slow = _pair(causal=True)
    attn = fast if use_sdpa else slow
    x = torch.randn(2, 7, 16, dtype=f64)
    allowed = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    allowed[1, ..., 1] = False  # example 1 never looks at position 1
    mask = allowed if kind == "bool" else torch.zeros(2, 1, 1, 7, dtype=f64).masked_fill(~allowed, -math.inf)
    cache = attn.new_kv_cache(2, 7)
    rows = [attn(x[:, a:b], mask[..., :b], kv_cache=cache, start=a) for a, b in [(0, 3), (3, 6), (6, 7)]]
    torch.testing.assert_close(torch.cat(rows, dim=1), attn(x, mask), rtol=0, atol=1e-12)


def test_kv_cache_misuse_is_a_user_error():
    fast, _ = _pair(causal=True)  # 4 heads of 4, float64
    x = torch.randn(2, 3, 16, dtype=f64)
    with pytest.raises(AicomputeError, match=r"needs 5 slots but the cache has max_len 4.*max_len >= 5"):
        fast(x[:, :2], kv_cache=fast.new_kv_cache(2, 4), start=3)
    wrong = {
        "batch": KVCache.zeros(3, 4, 8, 4, dtype=f64),
        "heads": KVCache.zeros(2, 2, 8, 4, dtype=f64),
        "head_dim": KVCache.zeros(2, 4, 8, 8, dtype=f64),
        "dtype": KVCache.zeros(2, 4, 8, 4, dtype=torch.float32),
    }
    for cache in wrong.values():
        with pytest.raises(AicomputeError, match=r"do not fit this KV cache, which holds \(batch="):
            fast(x, kv_cache=cache)
    with pytest.raises(AicomputeError, match="start=2 is a position in a KV cache"):
        fast(x, start=2)
    with pytest.raises(AicomputeError, match="start must be a non-negative integer, got -1"):
        fast(x, kv_cache=fast.new_kv_cache(2, 8), start=-1)
    with pytest.raises(AicomputeError, match="max_len must be a positive integer, got 0"):
        fast.new_kv_cache(2, 0)
    with pytest.raises(AicomputeError, match="k and v of one shape"):
        KVCache(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 5))
