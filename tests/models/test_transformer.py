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

from aicompute.errors import AicomputeError
from aicompute.models import build_for_dataset, count_params, example_input, get_model, model_spec
from aicompute.models.transformer import GPT, GPTConfig
from aicompute.nn.attention import MultiHeadSelfAttention

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
