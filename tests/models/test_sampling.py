import math

import pytest
import torch
from torch import nn

from aicompute import AicomputeError
from aicompute.models.sampling import check_max_new_tokens, check_token_ids, eval_mode, sample_next_token


def test_sample_next_token_top_k_and_temperature():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]]).repeat(500, 1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_next_token(logits, temperature=0), torch.full((500, 1), 1))
    picks = sample_next_token(logits, top_k=2, generator=g)
    assert set(picks.flatten().tolist()) == {1, 3}
    # at temperature 1 token 1 is e¹ ≈ 2.7 times as likely as token 3
    share = (picks == 1).float().mean().item()
    assert abs(share - math.e / (1 + math.e)) < 0.07


def test_token_id_checks():
    check_token_ids(torch.zeros(2, 3, dtype=torch.long, device="meta"), "m")
    with pytest.raises(AicomputeError, match=r"m reads token ids as a \(batch, time\) int64 tensor"):
        check_token_ids(torch.zeros(2, 3), "m")
    with pytest.raises(AicomputeError, match="at least one token"):
        check_token_ids(torch.zeros(2, 0, dtype=torch.long), "m", allow_empty=False)
    with pytest.raises(AicomputeError, match="non-negative"):
        check_max_new_tokens(-1)


def test_eval_mode_restores_every_flag():
    model = nn.Sequential(nn.Dropout(), nn.Sequential(nn.Dropout()))
    model[1].eval()  # mixed flags: outer training, inner eval
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert model.training and model[0].training and not model[1].training and not model[1][0].training
