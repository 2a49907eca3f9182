import math

import pytest
import torch

from aicompute import AicomputeError
from aicompute.models.sampling import check_max_new_tokens, check_token_ids, sample_next_token


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
