"""Live-memory tracking against hand-computed lifetimes, and the training-state model's closed forms."""

import pytest
import torch
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.profile import profile
from aicompute.profile.memory import LiveMemory, model_states


def test_live_memory_follows_storage_lifetimes():
    memory = LiveMemory()
    a = torch.empty(10)  # 40 bytes
    memory.track(a)
    view = a.view(2, 5)
    memory.track(view)  # same storage: not counted twice
    b = torch.empty(25)  # 100 bytes
    memory.track((b, 3))
    assert (memory.live, memory.peak) == (140, 140)
    del a
    assert memory.live == 140  # the view still holds the storage
    del view
    assert memory.live == 100
    del b
    assert (memory.live, memory.peak) == (0, 140)


def test_excluded_tensors_are_not_counted():
    memory = LiveMemory()
    w = torch.empty(100)
    memory.exclude([w])
    memory.track(w.view(10, 10))
    assert memory.live == 0


def test_inference_peak_of_a_two_layer_stack():
    # no_grad: x (2x8), then y1 (2x16) while y2 (2x4) is computed; all float32
    result = profile(nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 4)), input_shape=(2, 8))
    assert result.peak_activation_bytes == 4 * 2 * (8 + 16 + 4)


def test_training_saved_activations_of_one_linear():
    # alive when forward returns: the input (saved for the weight gradient) and the output
    result = profile(nn.Linear(8, 4), input_shape=(2, 8), mode="training", optimizer="sgd")
    assert result.saved_activation_bytes == 4 * 2 * (8 + 4)
    assert result.memory()["training_total_bytes"] == result.states.total + result.saved_activation_bytes


def test_accumulated_gradients_leave_the_activations():
    memory = LiveMemory()
    grad, act = torch.empty(10), torch.empty(5)  # 40 and 20 bytes
    memory.track((grad, act))
    memory.as_gradient(grad)
    memory.as_gradient(grad)  # a second accumulation into the same storage changes nothing
    assert (memory.live, memory.grads, memory.peak, memory.peak_activation) == (60, 40, 60, 60)
    del act
    memory.track(torch.empty(15))  # 60 bytes, freed at once
    assert (memory.peak, memory.peak_activation) == (100, 60)
    del grad
    assert (memory.live, memory.grads) == (0, 0)


def test_training_step_peak_of_a_two_layer_mlp():
    # Linear(8, 16) → ReLU → Linear(16, 4) on 2×8, float32, hand-traced through autograd's order. Alive when
    # forward returns: x (64 B), the ReLU output r (128, saved by both backward nodes) and the output (32).
    # Backward adds the ones (32); Linear 2's node makes dr (128), dW2 (256), db2 (16): 656 B live, then W2's
    # and b2's gradients are accumulated (272 B of gradients). The ones' buffer and r go; ReLU's node
    # turns dr into dh (128, dr freed); Linear 1's node makes dW1 (512) and db1 (64) beside x, out, the ones
    # (held by the caller) and dh: 64 + 32 + 32 + 128 + 512 + 64 = 832 B of activations, 1,104 B with W2's
    # gradients. Its input needs no gradient, so no dx.
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    result = profile(model, input_shape=(2, 8), mode="training", optimizer="momentum")
    memory = result.memory()
    assert result.saved_activation_bytes == 64 + 128 + 32
    assert result.peak_activation_bytes == 832
    assert memory["peak_activation_and_grads_bytes"] == 832 + 272
    params = 4 * (8 * 16 + 16 + 16 * 4 + 4)
    assert memory["training_peak_bytes"] == params + params + (832 + 272)  # weights, momentum, peak


def test_frozen_layers_hold_no_gradient_in_the_step_peak():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    model[0].requires_grad_(False)
    result = profile(model, input_shape=(2, 8), mode="training", optimizer="sgd")
    # only Linear 2 trains: its 272 B of gradients. r needs no gradient, so Linear 2's node makes no dr, and
    # backward stops there: x (the caller's input), r, out, the ones, dW2 and db2
    assert result.saved_activation_bytes == 64 + 128 + 32
    assert result.memory()["peak_activation_and_grads_bytes"] == 64 + 128 + 32 + 32 + 256 + 16
    assert result.states.grads == 272


class _Blocks(nn.Module):
    """Four Linear(256, 1024) → ReLU → ×2 → +1 → Linear(1024, 256) blocks, each checkpointed or not."""

    def __init__(self, checkpointed: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 256))
                                    for _ in range(4))
        self.checkpointed = checkpointed

    def forward(self, x):
        for block in self.blocks:
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False) if self.checkpointed else block(x)
        return x


def test_activation_checkpointing_lowers_the_peak():
    plain = profile(_Blocks(False), input_shape=(64, 256), mode="training")
    checkpointed = profile(_Blocks(True), input_shape=(64, 256), mode="training")
    # forward keeps only each block's input (64×256 floats) instead of its two 64×1024 activations
    assert checkpointed.saved_activation_bytes < plain.saved_activation_bytes / 2
    assert checkpointed.peak_activation_bytes < plain.peak_activation_bytes
    # here the step's peak comes at the end of backward (all gradients, no activations): equal in both
    assert checkpointed.memory()["training_peak_bytes"] <= plain.memory()["training_peak_bytes"]


@pytest.mark.parametrize(
    "optimizer,dtype,per_param",
    [
        ("sgd", torch.float32, 4 + 4 + 0),
        ("momentum", torch.float32, 4 + 4 + 4),
        ("adam", torch.float32, 4 + 4 + 8),
        ("adamw", torch.float32, 4 + 4 + 8),
        ("adam", torch.bfloat16, 2 + 2 + 12),  # ZeRO's 2Ψ + 2Ψ + 12Ψ
        ("sgd", torch.float16, 2 + 2 + 4),  # fp32 master weights only
    ],
)
def test_model_states_per_parameter(optimizer, dtype, per_param):
    params = [torch.empty(10, 3, dtype=dtype, requires_grad=True), torch.empty(3, dtype=dtype, requires_grad=True)]
    states = model_states(params, optimizer)
    assert states.total == 33 * per_param
    assert states.mixed_precision == (dtype != torch.float32)


def test_frozen_parameters_have_no_gradient_or_state():
    params = [torch.empty(10, requires_grad=True), torch.empty(5)]  # second one frozen
    states = model_states(params, "adam")
    assert (states.params, states.grads, states.optimizer) == (60, 40, 80)


def test_unknown_optimizer():
    with pytest.raises(AicomputeError, match="did you mean 'adam'"):
        model_states([], "adma")


def test_a_fused_rnn_says_its_training_workspace_is_not_traced():
    lstm = nn.LSTM(8, 16)
    trained = profile(lstm, input_shape=(5, 2, 8), mode="training").coverage()["memory_not_traced"]
    assert [(item["op"], item["calls"]) for item in trained] == [("aten.mkldnn_rnn_layer", 1)]
    assert profile(lstm, input_shape=(5, 2, 8)).coverage()["memory_not_traced"] == []  # inference keeps none
    assert profile(nn.Linear(8, 4), input_shape=(2, 8), mode="training").coverage()["memory_not_traced"] == []
