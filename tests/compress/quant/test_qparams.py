"""qparams against the seed's MinMax formulas on a hand-computed case and against torch's own quantization:
``torch.ao.quantization`` observers' ``calculate_qparams()``, ``torch.quantize_per_tensor`` /
``quantize_per_channel`` and ``torch.fake_quantize_per_*_affine``."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.ao.quantization import MinMaxObserver as TorchMinMax
from torch.ao.quantization import PerChannelMinMaxObserver as TorchPerChannel

from aicompute.compress.quant.qparams import (
    QParams,
    QScheme,
    binary_qparams,
    channel_rows,
    check_data,
    compute_qparams,
    qrange,
)
from aicompute.errors import AicomputeError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's quantized-dtype deprecation notice

FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
vectors = hnp.arrays(np.float32, st.integers(1, 60), elements=FLOATS)
matrices = hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 20)), elements=FLOATS)

TORCH_DTYPE = {True: torch.qint8, False: torch.quint8}  # signed → qint8


def _torch_qparams(x: torch.Tensor, signed: bool, symmetric: bool, axis=None, quant_range=None):
    kw = {"dtype": TORCH_DTYPE[signed]}
    if quant_range is not None:
        kw["quant_min"], kw["quant_max"] = quant_range
    if axis is None:
        kw["qscheme"] = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        obs = TorchMinMax(**kw)
    else:
        kw["qscheme"] = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        obs = TorchPerChannel(ch_axis=axis, **kw)
    obs(x)
    return obs.calculate_qparams()


def _minmax(x: torch.Tensor, axis=None):
    rows = channel_rows(x, axis)
    lo, hi = rows.amin(dim=1), rows.amax(dim=1)
    return (lo, hi) if axis is not None else (lo[0], hi[0])


# -- grids and schemes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "grid"),
    [
        ((8, True), (-128, 127)),
        ((8, False), (0, 255)),
        ((8, True, True), (-127, 127)),
        ((8, False, True), (1, 255)),
        ((4, True), (-8, 7)),
        ((2, True, True), (-1, 1)),  # ternary
        ((16, True), (-32768, 32767)),
        ((16, False), (0, 65535)),
        ((1, True), (-1, 1)),  # binary
    ],
)
def test_qrange_table(args, grid):
    assert qrange(*args) == grid


@pytest.mark.parametrize("bits", [0, 17, -3, 2.5, True, "8"])
def test_bits_out_of_range_are_rejected(bits):
    with pytest.raises(AicomputeError, match="bits must be an integer from 1"):
        qrange(bits, True)
    with pytest.raises(AicomputeError, match="bits must be an integer from 1"):
        QScheme(bits=bits)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"bits": 1, "signed": False}, "binary"),
        ({"bits": 1, "narrow_range": True}, "binary"),
        ({"bits": 1, "symmetric": False}, "symmetric=True"),
        ({"symmetric": 1}, "symmetric must be True or False"),
        ({"axis": 0.5}, "axis must be an integer"),
    ],
)
def test_qscheme_rejects_impossible_settings(kw, message):
    with pytest.raises(AicomputeError, match=message):
        QScheme(**kw)


def test_qscheme_round_trips_through_json():
    scheme = QScheme(bits=4, symmetric=False, signed=False, axis=1, narrow_range=True)
    assert QScheme.from_dict(json.loads(json.dumps(scheme.to_dict()))) == scheme
    assert scheme.qrange == (1, 15)
    with pytest.raises(AicomputeError, match="unknown QScheme field"):
        QScheme.from_dict({"bits": 8, "per_channel": True})


# -- the seed's formulas --------------------------------------------------------------------------------


def test_seed_minmax_formulas_on_a_hand_computed_case():
    # R in [-1, 3], 8-bit unsigned: S = (3 − (−1)) / (255 − 0) = 4/255;
    # Z = Qmax − Rmax/S = 255 − 191.25 = 63.75 → 64.
    qp = compute_qparams(-1.0, 3.0, QScheme(bits=8, symmetric=False, signed=False))
    s = 4.0 / 255.0
    assert float(qp.scale) == pytest.approx(s, rel=1e-7)
    assert int(qp.zero_point) == round(255 - 3.0 / s) == 64
    # Q = R/S + Z: −1 → 0.25 → 0; 0 → 64; 1 → 127.75 → 128; 3 → 255.25 → 255 (clamped).
    r = torch.tensor([-1.0, 0.0, 1.0, 3.0])
    assert qp.quantize(r).tolist() == [0, 64, 128, 255]
    assert qp.quantize(r).dtype == torch.uint8
    # dequantize: (Q − Z)·S; 0 is exact, the ends are off by the rounding of Z: −64/63.75 and 191/191.25.
    back = qp.dequantize(qp.quantize(r))
    torch.testing.assert_close(back, torch.tensor([-64 * s, 0.0, 64 * s, 191 * s]))
    assert back[1].item() == 0.0


def test_symmetric_int8_hand_case():
    # amax = 2: S = 2 / ((127 − (−128)) / 2) = 2/127.5, Z = 0; narrow range: S = 2/127.
    qp = compute_qparams(-2.0, 0.5, QScheme(bits=8))
    assert float(qp.scale) == pytest.approx(2 / 127.5) and int(qp.zero_point) == 0
    # x/S = 63.75·x: −1 → −63.75 → −64; 1 → 64; 1.99 → 126.86 → 127; ±5 → ±318.75 → clamped.
    assert qp.quantize(torch.tensor([-1.0, 1.0, 1.99, 0.0, -5.0, 5.0])).tolist() == [-64, 64, 127, 0, -128, 127]
    narrow = compute_qparams(-2.0, 0.5, QScheme(bits=8, narrow_range=True))
    assert float(narrow.scale) == pytest.approx(2 / 127)
    assert narrow.quantize(torch.tensor([-5.0, 1.0, 5.0])).tolist() == [-127, 64, 127]  # 63.5 → 64 (even)


def test_range_always_includes_zero():
    # all-positive data: the range is [0, 5], not [2, 5], so 0.0 is a code (Z = 0).
    qp = compute_qparams(2.0, 5.0, QScheme(symmetric=False, signed=False))
    assert int(qp.zero_point) == 0 and float(qp.scale) == pytest.approx(5 / 255)
    assert qp.fake_quantize(torch.zeros(3)).eq(0).all()


def test_constant_zero_tensor_gets_torch_eps_scale():
    qp = compute_qparams(0.0, 0.0, QScheme(symmetric=False))
    assert float(qp.scale) == torch.finfo(torch.float32).eps
    assert qp.fake_quantize(torch.zeros(4)).eq(0).all()


# -- against torch.ao.quantization -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(x=vectors, signed=st.booleans(), symmetric=st.booleans())
def test_per_tensor_qparams_equal_torch(x, signed, symmetric):
    x = torch.from_numpy(x)
    scale, zp = _torch_qparams(x, signed, symmetric)
    qp = compute_qparams(*_minmax(x), QScheme(bits=8, symmetric=symmetric, signed=signed))
    assert qp.scale.item() == scale.item()
    assert qp.zero_point.item() == zp.item()


@settings(max_examples=40, deadline=None)
@given(x=matrices, signed=st.booleans(), symmetric=st.booleans(), axis=st.sampled_from([0, 1, -1]))
def test_per_channel_qparams_equal_torch(x, signed, symmetric, axis):
    x = torch.from_numpy(x)
    scale, zp = _torch_qparams(x, signed, symmetric, axis=axis)
    qp = compute_qparams(*_minmax(x, axis), QScheme(bits=8, symmetric=symmetric, signed=signed, axis=axis))
    assert torch.equal(qp.scale, scale)
    assert torch.equal(qp.zero_point, zp.long())


@settings(max_examples=40, deadline=None)
@given(x=vectors, bits=st.integers(2, 8), signed=st.booleans(), symmetric=st.booleans(), narrow=st.booleans())
def test_narrower_grids_equal_torch_custom_ranges(x, bits, signed, symmetric, narrow):
    x = torch.from_numpy(x)
    scheme = QScheme(bits=bits, symmetric=symmetric, signed=signed, narrow_range=narrow)
    qmin, qmax = scheme.qrange
    # torch wants 0 among the codes; an unsigned narrow grid [1, 2^b − 1] is torch's [0, 2^b − 2] shifted by one.
    shift = max(qmin, 0)
    scale, zp = _torch_qparams(x, signed, symmetric, quant_range=(qmin - shift, qmax - shift))
    qp = compute_qparams(*_minmax(x), scheme)
    assert qp.scale.item() == scale.item()
    if symmetric and not signed:
        # torch's customized-range path rounds the midpoint down ((qmin + qmax) // 2); we round it up,
        # which is torch's own default for quint8 (128).
        assert qp.zero_point.item() == (qmin + qmax + 1) // 2
    else:
        assert qp.zero_point.item() == zp.item() + shift


def test_16_bit_signed_equals_torch_qint32_observer():
    x = torch.randn(500, generator=torch.Generator().manual_seed(0)) * 3 + 1
    obs = TorchMinMax(dtype=torch.qint32, quant_min=-32768, quant_max=32767)
    obs(x)
    scale, zp = obs.calculate_qparams()
    qp = compute_qparams(*_minmax(x), QScheme(bits=16, symmetric=False))
    assert qp.scale.item() == scale.item() and qp.zero_point.item() == zp.item()
    assert qp.quantize(x).dtype == torch.int16
    assert compute_qparams(*_minmax(x), QScheme(bits=16, signed=False)).quantize(x).dtype == torch.int32


# -- quantize / dequantize / fake_quantize against torch ---------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(x=vectors, signed=st.booleans(), symmetric=st.booleans(), shrink=st.floats(0.1, 1.0))
def test_quantize_per_tensor_matches_torch(x, signed, symmetric, shrink):
    x = torch.from_numpy(x)
    lo, hi = _minmax(x)
    qp = compute_qparams(lo * shrink, hi * shrink, QScheme(symmetric=symmetric, signed=signed))  # some clipping
    s, z = qp.scale.item(), qp.zero_point.item()
    ref = torch.quantize_per_tensor(x, s, z, TORCH_DTYPE[signed])
    codes = qp.quantize(x)
    # FBGEMM rounds x·(1/S) + Z; torch's fake-quant and we round x·(1/S), then add Z: they differ only on
    # exact .5 ties with an odd Z.
    scaled = x * (1.0 / qp.scale)
    differ = codes.long() != ref.int_repr().long()
    assert (scaled[differ] - scaled[differ].floor() == 0.5).all()
    assert (codes.long() - ref.int_repr().long()).abs().max() <= 1
    torch.testing.assert_close(qp.dequantize(codes)[~differ], ref.dequantize()[~differ], rtol=0, atol=0)
    fake = torch.fake_quantize_per_tensor_affine(x, s, z, qp.qmin, qp.qmax)
    assert torch.equal(qp.fake_quantize(x), fake)
    assert torch.equal(qp.dequantize(codes), qp.fake_quantize(x))


@settings(max_examples=40, deadline=None)
@given(x=matrices, signed=st.booleans(), symmetric=st.booleans(), axis=st.sampled_from([0, 1]))
def test_quantize_per_channel_matches_torch(x, signed, symmetric, axis):
    x = torch.from_numpy(x)
    qp = compute_qparams(*_minmax(x, axis), QScheme(symmetric=symmetric, signed=signed, axis=axis))
    ref = torch.quantize_per_channel(x, qp.scale.double(), qp.zero_point, axis, TORCH_DTYPE[signed])
    codes = qp.quantize(x)
    assert torch.equal(codes.long(), ref.int_repr().long())
    assert torch.equal(qp.dequantize(codes), ref.dequantize())
    fake = torch.fake_quantize_per_channel_affine(x, qp.scale, qp.zero_point.int(), axis, qp.qmin, qp.qmax)
    assert torch.equal(qp.fake_quantize(x), fake)


@settings(max_examples=40, deadline=None)
@given(x=vectors, bits=st.integers(2, 16), signed=st.booleans(), symmetric=st.booleans())
def test_rounding_error_is_at_most_half_a_step_inside_the_range(x, bits, signed, symmetric):
    x = torch.from_numpy(x)
    scheme = QScheme(bits=bits, symmetric=symmetric, signed=signed)
    qp = compute_qparams(*_minmax(x), scheme)
    codes = qp.quantize(x)
    assert qp.qmin <= int(codes.min()) and int(codes.max()) <= qp.qmax
    lo = (qp.qmin - qp.zero_point) * qp.scale  # representable range
    hi = (qp.qmax - qp.zero_point) * qp.scale
    inside = (x >= lo) & (x <= hi)
    err = (qp.fake_quantize(x) - x).abs()
    slack = 4 * torch.finfo(torch.float32).eps * x.abs()  # float32 rounding of (q − Z)·S and of x·(1/S)
    assert (err <= qp.scale / 2 + slack)[inside].all()


def test_fake_quantize_keeps_dtype_and_nan():
    qp = compute_qparams(-1.0, 1.0, QScheme())
    x = torch.tensor([0.3, float("nan"), -0.7], dtype=torch.float16)
    y = qp.fake_quantize(x)
    assert y.dtype == torch.float16 and torch.isnan(y[1]) and not torch.isnan(y[[0, 2]]).any()
    binary = binary_qparams(torch.tensor([1.0, -1.0]), QScheme(bits=1)).fake_quantize(x)
    assert torch.isnan(binary[1]) and binary[[0, 2]].tolist() == [1.0, -1.0]


# -- binary ---------------------------------------------------------------------------------------------------


def test_binary_hand_case():
    # α = mean |x| = (2 + 1 + 3 + 1 + 0) / 5 = 1.4; sign with 0 → +1.
    x = torch.tensor([-2.0, 1.0, 3.0, -1.0, 0.0])
    qp = binary_qparams(x, QScheme(bits=1))
    assert qp.binary and float(qp.scale) == pytest.approx(1.4)
    assert qp.quantize(x).tolist() == [-1, 1, 1, -1, 1] and qp.quantize(x).dtype == torch.int8
    torch.testing.assert_close(qp.fake_quantize(x), torch.tensor([-1.4, 1.4, 1.4, -1.4, 1.4]))
    torch.testing.assert_close(qp.dequantize(qp.quantize(x)), qp.fake_quantize(x))


def test_binary_alpha_is_per_channel_and_least_squares():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3, 4, 5, generator=g) * torch.tensor([0.1, 1.0, 5.0])[:, None, None]
    qp = binary_qparams(w, QScheme(bits=1, axis=0))
    torch.testing.assert_close(qp.scale, w.abs().mean(dim=(1, 2)))
    # α = mean|x| minimises ‖x − α·sign(x)‖² per channel: nudging it either way costs more.
    signs = torch.where(w >= 0, 1.0, -1.0)
    for c in range(3):
        a = qp.scale[c]
        sse = lambda alpha: ((w[c] - alpha * signs[c]) ** 2).sum()  # noqa: E731
        assert sse(a) < sse(a * 1.01) and sse(a) < sse(a * 0.99)


def test_binary_needs_data_not_a_range():
    with pytest.raises(AicomputeError, match="binary_qparams"):
        compute_qparams(-1.0, 1.0, QScheme(bits=1))
    with pytest.raises(AicomputeError, match="1-bit scheme"):
        binary_qparams(torch.ones(3), QScheme(bits=2))


# -- records and bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "qp",
    [
        compute_qparams(-1.0, 3.0, QScheme(symmetric=False, signed=False)),
        compute_qparams(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 0.5]), QScheme(symmetric=False, axis=0)),
        binary_qparams(torch.tensor([[1.0, -3.0], [0.5, 0.5]]), QScheme(bits=1, axis=1)),
    ],
)
def test_qparams_round_trip_through_json(qp):
    back = QParams.from_dict(json.loads(json.dumps(qp.to_dict())))
    assert torch.equal(back.scale, qp.scale) and torch.equal(back.zero_point, qp.zero_point)
    assert (back.qmin, back.qmax, back.axis, back.binary) == (qp.qmin, qp.qmax, qp.axis, qp.binary)


@pytest.mark.parametrize(
    ("lo", "hi", "scheme", "message"),
    [
        (float("nan"), 1.0, QScheme(), "min_val must be finite"),
        (-1.0, math.inf, QScheme(), "max_val must be finite"),
        (2.0, 1.0, QScheme(), "must not exceed"),
        (torch.zeros(2), torch.ones(2), QScheme(), "one number"),
        (0.0, 1.0, QScheme(axis=0), "1-D tensor"),
        (torch.zeros(2), torch.ones(3), QScheme(axis=0), "differ in shape"),
    ],
)
def test_compute_qparams_rejects_bad_ranges(lo, hi, scheme, message):
    with pytest.raises(AicomputeError, match=message):
        compute_qparams(lo, hi, scheme)


def test_qparams_reject_bad_parameters_and_inputs():
    with pytest.raises(AicomputeError, match="scale must be finite and > 0"):
        QParams(torch.tensor(0.0), torch.tensor(0), -128, 127)
    with pytest.raises(AicomputeError, match="outside the grid"):
        QParams(torch.tensor(0.1), torch.tensor(300), 0, 255)
    with pytest.raises(AicomputeError, match="per-tensor QParams need one scale"):
        QParams(torch.ones(2), torch.zeros(2), 0, 255)
    qp = compute_qparams(torch.tensor([-1.0, -1.0]), torch.ones(2), QScheme(axis=0))
    with pytest.raises(AicomputeError, match="do not fit a tensor of shape"):
        qp.quantize(torch.ones(3, 2))
    with pytest.raises(AicomputeError, match="NaN or inf"):
        qp.quantize(torch.tensor([[float("nan")], [1.0]]))
    with pytest.raises(AicomputeError, match="integer codes"):
        qp.dequantize(torch.ones(2, 1))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.empty(0, 3), "is empty"),
        (torch.tensor([1.0, float("inf")]), "1 NaN/inf"),
        (torch.tensor([1, 2]), "floating-point"),
        ([1.0, 2.0], "torch.Tensor"),
    ],
)
def test_check_data_rejects_bad_data(x, message):
    with pytest.raises(AicomputeError, match=message):
        check_data(x)


def test_channel_rows_puts_each_channel_in_a_row():
    x = torch.arange(24.0).reshape(2, 3, 4)
    rows = channel_rows(x, 1)
    assert rows.shape == (3, 8)
    assert torch.equal(rows[1], x[:, 1, :].reshape(-1))
    with pytest.raises(AicomputeError, match="out of range"):
        channel_rows(x, 3)
