"""Classic conv blocks: shapes, channel arithmetic, parameter counts against the seed text's closed
forms, and the structural property each block exists for (residual identity, concatenation, dense
reuse, receptive field, factorization, grouping)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.nn.conv_blocks import (
    BasicBlock,
    Bottleneck,
    ConvBlock,
    DenseBlock,
    DenseLayer,
    FactorizedConv,
    GroupConv,
    Inception,
    InceptionNaive,
    ReducedConv,
    StackedConv,
    Transition,
)


# --- ConvBlock / groups


def test_conv_block_parameter_count_with_and_without_batch_norm(n_params):
    # 3×3, 16 → 32: weights 9·16·32 = 4,608; bias 32 or BN (γ, β) 64
    assert n_params(ConvBlock(16, 32, 3, batch_norm=False)) == 4_608 + 32
    block = ConvBlock(16, 32, 3)
    assert n_params(block) == 4_608 + 64
    assert block.conv.bias is None
    assert [name for name, _ in block.named_children()] == ["conv", "bn", "relu"]
    assert block(torch.randn(2, 16, 9, 7)).shape == (2, 32, 9, 7)  # same padding keeps H×W
    assert ConvBlock(16, 32, 3, stride=2)(torch.randn(1, 16, 9, 7)).shape == (1, 32, 5, 4)


def test_group_conv_holds_one_gth_of_the_standard_weights(conv_weights, n_params):
    for groups in (1, 2, 4, 8):
        grouped = GroupConv(64, 128, 3, groups, batch_norm=False)
        # standard: 3·3·64·128 = 73,728 weights; grouped: 73,728 / g, plus 128 biases either way
        assert conv_weights(grouped) == 73_728 // groups
        assert n_params(grouped) == 73_728 // groups + 128


def test_group_conv_rejects_channels_not_divisible_by_groups():
    with pytest.raises(AicomputeError, match="divisible by groups"):
        GroupConv(30, 64, 3, groups=4)


@settings(max_examples=15, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 3]),
    per_in=st.integers(1, 3),
    per_out=st.integers(1, 3),
    seed=st.integers(0, 99),
)
def test_group_conv_equals_independent_convs_on_channel_slices(groups, per_in, per_out, seed):
    torch.manual_seed(seed)
    block = GroupConv(groups * per_in, groups * per_out, 3, groups, batch_norm=False, relu=False)
    x = torch.randn(2, groups * per_in, 6, 5)
    w, b = block.conv.weight, block.conv.bias
    reference = torch.cat(
        [
            F.conv2d(
                x[:, g * per_in : (g + 1) * per_in],
                w[g * per_out : (g + 1) * per_out],
                b[g * per_out : (g + 1) * per_out],
                padding=1,
            )
            for g in range(groups)
        ],
        dim=1,
    )
    torch.testing.assert_close(block(x), reference)


# --- residual


def test_basic_block_shapes_and_parameter_count(n_params):
    same = BasicBlock(64, 64)
    # two 3×3 convs 64→64 (9·64·64 = 36,864 each) + two BNs (2·64 each); identity shortcut
    assert n_params(same) == 2 * 36_864 + 2 * 128 == 73_984
    assert same.downsample is None
    down = BasicBlock(64, 128, stride=2)
    # 9·64·128 + 9·128·128 + 2 BNs (2·128 each) + projection 1×1 64→128 and its BN
    assert n_params(down) == 73_728 + 147_456 + 512 + 8_192 + 256 == 230_144
    assert down(torch.randn(2, 64, 8, 8)).shape == (2, 128, 4, 4)
    assert down.out_channels == 128


def test_bottleneck_is_v1_5_with_expansion_4(n_params):
    block = Bottleneck(256, 64)
    # 1×1 256→64 + 3×3 64→64 + 1×1 64→256 + BNs (2·64 + 2·64 + 2·256); identity shortcut
    assert n_params(block) == 16_384 + 36_864 + 16_384 + 768 == 70_400
    strided = Bottleneck(256, 128, stride=2)
    assert strided.out_channels == 512
    assert strided.conv1.stride == (1, 1) and strided.conv2.stride == (2, 2)  # stride on the 3×3
    assert strided.downsample[0].stride == (2, 2)
    assert strided(torch.randn(1, 256, 8, 8)).shape == (1, 512, 4, 4)
    wide = Bottleneck(64, 64, groups=32, base_width=4)  # ResNeXt-50 32×4d: inner width 4·32 = 128
    assert wide.conv2.in_channels == 128 and wide.conv2.groups == 32


@pytest.mark.parametrize(
    "block",
    [BasicBlock(8, 8), BasicBlock(8, 16, stride=2), Bottleneck(32, 8), Bottleneck(16, 8, stride=2)],
    ids=["basic", "basic-down", "bottleneck", "bottleneck-down"],
)
def test_residual_block_with_zeroed_last_bn_is_relu_of_its_shortcut(block):
    torch.manual_seed(0)
    nn.init.zeros_(block.last_bn().weight)  # the residual branch now outputs exactly β = 0
    x = torch.randn(2, block.in_channels, 6, 6)
    for train in (True, False):
        block.train(train)
        shortcut = x if block.downsample is None else block.downsample(x)
        torch.testing.assert_close(block(x), torch.relu(shortcut))


# --- inception


def test_naive_inception_concatenates_branches_and_passes_the_pool_through(n_params):
    torch.manual_seed(0)
    block = InceptionNaive(16, 8, 12, 4)
    assert block.out_channels == 8 + 12 + 4 + 16
    x = torch.randn(2, 16, 7, 7)
    out = block(x)
    assert out.shape == (2, 40, 7, 7)
    torch.testing.assert_close(out[:, 24:], F.max_pool2d(x, 3, 1, 1))
    torch.testing.assert_close(out[:, 8:20], block.branch2(x))
    # with bias, no BN: (1·M + 1)·c1 + (9·M + 1)·c3 + (25·M + 1)·c5 for M = 16
    assert n_params(block) == 17 * 8 + 145 * 12 + 401 * 4


def test_inception_module_channel_arithmetic_and_parameters(n_params):
    torch.manual_seed(0)
    block = Inception(192, 64, 96, 128, 16, 32, 32)  # GoogLeNet's 3a
    assert block.out_channels == 64 + 128 + 32 + 32 == 256
    x = torch.randn(1, 192, 5, 5)
    block.eval()
    out = block(x)
    assert out.shape == (1, 256, 5, 5)
    torch.testing.assert_close(out[:, 224:], block.branch4(x))  # after 64 + 128 + 32 channels
    # conv weights (no bias) + 2 BN params per output channel of every conv
    weights = 192 * 64 + (192 * 96 + 9 * 96 * 128) + (192 * 16 + 25 * 16 * 32) + 192 * 32
    bn = 2 * (64 + 96 + 128 + 16 + 32 + 32)
    assert n_params(block) == weights + bn
    torchvision_like = Inception(192, 64, 96, 128, 16, 32, 32, branch3_kernel_size=3)
    assert n_params(block) - n_params(torchvision_like) == (25 - 9) * 16 * 32


def test_one_by_one_reduction_matches_the_seed_text_example(conv_weights, n_params):
    # Seed text: 128×5×5×256 weights for a 5×5 conv 128 → 256, vs 128×1×1×32 + 32×5×5×256 with a
    # 1×1 reduction to 32 channels.
    direct = ConvBlock(128, 256, 5, batch_norm=False)
    reduced = ReducedConv(128, 256, 32, kernel_size=5)
    assert conv_weights(direct) == 128 * 5 * 5 * 256 == 819_200
    assert conv_weights(reduced) == 128 * 1 * 1 * 32 + 32 * 5 * 5 * 256 == 208_896
    # with one bias per output channel, as nn.Conv2d has
    assert n_params(reduced) == (128 + 1) * 32 + (25 * 32 + 1) * 256
    assert reduced(torch.randn(1, 128, 6, 6)).shape == (1, 256, 6, 6)


@pytest.mark.parametrize("m, k, n", [(256, 64, 256), (64, 16, 128), (32, 8, 32)])
def test_reduction_formula_for_3x3(m, k, n, conv_weights):
    # Seed text: a 3×3 conv M → N holds 3·3·M·N weights; with a 1×1 layer of K channels in between,
    # 1·1·M·K + 3·3·K·N.
    assert conv_weights(ConvBlock(m, n, 3, batch_norm=False)) == 9 * m * n
    reduced = ReducedConv(m, n, k)
    assert conv_weights(reduced) == m * k + 9 * k * n
    assert conv_weights(reduced) < 9 * m * n


# --- dense


def test_dense_layer_parameters_and_growth(n_params):
    layer = DenseLayer(64, growth_rate=32, bn_size=4)
    # BN(64) + 1×1 64→128 + BN(128) + 3×3 128→32
    assert n_params(layer) == 2 * 64 + 64 * 128 + 2 * 128 + 9 * 128 * 32
    assert layer(torch.randn(2, 64, 5, 5)).shape == (2, 32, 5, 5)


def test_dense_block_reuses_its_input_and_grows_by_k_per_layer():
    torch.manual_seed(0)
    block = DenseBlock(num_layers=4, in_channels=10, growth_rate=6, bn_size=2).eval()
    assert block.out_channels == 10 + 4 * 6
    assert [layer.in_channels for layer in block.values()] == [10, 16, 22, 28]
    assert list(block.keys()) == ["denselayer1", "denselayer2", "denselayer3", "denselayer4"]
    x = torch.randn(2, 10, 4, 4)
    out = block(x)
    assert out.shape == (2, 34, 4, 4)
    torch.testing.assert_close(out[:, :10], x)  # the block input is carried through unchanged
    first = block["denselayer1"](x)
    torch.testing.assert_close(out[:, 10:16], first)
    torch.testing.assert_close(out[:, 16:22], block["denselayer2"](torch.cat([x, first], 1)))


def test_transition_compresses_channels_and_halves_the_map(n_params):
    t = Transition(256, 128)
    assert n_params(t) == 2 * 256 + 256 * 128
    assert t(torch.randn(1, 256, 8, 6)).shape == (1, 128, 4, 3)
    assert Transition(256, 128, pool=False).eval()(torch.randn(1, 256, 1, 1)).shape == (1, 128, 1, 1)


# --- small kernels


@pytest.mark.parametrize("field, layers", [(5, 2), (7, 3)])
def test_stacked_3x3_parameters_match_the_seed_text(field, layers, conv_weights, n_params):
    # Seed text, one channel in and out: r×r + 1 parameters for the large kernel against
    # L·(3×3 + 1) for L stacked 3×3s: 26 vs 20 for 5×5, 50 vs 30 for 7×7.
    stack = StackedConv(1, 1, field)
    assert len(stack) == layers
    assert n_params(stack) == layers * (3 * 3 + 1)
    assert n_params(ConvBlock(1, 1, field, batch_norm=False)) == field * field + 1
    # and the VGG form with M channels: 7×7×M×M weights vs 3×(3×3×M×M)
    m = 64
    assert conv_weights(StackedConv(m, m, field)) == layers * 3 * 3 * m * m
    assert conv_weights(ConvBlock(m, m, field, batch_norm=False)) == field * field * m * m


@pytest.mark.parametrize("field", [3, 5, 7, 9])
def test_stacked_3x3_receptive_field_is_exactly_the_large_kernel(field):
    stack = StackedConv(1, 1, field)
    for conv in stack.modules():
        if isinstance(conv, nn.Conv2d):  # positive weights and inputs: every ReLU passes its input
            nn.init.constant_(conv.weight, 0.1)
            nn.init.zeros_(conv.bias)
    x = torch.ones(1, 1, 15, 15, requires_grad=True)
    stack(x)[0, 0, 7, 7].backward()
    support = (x.grad[0, 0] != 0).nonzero()
    half = field // 2
    assert support.min(0).values.tolist() == [7 - half, 7 - half]
    assert support.max(0).values.tolist() == [7 + half, 7 + half]
    assert len(support) == field * field


def test_stacked_conv_rejects_an_even_receptive_field():
    with pytest.raises(AicomputeError, match="odd number"):
        StackedConv(4, 4, receptive_field=6)


@pytest.mark.parametrize("n", [3, 5, 7])
def test_factorized_conv_parameters(n, conv_weights, n_params):
    # one channel: 1×n + n×1 = 2n weights (+2 biases) against n×n (+1)
    assert n_params(FactorizedConv(1, 1, n)) == 2 * n + 2
    assert n_params(ConvBlock(1, 1, n, batch_norm=False)) == n * n + 1
    # M → K → N: n·M·K + n·K·N weights against n²·M·N
    assert conv_weights(FactorizedConv(32, 64, n, mid_channels=16)) == n * 32 * 16 + n * 16 * 64
    assert conv_weights(ConvBlock(32, 64, n, batch_norm=False)) == n * n * 32 * 64


@settings(max_examples=20, deadline=None)
@given(n=st.sampled_from([3, 5, 7]), h=st.integers(3, 9), w=st.integers(3, 9), seed=st.integers(0, 999))
def test_factorized_conv_equals_the_rank_one_nxn_conv(n, h, w, seed):
    gen = torch.Generator().manual_seed(seed)
    block = FactorizedConv(1, 1, n)
    row = torch.rand(n, generator=gen)  # the 1×n kernel
    col = torch.rand(n, generator=gen)  # the n×1 kernel
    with torch.no_grad():
        block[0].conv.weight.copy_(row.view(1, 1, 1, n))
        block[1].conv.weight.copy_(col.view(1, 1, n, 1))
        block[0].conv.bias.zero_()
        block[1].conv.bias.zero_()
    x = torch.rand(2, 1, h, w, generator=gen)  # non-negative: the ReLUs are the identity
    kernel = torch.outer(col, row).view(1, 1, n, n)  # K[i, j] = col[i]·row[j]
    torch.testing.assert_close(block(x), F.conv2d(x, kernel, padding=n // 2))
