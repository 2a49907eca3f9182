import math

import pytest
import torch
from torch import nn

from aicompute import AicomputeError
from aicompute.models.sampling import check_max_new_tokens, check_token_ids, generate_tokens, sample_next_token


def test_sample_next_token_top_k_and_temperature():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]]).repeat(500, 1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_next_token(logits, temperature=0), torch.full((500, 1), 1))
    picks = sample_next_token(logits, top_k=2, generator=g)
    assert set(picks.flatten().tolist()) == {1, 3}
    # at temperature 1 token 1 is e¹ ≈ 2.7 times as likely as token 3
    share = (picks == 1).float().mean().item()
    assert abs(share - math.e / (1 + math.e)) < 0.07
    with pytest.raises(AicomputeError, match="top_k must be a positive integer, got 0"):
        sample_next_token(logits, top_k=0)


def test_token_id_shape_and_count_checks():
    check_token_ids(torch.zeros(2, 3, dtype=torch.long, device="meta"), "m", vocab_size=5)
    with pytest.raises(AicomputeError, match=r"m reads token ids as a \(batch, time\) int64 tensor"):
        check_token_ids(torch.zeros(2, 3), "m", vocab_size=5)
    with pytest.raises(AicomputeError, match="at least one token"):
        check_token_ids(torch.zeros(2, 0, dtype=torch.long), "m", vocab_size=5, allow_empty=False)
    with pytest.raises(AicomputeError, match="non-negative"):
        check_max_new_tokens(-1)


def test_token_ids_must_lie_in_the_vocabulary():
    ids = torch.tensor([[0, 4, 2], [3, 1, 4]])
    check_token_ids(ids, "m", vocab_size=5)  # 4 is the last id of a 5-token vocabulary
    check_token_ids(torch.zeros(2, 0, dtype=torch.long), "m", vocab_size=5)  # nothing to range-check
    with pytest.raises(AicomputeError, match=r"m got token id 7 but its vocabulary has 5 ids \(0\.\.4\).*>= 8"):
        check_token_ids(torch.tensor([[0, 7], [6, 1]]), "m", vocab_size=5)
    with pytest.raises(AicomputeError, match=r"m got token id -2; token ids must be in \[0, 5\)"):
        check_token_ids(torch.tensor([[0, -2]]), "m", vocab_size=5)
    # on meta there are no values: only shape and dtype are checked
    check_token_ids(torch.full((1, 2), 99, dtype=torch.long, device="meta"), "m", vocab_size=5)


def test_generate_tokens_feeds_each_new_token_to_the_step_once():
    vocab = 7
    model = nn.Dropout(0.5).train()
    seen = []

    def step(new_ids, carry):
        # a "model" that always predicts (last id + 1) mod V; the carry counts the calls
        seen.append((new_ids.tolist(), carry, model.training, torch.is_grad_enabled()))
        logits = torch.nn.functional.one_hot((new_ids[:, -1] + 1) % vocab, vocab).float()  # (B, V)
        return logits, (carry or 0) + 1

    prompt = torch.tensor([[0, 4], [2, 6]])
    out = generate_tokens(model, prompt, 3, step, who="toy", vocab_size=vocab, temperature=0)
    assert out.tolist() == [[0, 4, 5, 6, 0], [2, 6, 0, 1, 2]]  # the prompt, then counting on mod 7
    assert seen == [
        ([[0, 4], [2, 6]], None, False, False),  # the whole prompt first, with no carry, in eval, no grad
        ([[5], [0]], 1, False, False),  # then each sampled token alone, with what the step returned
        ([[6], [1]], 2, False, False),
    ]
    assert model.training  # the mode is restored
    assert generate_tokens(model, prompt, 0, step, who="toy", vocab_size=vocab).tolist() == prompt.tolist()
    assert len(seen) == 3  # no step for zero new tokens
    with pytest.raises(AicomputeError, match="toy got token id 7"):
        generate_tokens(model, torch.tensor([[7]]), 1, step, who="toy", vocab_size=vocab)
    with pytest.raises(AicomputeError, match="toy needs a prompt of at least one token"):
        generate_tokens(model, torch.zeros(1, 0, dtype=torch.long), 1, step, who="toy", vocab_size=vocab)
