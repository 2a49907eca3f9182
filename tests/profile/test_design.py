"""Design comparisons against the seed's closed forms and torch's FlopCounterMode."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aicompute.errors import AicomputeError
from aicompute.profile.design import (
    chain_receptive_field,
    design_comparisons,
    factorized_conv,
    ghost_vs_conv,
    lstm_vs_gru,
    reduction_1x1,
    residual_vs_dense,
    separable_convs,
    small_kernels,
)


@pytest.fixture(scope="module")
def designs():
    return design_comparisons()


def torch_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """torch's own count (FLOPs = 2 × MACs for conv/matmul) on a meta forward."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(shape, device="meta"))
    return counter.get_total_flops() // 2


def params_macs(comparison):
    return [(r.params, r.macs) for r in comparison.rows]


# --- every comparison: measured == its own closed form, same output, ratios -------------------------


def test_every_comparison_matches_its_closed_form_and_keeps_the_output(designs):
    assert len(designs.comparisons) == 9
    for c in designs.comparisons:
        assert c.same_output, c.name
        assert c.same_receptive_field in (True, None), c.name
        for r in c.rows:
            assert (r.params, r.macs) == (r.formula_params, r.formula_macs), (c.name, r.variant)
            assert r.moved_bytes > 0 and r.intensity > 0
        base = c.rows[0]
        assert (base.params_ratio, base.macs_ratio) == (1.0, 1.0)
        assert all(r.params_ratio == r.params / base.params for r in c.rows)
    assert designs.to_dict()["comparisons"][0]["rows"][0]["params"] == designs.comparisons[0].rows[0].params


def test_seed_small_kernels_per_channel_pair():
    # seed: a 7×7 kernel has 7×7 + 1 params, three 3×3 have 3×(3×3 + 1) (one channel in, one out)
    assert params_macs(small_kernels(7, channels=1, size=8))[0][0] == 7 * 7 + 1
    assert params_macs(small_kernels(7, channels=1, size=8))[1][0] == 3 * (3 * 3 + 1)
    assert [p for p, _ in params_macs(small_kernels(5, channels=1, size=8))] == [5 * 5 + 1, 2 * (3 * 3 + 1)]


def test_seed_small_kernels_weights_m_by_m(designs):
    # seed (VGG): 7·7·M·M weights vs 3·(3·3·M·M); MACs are the weights (no bias) at every 56×56 position
    m, hw = 64, 56 * 56
    big, stacked = designs["7x7-vs-3x3"].rows
    assert (big.params, stacked.params) == (7 * 7 * m * m + m, 3 * (3 * 3 * m * m + m))
    assert (big.macs, stacked.macs) == (hw * 7 * 7 * m * m, hw * 3 * 3 * 3 * m * m)
    assert stacked.macs_ratio == pytest.approx(27 / 49)
    assert big.receptive_field == stacked.receptive_field == (7, 7)
    assert designs["5x5-vs-3x3"].rows[1].receptive_field == (5, 5)


def test_factorized_3x3(designs):
    m, hw = 64, 56 * 56
    square, factored = designs["3x3-factorized"].rows
    assert (square.params, factored.params) == (9 * m * m + m, 2 * (3 * m * m + m))
    assert factored.macs == hw * 6 * m * m and factored.receptive_field == (3, 3)


def test_seed_googlenet_reduction_example():
    # the seed: 128×5×5×256 before, 128×1×1×32 + 32×5×5×256 after (no biases), on a 28×28 map
    plain, reduced = reduction_1x1().rows
    assert plain.params == 128 * 5 * 5 * 256
    assert reduced.params == 128 * 1 * 1 * 32 + 32 * 5 * 5 * 256
    assert (plain.macs, reduced.macs) == (28 * 28 * plain.params, 28 * 28 * reduced.params)
    assert plain.output_shape == reduced.output_shape == (1, 256, 28, 28)


def test_reduction_with_biases_counts_one_per_output_channel():
    # the seed's (3×3+1)·M·N vs (1×1+1)·M·K + (3×3+1)·K·N, with nn.Conv2d's one bias per output channel
    m, n, k = 48, 40, 8
    plain, reduced = reduction_1x1(m, n, k, kernel_size=3, size=10, bias=True).rows
    assert plain.params == (3 * 3 * m + 1) * n
    assert reduced.params == (1 * 1 * m + 1) * k + (3 * 3 * k + 1) * n


def test_depthwise_separable_and_group(designs):
    c, n, k, g, hw = 64, 64, 3, 4, 56 * 56
    standard, separable, grouped = designs["separable-group"].rows
    assert standard.params == k * k * c * n
    assert separable.params == c * k * k + c * n
    assert grouped.params == k * k * c * n // g
    assert separable.macs == hw * (c * k * k + c * n) and grouped.macs == hw * k * k * c * n // g
    assert separable.params_ratio == pytest.approx(1 / n + 1 / k**2)


@settings(max_examples=8, deadline=None)
@given(
    c=st.sampled_from([2, 4, 6, 8]),
    n=st.sampled_from([4, 8, 12]),
    k=st.sampled_from([1, 3, 5]),
    size=st.integers(3, 9),
)
def test_separable_convs_any_size(c, n, k, size):
    g = 2
    standard, separable, grouped = separable_convs(c, n, k, g, size).rows
    assert (standard.params, separable.params, grouped.params) == (k * k * c * n, k * k * c + c * n, k * k * c * n // g)
    assert grouped.macs == size * size * k * k * c * n // g
    assert standard.output_shape == (1, n, size, size) and separable.receptive_field == (k, k)


@settings(max_examples=6, deadline=None)
@given(r=st.sampled_from([3, 5, 7, 9]), m=st.integers(1, 6), size=st.integers(4, 10))
def test_small_kernels_any_size(r, m, size):
    one, stacked = small_kernels(r, m, size).rows
    layers = (r - 1) // 2
    assert (one.params, stacked.params) == ((r * r * m + 1) * m, layers * (9 * m + 1) * m)
    assert (one.macs, stacked.macs) == (size * size * r * r * m * m, layers * size * size * 9 * m * m)
    assert one.receptive_field == stacked.receptive_field == (r, r)


def test_ghost_module(designs):
    m, n, s, d, hw = 64, 64, 2, 3, 56 * 56
    intrinsic = n // s
    conv, ghost = designs["ghost"].rows
    assert conv.params == m * n + 2 * n  # 1×1 conv + BN (γ, β)
    assert ghost.params == m * intrinsic + 2 * intrinsic + d * d * intrinsic + 2 * intrinsic
    assert ghost.macs == hw * (m * intrinsic + d * d * intrinsic)
    conv3, ghost3 = ghost_vs_conv(16, 16, kernel_size=3, size=8).rows
    assert ghost3.macs / conv3.macs == pytest.approx((9 * 16 * 8 + 9 * 8) / (9 * 16 * 16))  # ≈ 1/s


def test_residual_vs_dense(designs):
    hw = 56 * 56
    residual, dense = designs["residual-dense"].rows
    # BasicBlock(64→192) with a 1×1 projection, then BasicBlock(192→192); BN has γ and β
    first = 9 * 64 * 192 + 9 * 192 * 192 + 64 * 192 + 3 * 2 * 192
    second = 2 * 9 * 192 * 192 + 2 * 2 * 192
    assert residual.params == first + second
    # 4 DenseNet-B layers, growth 32: BN(c) → 1×1 c→128 → BN(128) → 3×3 128→32, c = 64, 96, 128, 160
    layers = [(2 * c + c * 128 + 2 * 128 + 9 * 128 * 32, c * 128 + 9 * 128 * 32) for c in (64, 96, 128, 160)]
    assert dense.params == sum(p for p, _ in layers)
    assert dense.macs == hw * sum(w for _, w in layers)
    assert dense.output_shape == residual.output_shape == (1, 192, 56, 56)


def test_lstm_vs_gru_against_the_seed_and_torch():
    x, h, t = 24, 16, 5
    lstm, gru = lstm_vs_gru(x, h, seq_len=t).rows
    assert lstm.params == 4 * (h * (h + x) + h)
    assert gru.params == 3 * (h * (h + x) + h)
    assert (lstm.macs, gru.macs) == (t * 4 * h * (x + h), t * 3 * h * (x + h))
    assert gru.params_ratio == pytest.approx(0.75)
    # torch's layers hold b_ih and b_hh: one extra bias vector per gate block
    torch_lstm = sum(p.numel() for p in nn.LSTM(x, h).parameters())
    torch_gru = sum(p.numel() for p in nn.GRU(x, h).parameters())
    assert (torch_lstm - 4 * h, torch_gru - 3 * h) == (lstm.params, gru.params)


def test_comparison_macs_equal_torch_flop_counter():
    # rebuild two of the designs by hand and count them with torch's own counter
    m, size = 8, 6
    stack = nn.Sequential(*[nn.Conv2d(m, m, 3, padding=1) for _ in range(3)]).to("meta")
    assert small_kernels(7, m, size).rows[1].macs == torch_macs(stack, (1, m, size, size))
    dw = nn.Sequential(nn.Conv2d(m, m, 3, padding=1, groups=m, bias=False), nn.Conv2d(m, 16, 1, bias=False))
    assert separable_convs(m, 16, 3, 2, size).rows[1].macs == torch_macs(dw.to("meta"), (1, m, size, size))


def test_chain_receptive_field_hand_case():
    # 3×3 stride 2 then 3×3: 1 + 2 + 2·2 = 7; a 1×5 then a 3×1: (3, 5)
    chain = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3))
    assert chain_receptive_field(chain) == (7, 7)
    assert chain_receptive_field(nn.Sequential(nn.Conv2d(1, 1, (1, 5)), nn.Conv2d(1, 1, (3, 1)))) == (3, 5)
    assert factorized_conv(5, 4, 8).rows[1].receptive_field == (5, 5)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: separable_convs(64, 64, 3, groups=5), r"groups \(5\) must divide"),
        (lambda: residual_vs_dense(64, 192, num_layers=3), "even num_layers"),
        (lambda: residual_vs_dense(64, 190, num_layers=4), "multiple of num_layers"),
        (lambda: small_kernels(6), "receptive_field must be an odd number"),
        (lambda: small_kernels(7, channels=0), "channels must be a positive integer"),
        (lambda: lstm_vs_gru(seq_len=0), "seq_len must be a positive integer"),
        (lambda: design_comparisons(channels=6), "channels divisible by 4"),
    ],
)
def test_bad_sizes_raise_clear_errors(call, message):
    with pytest.raises(AicomputeError, match=message):
        call()
