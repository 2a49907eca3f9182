import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.errors import AicomputeError
from aicompute.train.metrics import IGNORE_INDEX, MetricTotals, default_loss, is_sequence_output, loss_value


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 5), t=st.integers(1, 6), v=st.integers(2, 7), seed=st.integers(0, 10_000))
def test_sequence_loss_is_the_mean_token_negative_log_likelihood(b, t, v, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g, dtype=torch.float64)
    targets = torch.randint(0, v, (b, t), generator=g)
    log_probs = logits - logits.logsumexp(dim=-1, keepdim=True)  # log-softmax by hand
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    assert torch.allclose(default_loss(logits, targets), nll.mean(), atol=1e-12)


def test_classification_loss_is_torchs_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(9, 4, generator=g), torch.randint(0, 4, (9,), generator=g)
    assert torch.equal(default_loss(logits, targets), F.cross_entropy(logits, targets))


def test_uniform_logits_give_log_of_the_class_count():
    assert default_loss(torch.zeros(3, 10), torch.tensor([1, 2, 3])).item() == pytest.approx(math.log(10))


def test_default_loss_explains_bad_outputs():
    with pytest.raises(AicomputeError, match="loss_fn"):
        default_loss((torch.zeros(2, 3),), torch.zeros(2, dtype=torch.long))
    with pytest.raises(AicomputeError, match=r"shape \(2, 3\).*number of classes"):
        default_loss(torch.zeros(2, 3), torch.tensor([0, 7]))


def test_sequence_shapes_are_recognised():
    assert is_sequence_output(torch.zeros(2, 3, 4), torch.zeros(2, 3))
    assert not is_sequence_output(torch.zeros(2, 4), torch.zeros(2))
    assert not is_sequence_output((torch.zeros(2, 3, 4),), torch.zeros(2, 3))


def test_loss_value_needs_a_scalar_tensor():
    assert loss_value(torch.tensor(2.5)) == 2.5
    assert loss_value(torch.tensor([1.5])) == 1.5
    with pytest.raises(AicomputeError, match=r"shape \(3,\)"):
        loss_value(torch.zeros(3))
    with pytest.raises(AicomputeError, match="float"):
        loss_value(1.0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), batch=st.integers(1, 17), seed=st.integers(0, 10_000))
def test_totals_over_batches_equal_one_pass_over_all_data(n, batch, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 5, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 5, (n,), generator=g)
    totals = MetricTotals()
    for i in range(0, n, batch):
        out, tgt = logits[i : i + batch], targets[i : i + batch]
        totals.update(F.cross_entropy(out, tgt).item(), out, tgt)
    assert totals.examples == totals.predictions == n
    assert totals.loss == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-9)
    assert totals.accuracy == (logits.argmax(1) == targets).double().mean().item()


def test_sequence_totals_count_tokens_and_skip_ignored_ones():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])  # (1, 3, 2): predicts 0, 1, 0
    targets = torch.tensor([[0, 0, IGNORE_INDEX]])  # right, wrong, ignored
    totals = MetricTotals()
    totals.update(default_loss(logits, targets).item(), logits, targets)
    assert totals.sequence
    assert totals.examples == 1 and totals.predictions == 2
    assert totals.accuracy == 0.5
    expected = (F.softplus(torch.tensor(-2.0)) + F.softplus(torch.tensor(2.0))) / 2  # -log σ(2), -log σ(-2)
    assert totals.loss == pytest.approx(expected.item())


def test_accuracy_is_undefined_for_regression():
    totals = MetricTotals()
    out, tgt = torch.zeros(4, 1), torch.ones(4, 1)
    totals.update(F.mse_loss(out, tgt).item(), out, tgt)
    assert totals.accuracy is None
    assert totals.loss == 1.0 and totals.examples == 4


def test_empty_totals():
    totals = MetricTotals()
    assert math.isnan(totals.loss) and totals.accuracy is None


def test_a_batch_with_every_target_ignored_leaves_the_totals_unchanged():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 3, generator=g)  # (B, T, V)
    targets = torch.randint(0, 3, (2, 4), generator=g)
    padding = torch.full((2, 4), IGNORE_INDEX)
    padding_loss = default_loss(logits, padding).item()
    assert math.isnan(padding_loss)  # torch's mean over no tokens: 0/0
    totals = MetricTotals()
    totals.update(default_loss(logits, targets).item(), logits, targets)
    totals.update(padding_loss, logits, padding)
    assert totals.loss == pytest.approx(F.cross_entropy(logits.reshape(-1, 3), targets.reshape(-1)).item())
    assert totals.predictions == 8 and totals.examples == 4
    assert totals.accuracy == (logits.argmax(-1) == targets).float().mean().item()


def test_only_ignored_targets_give_a_nan_loss_and_no_accuracy():
    totals = MetricTotals()
    logits, padding = torch.zeros(3, 2), torch.full((3,), IGNORE_INDEX)
    totals.update(default_loss(logits, padding).item(), logits, padding)
    assert math.isnan(totals.loss) and totals.accuracy is None and totals.examples == 3
