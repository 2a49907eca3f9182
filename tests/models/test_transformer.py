"""The GPT-style decoder and its presets (models/transformer.py)."""

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode, is_fake
from torch.utils._python_dispatch import TorchDispatchMode

from aicompute.errors import AicomputeError
from aicompute.models import build_for_dataset, count_params, example_input, get_model, model_spec
from aicompute.models.transformer import GPT, GPTConfig, GPTKVCache
from aicompute.nn.attention import KVCache, MultiHeadSelfAttention

TINY = dict(vocab_size=17, block_size=12, n_layer=2, n_head=2, n_embd=16)


def closed_form_params(L, d, V, T, *, bias=True, tied=True):
    """Parameter count of the nanoGPT-shaped decoder, derived layer by layer."""
    if bias:
        attn = 4 * (d * d + d)  # q, k, v, out projections: d·d weights + d biases each → 4d² + 4d
        mlp = (d * 4 * d + 4 * d) + (4 * d * d + d)  # fc_in d→4d, fc_out 4d→d → 8d² + 5d
        norms = 2 * (2 * d)  # ln_1, ln_2: weight + bias → 4d
        final_norm = 2 * d
    else:
        attn, mlp, norms, final_norm = 4 * d * d, 8 * d * d, 2 * d, d
    embeddings = V * d + T * d  # token + learned position tables
    head = 0 if tied else V * d  # a tied head reuses the token table
    return L * (attn + mlp + norms) + embeddings + final_norm + head


def brief_formula(L, d, V, T):
    return 12 * L * d**2 + 13 * L * d + (V + T) * d + 2 * d


def _all_meta(model):
    tensors = [*model.parameters(), *model.buffers()]
    return bool(tensors) and all(t.is_meta and t.data_ptr() == 0 for t in tensors)


# ----------------------------------------------------------------------------------------- parameter counts


def test_gpt2_small_has_exactly_124_439_808_params():
    model = get_model("gpt2-small", device="meta")
    assert _all_meta(model)
    assert count_params(model) == 124_439_808
    assert closed_form_params(12, 768, 50257, 1024) == brief_formula(12, 768, 50257, 1024) == 124_439_808


def test_gpt3_175b_builds_on_meta_with_the_closed_form_count():
    model = get_model("gpt3-175b")  # no device given: the factory builds on meta anyway
    assert _all_meta(model)  # no weight memory: every tensor is meta with a null data pointer
    L, d, V, T = 96, 12288, 50257, 2048
    assert len(model.blocks) == L and model.config.head_dim == 128
    per_block = sum(p.numel() for p in model.blocks[0].parameters())
    assert per_block == 12 * d * d + 13 * d
    n = count_params(model)
    assert n == closed_form_params(L, d, V, T) == brief_formula(L, d, V, T) == 174_604_259_328
    assert 174e9 < n < 176e9
    assert model_spec("gpt3-175b").meta_only


@settings(max_examples=12, deadline=None)
@given(
    L=st.integers(1, 3),
    heads=st.integers(1, 4),
    head_dim=st.integers(1, 8),
    V=st.integers(2, 50),
    T=st.integers(1, 20),
    bias=st.booleans(),
    tied=st.booleans(),
)
def test_param_count_matches_closed_form(L, heads, head_dim, V, T, bias, tied):
    d = heads * head_dim
    config = GPTConfig(
        vocab_size=V, block_size=T, n_layer=L, n_head=heads, n_embd=d, bias=bias, tie_weights=tied
    )
    with torch.device("meta"):
        model = GPT(config)
    assert count_params(model) == closed_form_params(L, d, V, T, bias=bias, tied=tied)


def test_default_transformer_param_count():
    # 12·4·128² + 13·4·128 + (100 + 64)·128 + 2·128 = 786,432 + 6,656 + 20,992 + 256
    assert count_params(get_model("transformer", device="meta")) == 814_336


# ---------------------------------------------------------------------------------------- structure, forward


def test_tied_head_is_the_embedding_and_gets_both_gradients():
    torch.manual_seed(0)
    tied = get_model("transformer", **TINY)
    untied = get_model("transformer", **TINY, tie_weights=False)
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.lm_head.weight is not untied.tok_emb.weight
    untied.load_state_dict(tied.state_dict())  # same values, two separate tensors
    idx = torch.randint(0, 17, (3, 12))
    for model in (tied, untied):
        F.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten()).backward()
    expected = untied.tok_emb.weight.grad + untied.lm_head.weight.grad
    torch.testing.assert_close(tied.tok_emb.weight.grad, expected)
    assert count_params(untied) - count_params(tied) == 17 * 16


@settings(max_examples=10, deadline=None)
@given(t=st.integers(0, 10), seed=st.integers(0, 2**16))
def test_causal_later_tokens_do_not_change_earlier_logits(t, seed):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**TINY)).eval()
    idx = torch.randint(0, 17, (2, 12))
    changed = idx.clone()
    changed[:, t + 1 :] = (idx[:, t + 1 :] + 1) % 17  # every later token differs
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, t + 1], b[:, t + 1])


def test_blocks_use_the_nn_attention_with_megatron_names():
    model = GPT(GPTConfig(**TINY))
    attn = model.blocks[0].attn
    assert isinstance(attn, MultiHeadSelfAttention) and attn.causal and attn.num_heads == 2
    keys = {k for k in model.state_dict() if k.startswith("blocks.0.")}
    assert keys == {
        f"blocks.0.{m}.{p}"
        for m in ("ln_1", "ln_2", "attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.fc_in",
                  "mlp.fc_out")
        for p in ("weight", "bias")
    }


def test_attention_asks_sdpa_for_causality_instead_of_building_a_mask(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    GPT(GPTConfig(**TINY)).eval()(torch.randint(0, 17, (2, 9)))
    assert len(calls) == TINY["n_layer"]
    assert all(c.get("is_causal") is True and c.get("attn_mask") is None for c in calls)


def test_attention_matches_masked_softmax_written_out():
    torch.manual_seed(0)
    attn = GPT(GPTConfig(**TINY)).blocks[0].attn.eval()
    b, t, d, h = 2, 5, 16, 2
    x = torch.randn(b, t, d)

    def split(lin):
        return lin(x).view(b, t, h, d // h).transpose(1, 2)  # (B, h, T, hd)

    q, k, v = split(attn.q_proj), split(attn.k_proj), split(attn.v_proj)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d // h)  # (B, h, T, T)
    future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    expected = attn.out_proj((weights @ v).transpose(1, 2).reshape(b, t, d))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def _head_shard(attn, part, parts, d):
    """The attention of heads [part·h/parts, (part+1)·h/parts), as a column/row-parallel shard holds it."""
    shard = copy.deepcopy(attn)
    rows = slice(part * d // parts, (part + 1) * d // parts)
    for name in ("q_proj", "k_proj", "v_proj"):
        full = getattr(attn, name)
        local = nn.Linear(d, d // parts)
        local.weight, local.bias = nn.Parameter(full.weight[rows]), nn.Parameter(full.bias[rows])
        setattr(shard, name, local)
    shard.out_proj = nn.Linear(d // parts, d, bias=False)
    shard.out_proj.weight = nn.Parameter(attn.out_proj.weight[:, rows])
    return shard


def test_attention_runs_on_a_head_shard_as_megatron_splits_it():
    torch.manual_seed(0)
    d = 16
    attn = GPT(GPTConfig(**{**TINY, "n_head": 4})).blocks[0].attn.eval()
    x = torch.randn(2, 6, d)
    partial = sum(_head_shard(attn, p, 2, d)(x) for p in range(2))  # the all-reduce of row-parallel outputs
    torch.testing.assert_close(partial + attn.out_proj.bias, attn(x), rtol=1e-5, atol=1e-5)


def test_init_follows_gpt2():
    torch.manual_seed(0)
    model = get_model("transformer", vocab_size=300, block_size=64, n_layer=8, n_head=2, n_embd=64)
    residual_std = 0.02 / math.sqrt(2 * 8)  # out_proj and fc_out write into the residual stream
    block = model.blocks[3]
    for weight, std in [
        (model.tok_emb.weight, 0.02),
        (block.attn.q_proj.weight, 0.02),
        (block.mlp.fc_in.weight, 0.02),
        (block.attn.out_proj.weight, residual_std),
        (block.mlp.fc_out.weight, residual_std),
    ]:
        assert abs(weight.std().item() / std - 1) < 0.05
    assert not block.mlp.fc_in.bias.any() and not block.attn.out_proj.bias.any()


def test_forward_shape_and_meta_forward():
    torch.manual_seed(0)
    model = get_model("transformer", **TINY)
    assert model(torch.randint(0, 17, (3, 7))).shape == (3, 7, 17)
    meta = get_model("transformer", device="meta", **TINY)
    out = meta(torch.zeros(2, 12, dtype=torch.long, device="meta"))
    assert out.is_meta and out.shape == (2, 12, 17)


def test_input_longer_than_block_size_says_the_limit():
    model = get_model("transformer", **TINY)
    with pytest.raises(AicomputeError, match="13 tokens.*block_size.*12"):
        model(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(AicomputeError, match="int64"):
        model(torch.zeros(1, 5))


def test_token_id_outside_the_vocabulary_is_a_user_error():
    model = get_model("transformer", **TINY)
    with pytest.raises(AicomputeError, match=r"GPT got token id 17 but its vocabulary has 17 ids"):
        model(torch.tensor([[1, 17, 3]]))
    with pytest.raises(AicomputeError, match=r"token id 20 .*vocab_size >= 21"):
        model.generate(torch.tensor([[20]]), 2)
    with pytest.raises(AicomputeError, match="token id -1"):
        model(torch.tensor([[-1, 0]]))


def test_tiny_gpt_overfits_a_fixed_sequence(next_token_losses):
    torch.manual_seed(0)
    text = "attention is all you need, attention is all. "
    vocab = sorted(set(text))
    tokens = torch.tensor([[vocab.index(ch) for ch in text]])
    model = get_model("transformer", vocab_size=len(vocab), block_size=64, n_layer=1, n_head=2, n_embd=32)
    losses = next_token_losses(model, tokens, torch.optim.AdamW(model.parameters(), lr=1e-2), 30)
    assert losses[0] > 2.0  # about ln(vocab) at the start
    assert losses[-1] < 0.1 * losses[0], losses


# ------------------------------------------------------------------------------------------------ generation


def test_generation_length_and_determinism_under_a_seeded_generator(check_seeded_generation):
    torch.manual_seed(0)
    model = get_model("transformer", **TINY)
    prompt = torch.randint(0, 17, (2, 3))
    a = check_seeded_generation(model, prompt, 15, 17, seeds=(3, 4))  # runs past block_size 12
    assert a.shape == (2, 18)


def test_greedy_generation_matches_a_cropped_recompute():
    torch.manual_seed(0)
    model = get_model("transformer", **TINY).eval()
    seq = torch.randint(0, 17, (2, 10))
    out = model.generate(seq, 5, temperature=0)
    for _ in range(5):  # reference: the last block_size tokens, argmax of the last position
        seq = torch.cat([seq, model(seq[:, -12:])[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)


def test_generate_restores_training_mode_and_checks_arguments():
    model = get_model("transformer", **TINY, dropout=0.5)
    model.train()
    model.generate(torch.zeros(1, 2, dtype=torch.long), 2)
    assert model.training and all(m.training for m in model.modules())
    with pytest.raises(AicomputeError, match="at least one token"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 2)
    with pytest.raises(AicomputeError, match="temperature"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 2, temperature=-1.0)


# -------------------------------------------------------------------------------------------------- KV cache


def _tiny_eval(seed=0, **over):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **over})).eval()


@pytest.mark.parametrize("prefill", [[10], [4, 6]], ids=["one-go", "two-chunks"])
def test_prefill_then_decode_gives_the_full_forward_logits(prefill):
    model = _tiny_eval()
    idx = torch.randint(0, 17, (2, 12))
    with torch.no_grad():
        full = model(idx)  # (2, 12, 17), no cache
        cache = model.new_kv_cache(2)
        logits, start = [], 0
        for t in [*prefill, 1, 1]:  # the prompt's chunks, then one token at a time up to block_size
            logits.append(model(idx[:, start : start + t], kv_cache=cache))
            start += t
            assert cache.length == start
    torch.testing.assert_close(torch.cat(logits, dim=1), full, rtol=0, atol=1e-5)


def test_cache_after_a_prefill_holds_every_blocks_key_and_value_projections():
    model = _tiny_eval()
    idx = torch.randint(0, 17, (2, 7))
    attn_inputs = []  # what each block's attention reads in a plain forward: ln_1(x), (B, T, d)
    hooks = [b.attn.register_forward_pre_hook(lambda _m, args: attn_inputs.append(args[0])) for b in model.blocks]
    with torch.no_grad():
        model(idx)
        for h in hooks:
            h.remove()
        cache = model.new_kv_cache(2, 9)
        model(idx, kv_cache=cache)
    assert cache.length == 7 and len(cache.layers) == 2
    for block, x, layer in zip(model.blocks, attn_inputs, cache.layers):
        for proj, stored in ((block.attn.k_proj, layer.k), (block.attn.v_proj, layer.v)):
            want = proj(x).view(2, 7, 2, 8).transpose(1, 2)  # (B, T, h·hd) -> (B, h=2, T, hd=8)
            torch.testing.assert_close(stored[:, :, :7], want, rtol=0, atol=1e-6)
            assert not stored[:, :, 7:].any()


def test_new_kv_cache_shape_dtype_and_defaults():
    model = _tiny_eval()
    cache = model.new_kv_cache(3)
    assert isinstance(cache, GPTKVCache) and cache.length == 0
    assert (cache.batch_size, cache.max_len) == (3, 12)  # max_len defaults to block_size
    assert all(isinstance(c, KVCache) and c.k.shape == c.v.shape == (3, 2, 12, 8) for c in cache.layers)
    assert cache.layers[0].dtype == torch.float32 and cache.layers[0].device == torch.device("cpu")
    # 2 (k and v) · L=2 · B=3 · max_len=5 · d=16 · 2 bytes = 1920
    assert model.new_kv_cache(3, 5, dtype=torch.bfloat16).nbytes == 2 * 2 * 3 * 5 * 16 * 2 == 1920


def _forward_lengths(model):
    """Record the token count of every forward call of ``model``; returns the list and the hook handle."""
    lengths = []
    handle = model.register_forward_pre_hook(lambda _m, args: lengths.append(args[0].shape[1]))
    return lengths, handle


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_generate_with_the_cache_gives_the_sliding_window_tokens(temperature):
    model = _tiny_eval(seed=1)
    prompt = torch.randint(0, 17, (2, 4))
    lengths, handle = _forward_lengths(model)
    runs = {}
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(7)
        runs[use_cache] = model.generate(prompt, 9, temperature=temperature, generator=gen, use_cache=use_cache)
    handle.remove()
    assert torch.equal(runs[True], runs[False]) and runs[True].shape == (2, 13)
    # 4 + 9 − 1 = 12 = block_size: the cached run feeds the prompt once, then one token per step
    assert lengths == [4] + [1] * 8 + list(range(4, 13))


def test_generate_past_block_size_falls_back_to_the_sliding_window():
    model = _tiny_eval(seed=2)
    prompt = torch.randint(0, 17, (1, 4))
    lengths, handle = _forward_lengths(model)
    out = model.generate(prompt, 10, generator=torch.Generator().manual_seed(3))  # 4 + 10 − 1 = 13 > 12
    handle.remove()
    assert lengths == [4, 5, 6, 7, 8, 9, 10, 11, 12, 12]
    ref = model.generate(prompt, 10, generator=torch.Generator().manual_seed(3), use_cache=False)
    assert torch.equal(out, ref)


def test_kv_cache_misuse_names_the_limits():
    model = _tiny_eval()
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(AicomputeError, match="max_len 13 is longer than this model's block_size 12"):
        model.new_kv_cache(2, 13)
    cache = model.new_kv_cache(2, 8)
    model(torch.zeros(2, 6, dtype=torch.long), kv_cache=cache)
    with pytest.raises(AicomputeError, match=r"holds 6 tokens and 3 more make 9, past its max_len 8"):
        model(ids, kv_cache=cache)
    assert cache.length == 6  # a refused call changes nothing
    layers = [KVCache.zeros(2, 2, 20, 8) for _ in range(2)]  # built by hand, longer than the model reads
    with pytest.raises(AicomputeError, match=r"holds 10 tokens and 3 more make 13, past this model's block_size 12"):
        model(ids, kv_cache=GPTKVCache(layers, length=10))
    with pytest.raises(AicomputeError, match="1 layer caches but this model has 2 blocks"):
        model(ids, kv_cache=GPTKVCache(layers[:1]))
    with pytest.raises(AicomputeError, match="kv_cache.length must be a non-negative integer, got -1"):
        model(ids, kv_cache=GPTKVCache(layers, length=-1))
    with pytest.raises(AicomputeError, match=r"do not fit this KV cache, which holds \(batch=3"):
        model(ids, kv_cache=model.new_kv_cache(3))
    with pytest.raises(AicomputeError, match="torch.bfloat16"):
        model(ids, kv_cache=model.new_kv_cache(2, dtype=torch.bfloat16))


class _OpLog(TorchDispatchMode):
    """Every aten op run inside it, with its arguments' shapes."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in args]
        self.ops.append((func._overloadpacket.__name__, shapes))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("where", ["fake", "meta"])
def test_one_decode_step_traces_without_data_and_reads_the_whole_cache(where):
    """The profiler's case: a cache holding kv_len − 1 tokens, one new token, no real memory anywhere."""
    b, kv_len, config = 2, 9, GPTConfig(**TINY)  # L=2, h=2, hd=8, d=16
    with FakeTensorMode() if where == "fake" else torch.device("meta"):
        model = GPT(config).eval()
        cache = model.new_kv_cache(b, kv_len)
        cache.length = kv_len - 1
        idx = torch.zeros(b, 1, dtype=torch.long)
        with torch.no_grad(), _OpLog() as log:
            logits = model(idx, kv_cache=cache)
    assert logits.shape == (b, 1, 17) and cache.length == kv_len
    assert (is_fake(logits) and is_fake(cache.layers[0].k)) if where == "fake" else logits.is_meta
    assert cache.nbytes == 2 * config.n_layer * b * kv_len * config.n_embd * 4  # 2·L·B·max_len·d·itemsize
    copies = [shapes for name, shapes in log.ops if name == "copy_"]
    assert copies == [[(b, 2, 1, 8), (b, 2, 1, 8)]] * (2 * config.n_layer)  # k and v of the new token
    if where == "fake":  # the fused CPU kernel reads q (B, h, 1, hd) and the cache's first kv_len positions
        sdpa = [shapes[:3] for name, shapes in log.ops if "scaled_dot_product" in name]
        assert sdpa == [[(b, 2, 1, 8), (b, 2, kv_len, 8), (b, 2, kv_len, 8)]] * config.n_layer
    else:  # on meta SDPA decomposes to its math: QKᵀ (B·h, 1, hd) @ (B·h, hd, S), then P (B·h, 1, S) @ V
        bmm = [shapes for name, shapes in log.ops if name == "bmm"]
        assert bmm == [[(2 * b, 1, 8), (2 * b, 8, kv_len)], [(2 * b, 1, kv_len), (2 * b, kv_len, 8)]] * config.n_layer


# ----------------------------------------------------------------------------------------- config, registry


def test_config_presets_and_validation():
    g2 = GPTConfig.gpt2_small()
    assert (g2.n_layer, g2.n_head, g2.n_embd, g2.block_size, g2.vocab_size) == (12, 12, 768, 1024, 50257)
    assert g2.bias and g2.tie_weights
    g3 = GPTConfig.gpt3_175b(block_size=4096)
    assert (g3.n_layer, g3.n_head, g3.n_embd, g3.block_size) == (96, 96, 12288, 4096)
    assert GPTConfig().to_dict()["n_embd"] == 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        g2.n_layer = 1
    with pytest.raises(AicomputeError, match=r"n_embd\(100\) is not divisible by n_head\(3\)"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(AicomputeError, match=r"GPTConfig.dropout must be a probability in \[0, 1\), got 1.0"):
        GPTConfig(dropout=1.0)
    with pytest.raises(AicomputeError, match="GPTConfig.n_layer must be a positive integer, got 0"):
        GPTConfig(n_layer=0)


def test_registry_entries_and_dataset_fit(chars_info):
    spec = model_spec("transformer")
    assert (spec.family, spec.input_shape, spec.input_dtype, spec.meta_only) == ("lm", (64,), "int64", False)
    assert get_model("transformer")(example_input(spec, 1)).shape == (1, 64, 100)
    assert model_spec("gpt2-small").input_shape == (1024,)
    model, kwargs = build_for_dataset("gpt2-small", chars_info, device="meta")
    assert kwargs == {"vocab_size": 70, "block_size": 32}
    assert count_params(model) == brief_formula(12, 768, 70, 32)
    small, _ = build_for_dataset("transformer", chars_info)
    assert small(torch.randint(0, 70, (2, 32))).shape == (2, 32, 70)
