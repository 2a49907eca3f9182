import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aicompute.errors import AicomputeError
from aicompute.train.evaluate import evaluate
from aicompute.train.metrics import IGNORE_INDEX


@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_loss_and_accuracy_match_one_pass_over_all_data(mlp, blobs, batch_size):
    model = mlp()
    x, y = blobs
    with torch.no_grad():
        logits = model(x)
    result = evaluate(model, (x, y), batch_size=batch_size)
    assert result.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert result.accuracy == (logits.argmax(1) == y).float().mean().item()
    assert result.examples == 256 and result.tokens is None and result.perplexity is None


def test_runs_in_eval_mode_and_restores_the_train_mode(blobs):
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.9))
    model.train()
    first, second = evaluate(model, blobs), evaluate(model, blobs)
    assert first.loss == second.loss  # dropout is off, so both passes agree
    assert model.training and model[1].training


def test_restores_mixed_modes_exactly(blobs):
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    model.train()
    model[1].eval()  # a frozen batch-norm inside a training model
    running = model[1].running_mean.clone()
    evaluate(model, blobs)
    assert [m.training for m in model.modules()] == [True, True, False, True]
    assert torch.equal(model[1].running_mean, running)


class _GradProbe(nn.Linear):
    def forward(self, x):
        self.saw_grad_enabled = torch.is_grad_enabled()
        return super().forward(x)


def test_runs_without_gradients(blobs):
    model = _GradProbe(4, 3)
    evaluate(model, blobs)
    assert model.saw_grad_enabled is False and model.weight.grad is None


def test_restores_the_mode_when_the_model_fails():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    model = Broken().train()
    with pytest.raises(ValueError, match="boom"):
        evaluate(model, (torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)))
    assert model.training


def test_language_model_reports_tokens_and_perplexity(lm, tokens):
    torch.manual_seed(0)
    model = lm()
    x, y = tokens
    with torch.no_grad():
        logits = model(x)  # (B, T, V)
    result = evaluate(model, (x, y), batch_size=10)
    expected = F.cross_entropy(logits.reshape(-1, 5), y.reshape(-1)).item()
    assert result.loss == pytest.approx(expected, rel=1e-6)
    assert result.tokens == x.numel() and result.examples == x.shape[0]
    assert result.perplexity == pytest.approx(math.exp(expected), rel=1e-6)
    assert result.accuracy == (logits.argmax(-1) == y).float().mean().item()


def test_a_custom_loss_gives_no_perplexity(lm, tokens):
    flat_nll = lambda out, tgt: F.cross_entropy(out.transpose(1, 2), tgt)  # noqa: E731
    result = evaluate(lm(), tokens, loss_fn=flat_nll)
    assert result.perplexity is None and result.tokens == tokens[0].numel()


def test_a_custom_regression_loss_has_no_accuracy():
    model = nn.Linear(2, 1)
    x = torch.randn(10, 2)
    result = evaluate(model, (x, torch.zeros(10, 1)), loss_fn=F.mse_loss)
    with torch.no_grad():
        assert result.loss == pytest.approx(model(x).pow(2).mean().item(), rel=1e-6)
    assert result.accuracy is None


def test_naming_a_device_moves_the_model():
    model = nn.Linear(2, 2)
    result = evaluate(model, (torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)), device="cpu")
    assert result.examples == 3 and model.weight.device.type == "cpu"


def test_an_empty_loader_is_an_error():
    empty = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0)), batch_size=4)
    with pytest.raises(AicomputeError, match="no batches"):
        evaluate(nn.Linear(2, 2), empty)


def test_a_non_scalar_loss_is_an_error(blobs):
    with pytest.raises(AicomputeError, match="scalar"):
        evaluate(nn.Linear(4, 3), blobs, loss_fn=lambda o, t: F.cross_entropy(o, t, reduction="none"))


def test_a_batch_of_padding_only_does_not_poison_the_loss(lm, tokens):
    torch.manual_seed(0)
    model = lm()
    x, y = tokens
    y = y.clone()
    y[32:] = IGNORE_INDEX  # the second batch of 32 has no token to score
    with torch.no_grad():
        logits = model(x[:32])
    result = evaluate(model, (x, y), batch_size=32)
    assert result.loss == pytest.approx(F.cross_entropy(logits.reshape(-1, 5), y[:32].reshape(-1)).item(), rel=1e-6)
    assert result.tokens == 32 * x.shape[1] and result.examples == 64
