"""AdderConv2d against a naive loop, its gradients against the AdderNet paper's formulas, and a learning check."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.nn.adder import AdderConv2d, adaptive_grad_scale, adder_conv2d

FAST = settings(max_examples=20, deadline=None)


def naive_adder(x, w, stride, padding, dilation):
    """Y[n,o,i,j] = −Σ_{c,u,v} |Xpad[n, c, i·s + u·d, j·s + v·d] − W[o,c,u,v]| by explicit loops."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = F.pad(x, (pw, pw, ph, ph))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = torch.zeros(n, o, oh, ow, dtype=x.dtype)
    for b in range(n):
        for f in range(o):
            for i in range(oh):
                for j in range(ow):
                    win = xp[b, :, i * sh : i * sh + dh * (kh - 1) + 1 : dh, j * sw : j * sw + dw * (kw - 1) + 1 : dw]
                    y[b, f, i, j] = -(win - w[f]).abs().sum()
    return y


geometry = st.tuples(
    st.sampled_from([(1, 1), (2, 2), (2, 1)]),  # stride
    st.sampled_from([(0, 0), (1, 1), (2, 0)]),  # padding
    st.sampled_from([(1, 1), (2, 1)]),  # dilation
    st.sampled_from([(3, 3), (2, 3), (1, 1)]),  # kernel
)


@FAST
@given(geometry, st.integers(0, 2**31 - 1))
def test_forward_matches_naive_loop(geom, seed):
    stride, padding, dilation, kernel = geom
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 7, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 3, *kernel, generator=gen, dtype=torch.float64)
    y = adder_conv2d(x, w, stride, padding, dilation)
    assert torch.allclose(y, naive_adder(x, w, stride, padding, dilation), atol=1e-10)
    assert (y <= 0).all()


def test_hand_computed_case_and_paper_gradients():
    x = torch.tensor([[[[0.5, 2.0]]]], requires_grad=True)  # (1, 1, 1, 2)
    layer = AdderConv2d(1, 1, 1)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    y = layer(x)
    assert y.tolist() == [[[[-0.5, -1.0]]]]
    y.sum().backward()
    # ∂Y/∂W = X − W: (0.5 − 1) + (2 − 1) = 0.5 (the exact sign gradient would give 0)
    assert layer.weight.grad.item() == pytest.approx(0.5)
    # ∂Y/∂X = HardTanh(W − X): HT(0.5) = 0.5, HT(−1) = −1 (the exact gradient would be sign: 1, −1)
    assert x.grad.tolist() == [[[[0.5, -1.0]]]]


@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_gradients_equal_paper_formulas(stride, padding, dilation):
    """Reference by autograd through F.unfold: the paper's ∂Y/∂W = X − W is the gradient of −½(X − W)²,
    and its ∂Y/∂X = HardTanh(W − X) that of −huber(X − W) with δ = 1."""
    torch.manual_seed(5)
    x = (2 * torch.randn(2, 3, 6, 5, dtype=torch.float64)).requires_grad_()
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, *adder_conv2d(x, w, stride, padding, dilation).shape[2:], dtype=torch.float64)
    gx, gw = torch.autograd.grad(adder_conv2d(x, w, stride, padding, dilation), (x, w), g)

    cols = F.unfold(x, 3, dilation, padding, stride)  # (N, K, L)
    diff = cols[:, None] - w.reshape(4, -1)[None, :, :, None]  # (N, O, K, L): X − W
    weight = g.reshape(2, 4, 1, -1)
    surrogate_w = (weight * -0.5 * (cols.detach()[:, None] - w.reshape(4, -1)[None, :, :, None]) ** 2).sum()
    surrogate_x = (weight * -F.huber_loss(diff, torch.zeros_like(diff), reduction="none", delta=1.0)).sum()
    (ref_gw,) = torch.autograd.grad(surrogate_w, w)
    (ref_gx,) = torch.autograd.grad(surrogate_x, x, retain_graph=True)
    assert torch.allclose(gw, ref_gw, atol=1e-10)
    assert torch.allclose(gx, ref_gx, atol=1e-10)


def test_input_gradient_in_chunks(monkeypatch):
    import aicompute.nn.adder as adder

    torch.manual_seed(6)
    x = torch.randn(5, 2, 5, 5, requires_grad=True)
    w = torch.randn(3, 2, 3, 3)
    (full,) = torch.autograd.grad(adder_conv2d(x, w, padding=1).sum(), x)
    monkeypatch.setattr(adder, "_CHUNK_ELEMENTS", 3 * 18 * 25 * 2)  # two samples per chunk: 2 + 2 + 1
    (chunked,) = torch.autograd.grad(adder_conv2d(x, w, padding=1).sum(), x)
    assert torch.allclose(full, chunked)


def test_adaptive_learning_rate_scaling():
    torch.manual_seed(7)
    grad = torch.randn(4, 3, 3, 3)
    scaled = adaptive_grad_scale(grad, 0.2)
    assert scaled.norm().item() == pytest.approx(0.2 * math.sqrt(108), rel=1e-5)  # η·√k, k = 4·3·3·3
    assert torch.allclose(scaled / scaled.norm(), grad / grad.norm(), atol=1e-6)
    assert torch.equal(adaptive_grad_scale(torch.zeros(3), 0.2), torch.zeros(3))

    x = torch.randn(2, 3, 5, 5)
    plain, scaled_layer = AdderConv2d(3, 4, 3), AdderConv2d(3, 4, 3, eta=0.2)
    scaled_layer.load_state_dict(plain.state_dict())
    plain(x).square().mean().backward()
    scaled_layer(x).square().mean().backward()
    assert torch.allclose(scaled_layer.weight.grad, adaptive_grad_scale(plain.weight.grad, 0.2), atol=1e-6)


def test_bias_shape_and_meta_device():
    layer = AdderConv2d(2, 3, (3, 2), stride=2, padding=1, bias=True)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    x = torch.randn(1, 2, 9, 8)
    y = layer(x)
    assert y.shape == nn.Conv2d(2, 3, (3, 2), stride=2, padding=1)(x).shape
    no_bias = adder_conv2d(x, layer.weight, 2, 1)
    assert torch.allclose(y - no_bias, torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1).expand_as(y))
    meta = AdderConv2d(2, 3, 3, device="meta")
    assert meta(torch.empty(4, 2, 8, 8, device="meta")).shape == (4, 3, 6, 6)


def test_user_errors():
    layer = AdderConv2d(3, 4, 5)
    with pytest.raises(AicomputeError, match=r"\(N, 3, H, W\)"):
        layer(torch.randn(1, 2, 8, 8))
    with pytest.raises(AicomputeError, match="does not fit"):
        layer(torch.randn(1, 3, 4, 4))
    with pytest.raises(AicomputeError, match="eta must be > 0"):
        AdderConv2d(3, 4, 3, eta=0.0)
    with pytest.raises(AicomputeError, match="stride must be an int ≥ 1"):
        AdderConv2d(3, 4, 3, stride=0)


def _train_addernet(x, y, eta):
    torch.manual_seed(0)
    net = nn.Sequential(
        AdderConv2d(1, 8, 3, padding=1, eta=eta), nn.BatchNorm2d(8), nn.ReLU(),
        AdderConv2d(8, 16, 3, stride=2, padding=1, eta=eta), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_small_addernet_learns_digits_and_adaptive_lr_helps():
    from aicompute.data import get_dataset

    data = get_dataset("digits", "train")
    x, y = data.inputs[:256], data.targets[:256]
    adaptive = _train_addernet(x, y, eta=0.2)
    plain = _train_addernet(x, y, eta=None)
    assert adaptive[-1] < 0.5 * adaptive[0]
    assert adaptive[-1] < plain[-1]  # the paper's point: raw adder gradients are too small in the first layers
