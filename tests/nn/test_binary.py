"""Binary layers against hand-built references: numpy sign/α, naive XNOR-Net K, the BNN STE formula."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from aicompute.compress.quant.qparams import QScheme, binary_qparams
from aicompute.errors import AicomputeError
from aicompute.models import get_model
from aicompute.nn.binary import (
    BinaryActivation,
    BinaryConv2d,
    BinaryLinear,
    binarize_model,
    clip_binary_weights_,
    sign_ste,
)

FAST = settings(max_examples=30, deadline=None)
finite = st.floats(-4, 4, allow_nan=False, width=32)


def np_sign(a: np.ndarray) -> np.ndarray:
    """Reference sign with sign(0) = +1."""
    return np.where(a >= 0, 1.0, -1.0)


# --- sign_ste -------------------------------------------------------------------------------------


@FAST
@given(arrays(np.float32, st.integers(1, 40), elements=finite), arrays(np.float32, 40, elements=finite))
def test_sign_ste_forward_and_hardtanh_gradient(a, g):
    x = torch.from_numpy(a).requires_grad_()
    grad_out = torch.from_numpy(g[: a.size].copy())
    y = sign_ste(x)
    (grad,) = torch.autograd.grad(y, x, grad_out)
    np.testing.assert_array_equal(y.detach().numpy(), np_sign(a))
    np.testing.assert_array_equal(grad.numpy(), g[: a.size] * (np.abs(a) <= 1))  # BNN: g · 1{|x| ≤ 1}


def test_sign_ste_edges():
    x = torch.tensor([-1.0, -0.0, 0.0, 1.0, 1.5, float("nan")], requires_grad=True)
    y = sign_ste(x)
    assert y[:5].tolist() == [-1.0, 1.0, 1.0, 1.0, 1.0]  # sign(±0) = +1
    assert torch.isnan(y[5])
    y[:5].sum().backward()
    assert x.grad[:5].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]  # |x| = 1 still passes the gradient
    assert torch.equal(BinaryActivation()(x.detach()[:5]), y.detach()[:5])


# --- BinaryLinear ---------------------------------------------------------------------------------


@pytest.mark.parametrize("xnor", [False, True])
@pytest.mark.parametrize("binarize_input", [False, True])
def test_binary_linear_matches_numpy_reference(xnor, binarize_input):
    torch.manual_seed(0)
    layer = BinaryLinear(7, 5, xnor=xnor, binarize_input=binarize_input, input_scale=binarize_input)
    x = torch.randn(3, 7)
    w, b, xa = layer.weight.detach().numpy(), layer.bias.detach().numpy(), x.numpy()
    w_hat = np_sign(w) * (np.abs(w).mean(axis=1, keepdims=True) if xnor else 1.0)
    x_hat = np_sign(xa) * np.abs(xa).mean(axis=1, keepdims=True) if binarize_input else xa
    expected = x_hat @ w_hat.T + b
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_xnor_alpha_is_mean_abs_per_channel_and_optimal():
    torch.manual_seed(1)
    layer = BinaryConv2d(3, 4, 3, xnor=True)
    w = layer.weight.detach()
    w_hat = layer.binary_weight().detach()
    alpha = w_hat.abs().amax(dim=(1, 2, 3))
    assert torch.allclose(w_hat.abs(), alpha.reshape(4, 1, 1, 1).expand_as(w_hat))  # one α per output channel
    np.testing.assert_allclose(alpha.numpy(), np.abs(w.numpy()).reshape(4, -1).mean(axis=1), rtol=1e-6)
    ref = binary_qparams(w, QScheme(bits=1, axis=0)).scale  # the repo's 1-bit qparams agree
    assert torch.allclose(alpha, ref, rtol=1e-6)
    for c in range(4):  # α minimises ‖W_c − a·sign(W_c)‖²: nudging it either way costs more
        wc, sc = w[c].flatten(), torch.where(w[c] >= 0, 1.0, -1.0).flatten()
        err = lambda a: float((wc - a * sc).square().sum())  # noqa: E731
        assert err(alpha[c]) < err(alpha[c] * 1.01) and err(alpha[c]) < err(alpha[c] * 0.99)


def test_binary_weight_gradient_is_ste_gated():
    layer = BinaryLinear(3, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -2.0, 0.1], [1.0, -0.3, 3.0]]))
    x = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 2.0]])
    layer(x).sum().backward()
    dense = torch.ones(2, 1) @ x.sum(0, keepdim=True)  # ∂Σy/∂Ŵ = Σ_n x_n for every row: (2, 3)
    gate = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])  # |W| ≤ 1
    assert torch.equal(layer.weight.grad, dense * gate)


def test_input_scale_needs_binarized_input():
    with pytest.raises(AicomputeError, match="needs binarize_input=True"):
        BinaryLinear(4, 2, input_scale=True)
    with pytest.raises(AicomputeError, match="needs binarize_input=True"):
        BinaryConv2d(4, 2, 3, input_scale=True)


# --- BinaryConv2d ---------------------------------------------------------------------------------


def naive_k(x: torch.Tensor, groups: int, k: int, stride: int, padding: int) -> torch.Tensor:
    """XNOR-Net K by loops: per group, mean |x| over the group's channels and the zero-padded k×k window."""
    n, c, h, w = x.shape
    xp = F.pad(x.abs(), (padding,) * 4)
    oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out = torch.zeros(n, groups, oh, ow)
    cg = c // groups
    for b in range(n):
        for g in range(groups):
            for i in range(oh):
                for j in range(ow):
                    win = xp[b, g * cg : (g + 1) * cg, i * stride : i * stride + k, j * stride : j * stride + k]
                    out[b, g, i, j] = win.mean()
    return out


@pytest.mark.parametrize(("groups", "stride", "padding"), [(1, 1, 1), (2, 2, 0), (2, 1, 2)])
def test_binary_conv_xnor_matches_reference(groups, stride, padding):
    torch.manual_seed(2)
    layer = BinaryConv2d(4, 6, 3, stride, padding, groups=groups, binarize_input=True, xnor=True, input_scale=True)
    x = torch.randn(2, 4, 7, 6)
    w = layer.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3)).reshape(1, 6, 1, 1)
    core = F.conv2d(torch.where(x >= 0, 1.0, -1.0), torch.where(w >= 0, 1.0, -1.0), None, stride, padding, 1, groups)
    kmap = naive_k(x, groups, 3, stride, padding).repeat_interleave(6 // groups, dim=1)
    expected = core * alpha * kmap + layer.bias.detach().reshape(1, 6, 1, 1)
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_binary_conv_float_input_is_sign_weight_conv():
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect")
    layer = BinaryConv2d.from_float(conv)
    x = torch.randn(2, 3, 6, 6)
    ref = nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect")
    with torch.no_grad():
        ref.weight.copy_(torch.where(conv.weight >= 0, 1.0, -1.0))
        ref.bias.copy_(conv.bias)
    assert torch.allclose(layer(x), ref(x), atol=1e-5)
    assert layer.weight is not conv.weight and torch.equal(layer.weight, conv.weight)  # a copy, not a view


# --- binarize_model -------------------------------------------------------------------------------


def test_binarize_lenet_keeps_first_and_last_float():
    torch.manual_seed(4)
    model = get_model("lenet5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 1, 32, 32)  # LeNet-5's 32×32 input
    x_copy = x.clone()
    result = binarize_model(model, binarize_input=True, xnor=True)
    new = result.model
    assert result.kept_float == ["conv1", "fc3"]
    assert result.binarized == ["conv2", "fc1", "fc2"]
    assert type(new.conv1) is nn.Conv2d and type(new.fc3) is nn.Linear
    assert isinstance(new.conv2, BinaryConv2d) and isinstance(new.fc1, BinaryLinear)
    assert new.fc2.xnor and new.fc2.binarize_input and not new.fc2.input_scale
    assert result.to_dict() == {
        "binarized": ["conv2", "fc1", "fc2"],
        "kept_float": ["conv1", "fc3"],
        "options": {"binarize_input": True, "xnor": True, "input_scale": False},
    }
    # The original model is untouched and the copy starts from the same weights.
    assert all(type(m) in (nn.Conv2d, nn.Linear) for m in (model.conv2, model.fc1, model.fc2))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(v, before[k]) for k, v in new.state_dict().items())
    y = new(x)
    assert torch.equal(x, x_copy) and y.shape == (2, 10)
    assert not torch.allclose(y, model(x))


def test_binarize_all_layers_and_shared_module():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 2))
    result = binarize_model(model, keep_first_last=False)
    assert isinstance(result.model[0], BinaryLinear) and result.model[0] is result.model[2]
    assert result.binarized == ["0", "3"] and result.kept_float == []


def test_binarize_skips_attention_projection_and_rejects_tiny_models():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2))
    model.attn = nn.MultiheadAttention(8, 2)  # its out_proj is a Linear subclass the module never calls
    result = binarize_model(model)
    assert result.binarized == ["1"] and type(result.model.attn.out_proj) is not BinaryLinear
    with pytest.raises(AicomputeError, match="keep_first_last=False"):
        binarize_model(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
    with pytest.raises(AicomputeError, match="no nn.Linear or nn.Conv2d"):
        binarize_model(nn.Sequential(nn.ReLU()))


def test_clip_binary_weights():
    model = binarize_model(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, 1))).model
    with torch.no_grad():
        model[1].weight.mul_(10)
        model[0].weight.fill_(5.0)
    assert clip_binary_weights_(model) == 1
    assert model[1].weight.abs().max() <= 1.0 and model[0].weight.max() == 5.0  # float layers untouched


def test_small_bnn_learns_digits():
    from aicompute.data import get_dataset

    torch.manual_seed(0)
    data = get_dataset("digits", "train")
    x, y = data.inputs[:512].flatten(1), data.targets[:512]
    float_net = nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.Linear(128, 128), nn.BatchNorm1d(128),
                              nn.Linear(128, 10))  # fmt: skip
    net = binarize_model(float_net, binarize_input=True).model
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        clip_binary_weights_(net)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
