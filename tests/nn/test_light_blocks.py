"""Lightweight blocks against closed forms, torch's own ops and hand-built references."""

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aicompute.errors import AicomputeError
from aicompute.nn.light_blocks import (
    ConvNormAct,
    DepthwiseSeparableConv,
    GhostBottleneck,
    GhostModule,
    InvertedResidual,
    MBConv,
    SqueezeExcitation,
    StochasticDepth,
    init_conv_norm_,
    make_divisible,
    stochastic_depth,
)


FAST = settings(max_examples=25, deadline=None)


def macs(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward, from torch's own FLOP counter (FLOPs = 2 × MACs)."""
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


def randomize_norms_(module: nn.Module) -> None:
    """Give BatchNorm layers non-trivial affine parameters and running statistics."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)


# --- make_divisible -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "divisor", "expected"),
    [
        (32 * 1.4, 8, 48),  # 44.8 → round half up to 48 (EfficientNet-B4 stem)
        (16 * 1.4, 8, 24),  # 22.4 → 24
        (112 * 1.4, 8, 160),  # 156.8 → 160
        (192 * 1.4, 8, 272),  # 268.8 → 272
        (72 * 0.25, 4, 20),  # GhostNet SE squeeze: 18 → 20
        (120 * 0.25, 4, 32),  # 30 → 32
        (72 * 0.25, 8, 24),  # 18 → 16 would lose > 10 %, so one more step: 24
        (3, 8, 8),  # never below the divisor
    ],
)
def test_make_divisible_hand_cases(value, divisor, expected):
    assert make_divisible(value, divisor) == expected


@FAST
@given(st.floats(1.0, 5000.0), st.sampled_from([1, 2, 4, 8, 16]))
def test_make_divisible_is_a_near_multiple_never_10_percent_short(value, divisor):
    r = make_divisible(value, divisor)
    assert r % divisor == 0
    assert r >= 0.9 * value and r >= divisor
    assert r < value + divisor


# --- depthwise-separable convolution --------------------------------------------------------------


@FAST
@given(
    c_in=st.integers(1, 12),
    c_out=st.integers(1, 12),
    k=st.sampled_from([1, 3, 5, 7]),
)
def test_depthwise_separable_params_match_closed_form(c_in, c_out, k, n_params):
    dsc = DepthwiseSeparableConv(c_in, c_out, k, norm_act=False)
    standard = nn.Conv2d(c_in, c_out, k, bias=False)
    assert n_params(dsc) == k * k * c_in + c_in * c_out
    assert n_params(standard) == k * k * c_in * c_out
    ratio = Fraction(n_params(dsc), n_params(standard))
    assert ratio == Fraction(1, c_out) + Fraction(1, k * k)


@pytest.mark.parametrize(("c_in", "c_out", "k", "stride", "hw"), [(8, 16, 3, 1, 10), (6, 5, 5, 2, 9), (4, 32, 7, 1, 8)])
def test_depthwise_separable_macs_match_closed_form_and_cost_ratio(c_in, c_out, k, stride, hw):
    x = torch.randn(2, c_in, hw, hw)
    dsc = DepthwiseSeparableConv(c_in, c_out, k, stride, norm_act=False)
    standard = nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, bias=False)
    out_hw = (hw - 1) // stride + 1  # "same" padding: ceil(hw / stride)
    pixels = 2 * out_hw * out_hw  # batch × H' × W'
    assert macs(dsc, x) == pixels * (k * k * c_in + c_in * c_out)
    assert macs(standard, x) == pixels * k * k * c_in * c_out
    assert Fraction(macs(dsc, x), macs(standard, x)) == Fraction(1, c_out) + Fraction(1, k * k)


@FAST
@given(
    c_in=st.integers(1, 6),
    c_out=st.integers(1, 6),
    k=st.sampled_from([1, 3, 5]),
    stride=st.sampled_from([1, 2]),
    hw=st.integers(3, 9),
    seed=st.integers(0, 2**16),
)
def test_depthwise_separable_equals_per_channel_conv_then_pointwise(c_in, c_out, k, stride, hw, seed):
    torch.manual_seed(seed)
    dsc = DepthwiseSeparableConv(c_in, c_out, k, stride, norm_act=False)
    x = torch.randn(2, c_in, hw, hw)
    w_dw = dsc.depthwise.weight  # (C_in, 1, k, k)
    w_pw = dsc.pointwise.weight[:, :, 0, 0]  # (C_out, C_in)
    # Each channel filtered on its own by its own k×k kernel...
    per_channel = torch.cat(
        [F.conv2d(x[:, c : c + 1], w_dw[c : c + 1], stride=stride, padding=(k - 1) // 2) for c in range(c_in)],
        dim=1,
    )  # (N, C_in, H', W')
    # ...then every output channel is a weighted sum over channels at each pixel.
    expected = torch.einsum("nchw,oc->nohw", per_channel, w_pw)
    torch.testing.assert_close(dsc(x), expected, rtol=1e-5, atol=1e-5)


def test_depthwise_separable_with_norm_act_is_the_mobilenet_v1_block():
    dsc = DepthwiseSeparableConv(4, 8, 3, 2)
    types = [type(m) for m in (*dsc.depthwise, *dsc.pointwise)]
    assert types == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
    assert dsc.depthwise[0].groups == 4
    y = dsc(torch.randn(2, 4, 9, 9))
    assert y.shape == (2, 8, 5, 5) and (y >= 0).all()


def test_conv_norm_act_same_padding_and_stride():
    block = ConvNormAct(3, 5, 3, 2, activation=None)
    assert len(block) == 2 and block[0].bias is None
    assert block(torch.randn(1, 3, 7, 8)).shape == (1, 5, 4, 4)


# --- inverted residual ----------------------------------------------------------------------------


@pytest.mark.parametrize(("c_in", "c_out", "stride", "t"), [(8, 8, 1, 6), (8, 16, 1, 6), (8, 8, 2, 6), (16, 8, 1, 1)])
def test_inverted_residual_params_and_shortcut(c_in, c_out, stride, t, n_params):
    block = InvertedResidual(c_in, c_out, stride, t)
    h = round(c_in * t)
    expand = (c_in * h + 2 * h) if t != 1 else 0  # 1×1 conv + BN
    expected = expand + (9 * h + 2 * h) + (h * c_out + 2 * c_out)  # depthwise 3×3 + BN, linear 1×1 + BN
    assert n_params(block) == expected
    assert block.use_res_connect == (stride == 1 and c_in == c_out)
    assert isinstance(block.conv[-1], nn.BatchNorm2d)  # linear bottleneck: no activation after projection

    x = torch.randn(2, c_in, 8, 8)
    branch = block.conv(x)
    y = block(x)
    assert y.shape == (2, c_out, 8 // stride, 8 // stride)
    torch.testing.assert_close(y, x + branch if block.use_res_connect else branch)


def test_inverted_residual_projection_is_linear():
    torch.manual_seed(0)
    block = InvertedResidual(4, 6, 2, 6)
    randomize_norms_(block)
    block.eval()
    assert (block(torch.randn(4, 4, 8, 8)) < 0).any()  # a ReLU6 at the end could not give negatives


# --- squeeze-and-excitation -----------------------------------------------------------------------


@FAST
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 12),
    r=st.integers(1, 6),
    hw=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_se_output_is_input_times_sigmoid_gate(n, c, r, hw, seed, n_params):
    torch.manual_seed(seed)
    se = SqueezeExcitation(c, r)
    x = torch.randn(n, c, hw, hw)
    w1, b1 = se.fc1.weight[:, :, 0, 0], se.fc1.bias  # (r, C), (r,)
    w2, b2 = se.fc2.weight[:, :, 0, 0], se.fc2.bias  # (C, r), (C,)
    squeezed = x.mean(dim=(2, 3))  # (N, C)
    gate = torch.sigmoid(torch.relu(squeezed @ w1.T + b1) @ w2.T + b2)  # (N, C)
    torch.testing.assert_close(se.gate(x)[:, :, 0, 0], gate)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])
    assert ((gate > 0) & (gate < 1)).all()
    assert n_params(se) == c * r + r + r * c + c


def test_se_hard_sigmoid_gate_stays_in_unit_interval():
    torch.manual_seed(0)
    se = SqueezeExcitation(8, 2, gate=nn.Hardsigmoid)
    with torch.no_grad():
        se.fc2.weight.mul_(50)  # push the pre-activation past ±3 so the clamp is exercised
    g = se.gate(torch.randn(16, 8, 4, 4))
    assert g.min() >= 0 and g.max() <= 1
    assert ((g == 0) | (g == 1)).any()


def test_se_rejects_zero_squeeze_channels():
    with pytest.raises(AicomputeError, match="squeeze_channels must be a positive integer, got 0"):
        SqueezeExcitation(8, 0)


# --- stochastic depth -----------------------------------------------------------------------------


def test_stochastic_depth_identity_in_eval_and_at_p_zero():
    x = torch.randn(5, 3, 2, 2)
    sd = StochasticDepth(0.7).eval()
    assert torch.equal(sd(x), x)
    assert torch.equal(stochastic_depth(x, 0.0, training=True), x)
    assert torch.equal(stochastic_depth(x, 1.0, training=True), torch.zeros_like(x))


def test_stochastic_depth_drops_whole_rows_and_keeps_the_mean():
    torch.manual_seed(0)
    p, n = 0.3, 4000
    x = torch.ones(n, 2, 3, 3)
    y = stochastic_depth(x, p, training=True)
    per_row = y.flatten(1)
    kept = per_row[:, 0] != 0
    # every row is either all zero or all 1 / (1 - p)
    torch.testing.assert_close(per_row[kept], torch.full_like(per_row[kept], 1 / (1 - p)))
    assert torch.all(per_row[~kept] == 0)
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 4 * sigma
    assert abs(y.mean().item() - 1.0) < 4 * sigma / (1 - p)


def test_stochastic_depth_rejects_bad_probability():
    with pytest.raises(AicomputeError, match=r"stochastic depth p must be a probability in \[0, 1\], got 1.5"):
        StochasticDepth(1.5)
    assert StochasticDepth(1.0).p == 1.0  # dropping every branch is allowed


# --- MBConv ---------------------------------------------------------------------------------------


def test_mbconv_params_of_an_efficientnet_b0_block(n_params):
    # B0 stage 2, first block: 16 → 24, 3×3, stride 2, expansion 6 (96 channels), SE squeeze 16 // 4 = 4
    block = MBConv(16, 24, 3, 2, 6)
    expand = 16 * 96 + 2 * 96
    depthwise = 9 * 96 + 2 * 96
    se = (96 * 4 + 4) + (4 * 96 + 96)
    project = 96 * 24 + 2 * 24
    assert n_params(block) == expand + depthwise + se + project
    assert not block.use_res_connect
    assert block(torch.randn(2, 16, 8, 8)).shape == (2, 24, 4, 4)


def test_mbconv_without_expansion_or_se():
    block = MBConv(32, 16, 3, 1, 1, se_ratio=0)
    assert [type(m) for m in block.block] == [ConvNormAct, ConvNormAct]  # depthwise, project
    assert block.block[0][0].groups == 32
    assert isinstance(block.block[0][2], nn.SiLU) and len(block.block[1]) == 2


def test_mbconv_stochastic_depth_drops_the_branch_not_the_shortcut():
    torch.manual_seed(0)
    block = MBConv(8, 8, 3, 1, 4, stochastic_depth_prob=1.0)
    x = torch.randn(3, 8, 5, 5)
    block.train()
    torch.testing.assert_close(block(x), x)  # every row's branch dropped
    block.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block.block(x))


# --- ghost module and bottleneck ------------------------------------------------------------------


@pytest.mark.parametrize(("c_in", "c_out", "ratio", "k", "d"), [(4, 8, 2, 1, 3), (5, 7, 2, 3, 3), (6, 10, 3, 1, 5)])
def test_ghost_module_output_is_intrinsic_then_cheap_depthwise_ghosts(c_in, c_out, ratio, k, d):
    torch.manual_seed(0)
    gm = GhostModule(c_in, c_out, k, ratio, d, relu=False)
    randomize_norms_(gm)
    gm.eval()
    x = torch.randn(2, c_in, 6, 6)
    m = -(-c_out // ratio)  # ceil
    with torch.no_grad():
        y = gm(x)
        intrinsic = gm.primary_conv(x)
        # Independent reference for the cheap op: intrinsic map i feeds ghost maps i·(s−1) … i·(s−1)+s−2.
        conv, bn = gm.cheap_operation[0], gm.cheap_operation[1]
        ghosts = torch.cat(
            [
                F.conv2d(intrinsic[:, i : i + 1], conv.weight[i * (ratio - 1) : (i + 1) * (ratio - 1)], padding=d // 2)
                for i in range(m)
            ],
            dim=1,
        )  # (N, m·(s−1), H, W)
        ghosts = bn(ghosts)
    assert intrinsic.shape[1] == m and y.shape == (2, c_out, 6, 6)
    torch.testing.assert_close(y, torch.cat([intrinsic, ghosts], dim=1)[:, :c_out])


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_ghost_module_holds_about_one_over_ratio_of_a_conv(ratio, conv_weights):
    c_in, c_out, k = 96, 96, 3  # c_out divisible by 2, 3 and 4
    gm = GhostModule(c_in, c_out, kernel_size=k, ratio=ratio, dw_size=k)
    m = c_out // ratio
    assert conv_weights(gm) == k * k * c_in * m + k * k * (ratio - 1) * m
    standard = k * k * c_in * c_out
    # paper, eq. 4 with d = k: compression r = s·c / (s + c − 1) ≈ s
    assert Fraction(standard, conv_weights(gm)) == Fraction(ratio * c_in, c_in + ratio - 1)
    assert standard / conv_weights(gm) == pytest.approx(ratio, rel=0.04)
    x = torch.randn(1, c_in, 8, 8)
    assert macs(nn.Conv2d(c_in, c_out, k, padding=1, bias=False), x) / macs(gm, x) == pytest.approx(ratio, rel=0.04)


def test_ghost_module_rejects_ratio_one():
    with pytest.raises(AicomputeError, match="ratio >= 2"):
        GhostModule(4, 4, ratio=1)


def test_ghost_bottleneck_identity_shortcut():
    torch.manual_seed(0)
    block = GhostBottleneck(16, 48, 16).eval()
    assert isinstance(block.shortcut, nn.Identity) and block.conv_dw is None and block.se is None
    for bn in (block.ghost2.primary_conv[1], block.ghost2.cheap_operation[1]):
        nn.init.zeros_(bn.weight)
        nn.init.zeros_(bn.bias)
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)  # silenced branch leaves the identity


def test_ghost_bottleneck_stride_two_with_se():
    block = GhostBottleneck(24, 72, 40, 5, 2, se_ratio=0.25)
    assert block.conv_dw is not None and block.conv_dw.stride == (2, 2) and block.conv_dw.groups == 72
    assert block.se is not None and block.se.fc1.out_channels == 20  # make_divisible(72 / 4, 4)
    assert isinstance(block.se.scale_activation, nn.Hardsigmoid)
    assert [type(m) for m in block.shortcut] == [nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d]
    assert block(torch.randn(2, 24, 9, 9)).shape == (2, 40, 5, 5)


@pytest.mark.parametrize("make", [lambda: InvertedResidual(4, 4, 3, 6), lambda: MBConv(4, 4, 3, 3, 6)])
def test_blocks_reject_stride_three(make):
    with pytest.raises(AicomputeError, match="stride 1 or 2"):
        make()


# --- init -----------------------------------------------------------------------------------------


def test_init_conv_norm_follows_torchvision_and_runs_on_meta():
    torch.manual_seed(0)
    block = init_conv_norm_(InvertedResidual(64, 64, 1, 6))
    pw = block.conv[2]  # 1×1 projection 384 → 64: fan_out = 64
    assert pw.weight.std().item() == pytest.approx((2 / 64) ** 0.5, rel=0.05)
    bn = block.conv[3]
    assert torch.equal(bn.weight, torch.ones(64)) and torch.equal(bn.bias, torch.zeros(64))
    with torch.device("meta"):
        meta_block = init_conv_norm_(MBConv(16, 24, 3, 2, 6))
    assert all(p.is_meta for p in meta_block.parameters())


@pytest.mark.parametrize(
    "block",
    [
        ConvNormAct(3, 5, 3, 2),
        DepthwiseSeparableConv(3, 5, 3, 2),
        InvertedResidual(3, 5, 2, 6),
        MBConv(3, 5, 5, 2, 6),
        GhostModule(3, 5),
        GhostBottleneck(3, 12, 5, 3, 2, se_ratio=0.25),
    ],
    ids=lambda b: type(b).__name__,
)
def test_every_block_exposes_its_channel_counts(block):
    assert (block.in_channels, block.out_channels) == (3, 5)
    assert block(torch.randn(2, 3, 7, 7)).shape[1] == 5
