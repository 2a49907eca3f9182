"""Per-op formulas against hand-computed cases and torch.utils.flop_counter's own formulas."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aicompute.profile import profile
from aicompute.profile.ops import IGNORED, REGISTRY, lookup, op_name, tensor_bytes

aten = torch.ops.aten


def test_tensor_bytes_counts_broadcast_dims_once():
    assert tensor_bytes(torch.empty(3, 4)) == 48
    assert tensor_bytes(torch.empty(4).expand(3, 4)) == 16
    assert tensor_bytes(torch.empty(3, 4, dtype=torch.bfloat16)) == 24
    assert tensor_bytes(torch.empty(0, 4).expand(0, 4)) == 0
    assert tensor_bytes(torch.empty(6, 4)[::2]) == 48  # strided rows: 3 distinct rows of 4


def _only(result, op):
    (record,) = [r for r in result.records if r.op == op]
    return record


class Apply(nn.Module):
    """A module running ``fn`` on its inputs (ops without a module of their own)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def test_matrix_vector_dot_and_bilinear_closed_forms():
    mv = profile(Apply(lambda a, b: a @ b), [torch.empty(4, 5), torch.empty(5)])
    assert (_only(mv, "aten.mv").macs, mv.coverage()["uncounted"]) == (4 * 5, [])
    dot = profile(Apply(torch.dot), [torch.empty(7), torch.empty(7)])
    assert _only(dot, "aten.dot").macs == 7
    bilinear = profile(nn.Bilinear(4, 5, 6), [torch.empty(3, 4), torch.empty(3, 5)])
    assert bilinear.macs == 3 * 6 * 4 * 5  # batch × out × in1 × in2
    addbmm = REGISTRY["aten.addbmm"].cost((torch.empty(2, 5), torch.empty(4, 2, 3), torch.empty(4, 3, 5)), {}, None)
    assert addbmm == (4 * 2 * 3 * 5, 2 * 4 * 2 * 3 * 5)


def test_pooling_with_a_one_element_kernel_list_covers_every_dim():
    f = nn.functional
    pool2d = profile(Apply(lambda x: f.max_pool2d(x, [3])), input_shape=(1, 2, 9, 9))
    assert pool2d.flops == 2 * 3 * 3 * 9  # 18 outputs × a 3×3 window
    pool3d = profile(Apply(lambda x: f.avg_pool3d(x, [2])), input_shape=(1, 2, 4, 4, 4))
    assert pool3d.flops == 2 * 2 * 2 * 2 * 8  # 16 outputs × a 2×2×2 window
    assert profile(nn.MaxPool2d(3), input_shape=(1, 2, 9, 9)).flops == pool2d.flops


def test_copy_does_not_read_its_destination():
    copy = profile(Apply(lambda x, y: x.clone().copy_(y)), [torch.empty(100, 100), torch.empty(100, 100)])
    record = _only(copy, "aten.copy_")
    assert (record.act_read, record.written) == (40_000, 40_000)


def test_a_kv_cache_write_moves_only_the_new_token():
    # a static cache (1, 8 heads, 4096 slots, 64) updated at one position: 8 × 64 floats, not the buffer
    def write(buf, new):
        return buf.clone().index_copy_(2, torch.tensor([100]), new)

    result = profile(Apply(write), [torch.empty(1, 8, 4096, 64), torch.empty(1, 8, 1, 64)])
    record = _only(result, "aten.index_copy_")
    assert record.written == 8 * 64 * 4
    assert record.act_read == 8 * 64 * 4 + 8  # the token and its int64 index


def test_index_put_moves_the_indexed_elements():
    def put(x, rows, values):
        x = x.clone()
        x[rows] = values  # 3 rows of 16
        return x

    result = profile(Apply(put), [torch.empty(10, 16), torch.tensor([1, 4, 7]), torch.empty(3, 16)])
    record = next(r for r in result.records if r.op in ("aten.index_put_", "aten._index_put_impl_"))
    assert record.written == 3 * 16 * 4
    assert record.act_read == 3 * 8 + 3 * 16 * 4


def test_scatter_and_index_add_count_their_source_elements():
    index = torch.zeros(2, 3, dtype=torch.long)
    scatter = profile(Apply(lambda x, i, s: x.clone().scatter_add_(0, i, s)),
                      [torch.empty(50, 3), index, torch.empty(2, 3)])
    record = _only(scatter, "aten.scatter_add_")
    assert record.written == 6 * 4 and record.act_read == 6 * 8 + 6 * 4 + 6 * 4  # index, src, dst elements
    assert record.flops == 6
    for reduce, flops, read in ((None, 0, 6 * 8 + 6 * 4), ("multiply", 6, 6 * 8 + 6 * 4 + 6 * 4)):
        kwargs = {} if reduce is None else {"reduce": reduce}
        scatter = profile(Apply(lambda x, i, s: x.clone().scatter_(0, i, s, **kwargs)),
                          [torch.empty(50, 3), index, torch.empty(2, 3)])
        record = _only(scatter, "aten.scatter_")
        assert (record.flops, record.act_read, record.written) == (flops, read, 6 * 4)
    added = profile(Apply(lambda x, i, s: x.clone().index_add_(0, i, s)),
                    [torch.empty(50, 3), torch.tensor([0, 2]), torch.empty(2, 3)])
    record = _only(added, "aten.index_add_")
    assert record.flops == 6 and record.written == 6 * 4  # one add per source element


def test_interpolation_counts_neighbours_per_output():
    f = nn.functional
    up = profile(Apply(lambda x: f.interpolate(x, scale_factor=2, mode="bilinear")), input_shape=(1, 3, 4, 4))
    assert up.flops == 4 * 3 * 8 * 8 and up.coverage()["uncounted"] == []


def test_backend_conv_entry_points_have_no_transposed_argument():
    # cudnn_convolution(input, weight, padding, stride, dilation, groups, benchmark, deterministic, tf32):
    # args[6] is `benchmark`, which must not read as `transposed`
    x, w, out = torch.empty(2, 4, 8, 8), torch.empty(6, 4, 3, 3), torch.empty(2, 6, 6, 6)
    args = (x, w, [0, 0], [1, 1], [1, 1], 1, True, False, True)
    assert REGISTRY["aten.cudnn_convolution"].cost(args, {}, out)[0] == 2 * 6 * 6 * 6 * 4 * 3 * 3
    transposed = REGISTRY["aten.cudnn_convolution_transpose"].cost(
        (torch.empty(2, 6, 6, 6), torch.empty(6, 4, 3, 3)), {}, torch.empty(2, 4, 8, 8))
    assert transposed[0] == 2 * 6 * 6 * 6 * 4 * 3 * 3  # per input position, the same products


def test_mm_family_closed_forms():
    a, b = torch.empty(2, 3), torch.empty(3, 5)
    assert REGISTRY["aten.mm"].cost((a, b), {}, None) == (30, 60)
    assert REGISTRY["aten.addmm"].cost((torch.empty(5), a, b), {}, None) == (30, 60)
    x, y = torch.empty(4, 2, 3), torch.empty(4, 3, 5)
    assert REGISTRY["aten.bmm"].cost((x, y), {}, None) == (120, 240)
    assert REGISTRY["aten.baddbmm"].cost((torch.empty(4, 2, 5), x, y), {}, None) == (120, 240)


def _conv_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    result = profile(module, input_shape=shape)
    return sum(r.macs for r in result.records if r.category == "conv")


@settings(max_examples=15, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 4]),
    per_group_in=st.integers(1, 3),
    per_group_out=st.integers(1, 3),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    size=st.integers(5, 9),
    batch=st.integers(1, 2),
)
def test_conv_macs_grouped_and_strided(groups, per_group_in, per_group_out, k, stride, size, batch):
    c_in, c_out = groups * per_group_in, groups * per_group_out
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=1, groups=groups)
    out = (size + 2 - k) // stride + 1
    # each output element: C_in/groups * k * k products
    assert _conv_macs(conv, (batch, c_in, size, size)) == batch * c_out * out * out * per_group_in * k * k


def test_depthwise_and_transposed_conv():
    dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert _conv_macs(dw, (1, 8, 10, 10)) == 8 * 10 * 10 * 9
    up = nn.ConvTranspose2d(4, 6, 2, stride=2)
    # transposed: every input position scatters C_out * k * k products per input channel
    assert _conv_macs(up, (1, 4, 5, 5)) == 4 * 5 * 5 * 6 * 2 * 2


@settings(max_examples=10, deadline=None)
@given(c_in=st.integers(1, 4), c_out=st.integers(1, 4), k=st.integers(1, 3), transposed=st.booleans())
def test_conv_forward_and_backward_equal_flop_counter(c_in, c_out, k, transposed):
    conv = (nn.ConvTranspose2d if transposed else nn.Conv2d)(c_in, c_out, k)
    x = torch.randn(2, c_in, 6, 6, requires_grad=True)
    with FlopCounterMode(display=False) as fc:
        conv(x).sum().backward()
    ours = profile(conv, x, mode="training")  # only the shape of x is used: it does not require grad here
    conv_macs = {phase: sum(r.macs for r in ours.records if r.category == "conv" and r.phase == phase)
                 for phase in ("forward", "backward")}
    assert conv_macs["backward"] == conv_macs["forward"]  # grad_weight only: the input needs no gradient
    # FlopCounterMode's input required grad, so it also counts grad_input (one more forward's worth)
    assert 2 * (conv_macs["forward"] * 2 + conv_macs["backward"]) == fc.get_total_flops()


def test_grouped_conv_backward_closed_form():
    # grad_input and grad_weight each cost the forward's MACs: C_out * positions * C_in/g * k*k per sample.
    # (FlopCounterMode's grad_weight formula ignores groups and counts g times too much, so it is not the
    # reference here.)
    conv = nn.Conv2d(4, 6, 3, groups=2)
    ours = profile(conv, input_shape=(2, 4, 5, 5), mode="training")
    forward = 2 * 6 * 3 * 3 * (4 // 2) * 3 * 3
    conv_backward = [r for r in ours.records if r.op == "aten.convolution_backward"]
    assert [r.macs for r in conv_backward] == [forward]  # no grad_input: the input is not a leaf needing grad
    grad_out_elements = 2 * 6 * 3 * 3
    assert conv_backward[0].flops == 2 * forward + grad_out_elements  # + the bias gradient's sum


def test_attention_macs():
    q = torch.empty(2, 3, 5, 4)
    k = torch.empty(2, 3, 7, 4)
    v = torch.empty(2, 3, 7, 6)
    macs, flops = REGISTRY["aten._scaled_dot_product_flash_attention_for_cpu"].cost((q, k, v), {}, None)
    scores = 2 * 3 * 5 * 7
    assert macs == scores * (4 + 6)
    assert flops == 2 * macs + 5 * scores
    grad = torch.empty(2, 3, 5, 6)
    bmacs, _ = REGISTRY["aten._scaled_dot_product_flash_attention_for_cpu_backward"].cost((grad, q, k, v), {}, None)
    assert bmacs == scores * (3 * 4 + 2 * 6)


def test_lookup_states():
    assert lookup(aten.mm.default).category == "matmul"
    assert lookup(aten.relu.default).category == "elementwise"
    assert lookup(aten.native_layer_norm.default).category == "normalization"
    # not in the registry but tagged pointwise by PyTorch: priced as elementwise
    assert "aten.atan2" not in REGISTRY
    assert lookup(aten.atan2.default).category == "elementwise"
    # neither registered nor pointwise: uncounted (None), never a silent zero
    assert lookup(aten.linalg_cholesky_ex.default) is None
    assert op_name(aten.mm.default) == "aten.mm"
    assert "aten.view" in IGNORED and "aten.mm" not in IGNORED
    assert not (IGNORED & set(REGISTRY))


def test_batch_norm_eval_vs_train():
    x = torch.empty(2, 3, 4, 4)
    args = (x, None, None, None, None)
    assert REGISTRY["aten.native_batch_norm"].cost(args + (False, 0.1, 1e-5), {}, None) == (0, 2 * x.numel())
    assert REGISTRY["aten.native_batch_norm"].cost(args + (True, 0.1, 1e-5), {}, None) == (0, 5 * x.numel())
