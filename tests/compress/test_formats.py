"""Number formats against torch's own dtypes (bit for bit), closed forms and independent references."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.compress.formats import FORMATS, NumberFormat, cast, format_error, format_table, get_format
from aicompute.errors import AicomputeError

TORCH_FLOATS = {
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp8_e4m3": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}
fp32_bits = st.integers(0, 2**32 - 1)
fp32_values = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)
few = settings(deadline=None, max_examples=60)


def _torch_saturates(dtype: torch.dtype) -> bool:
    """Whether this torch's ``x.to(dtype)`` clamps overflow to max (e4m3fn on CPU since torch 2.13)."""
    return bool(torch.isfinite(torch.tensor([math.inf]).to(dtype).float()).item())


def _as_fp32(bits: torch.Tensor) -> torch.Tensor:
    """float32 with the given unsigned 32-bit patterns (int64 in [0, 2^32)), wrapped to int32 explicitly."""
    return torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32).view(torch.float32)


def _from_bits(bits: list[int]) -> torch.Tensor:
    return _as_fp32(torch.tensor(bits, dtype=torch.int64))


def _random_bit_patterns(n: int, seed: int) -> torch.Tensor:
    """Uniform over all 2^32 fp32 patterns: every sign, exponent (subnormals, inf, NaN) and fraction."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-(2**31), 2**31, (n,), generator=g, dtype=torch.int64).to(torch.int32).view(torch.float32)


def _many_scales(n: int, seed: int) -> torch.Tensor:
    """Normal samples times 2^k for k in [-160, 130]: underflow, every binade, overflow."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(-160, 131, (n,), generator=g)
    return (torch.randn(n, generator=g, dtype=torch.float64) * torch.pow(2.0, k.double())).float()


def _all_codes(dtype: torch.dtype) -> torch.Tensor:
    """Every value of an 8- or 16-bit torch float dtype, decoded by torch, as float32."""
    if dtype.itemsize == 1:
        return torch.arange(256, dtype=torch.int64).to(torch.uint8).view(dtype).float()
    return torch.arange(-(2**15), 2**15, dtype=torch.int64).to(torch.int16).view(dtype).float()


def _ties_and_neighbours(values: torch.Tensor) -> torch.Tensor:
    """Midpoints of adjacent representable values (exact in fp32), the fp32 values either side, and negatives."""
    grid = torch.unique(values[torch.isfinite(values)].abs())  # sorted, 0 first
    top = 2 * grid[-1] - grid[-2]  # one step above max: its midpoint with max is the overflow tie
    grid = torch.cat([grid, top.reshape(1)]).double()
    mid = ((grid[:-1] + grid[1:]) / 2).float()
    near = torch.cat([mid, torch.nextafter(mid, mid + 1), torch.nextafter(mid, mid - 1)])
    return torch.cat([near, -near])


def _assert_same_bits(actual: torch.Tensor, expected: torch.Tensor, x: torch.Tensor) -> None:
    assert actual.dtype == torch.float32 and actual.shape == x.shape
    same = (actual.view(torch.int32) == expected.view(torch.int32)) | (actual.isnan() & expected.isnan())
    bad = ~same
    assert not bad.any(), (
        f"{int(bad.sum())} mismatches, e.g. x={x[bad][:4].tolist()} "
        f"got={actual[bad][:4].tolist()} expected={expected[bad][:4].tolist()}"
    )


def _vs_torch(x: torch.Tensor, name: str) -> None:
    dtype = TORCH_FLOATS[name]
    _assert_same_bits(cast(x, name, saturate=_torch_saturates(dtype)), x.to(dtype).float(), x)


# --- cast vs torch's dtypes, bit for bit -------------------------------------------------------------


@pytest.mark.parametrize("name", TORCH_FLOATS)
def test_cast_matches_torch_on_random_bit_patterns_and_scales(name):
    _vs_torch(torch.cat([_random_bit_patterns(1 << 15, seed=1), _many_scales(1 << 14, seed=2)]), name)


@pytest.mark.parametrize("name", TORCH_FLOATS)
def test_cast_matches_torch_on_every_tie_and_its_neighbours(name):
    # Every midpoint between adjacent values (subnormal, normal, the max/overflow tie) must round to even.
    _vs_torch(_ties_and_neighbours(_all_codes(TORCH_FLOATS[name])), name)


@pytest.mark.parametrize("name", TORCH_FLOATS)
def test_cast_matches_torch_on_special_values(name):
    f32 = torch.finfo(torch.float32)
    fmt = get_format(name)
    specials = [0.0, math.inf, math.nan, f32.max, f32.tiny, 2**-149, fmt.max, fmt.min_normal, fmt.min_subnormal,
                fmt.min_subnormal / 2, fmt.min_subnormal * 0.75, fmt.max * (1 + fmt.eps / 4), 1e30]  # fmt: skip
    x = torch.tensor(specials + [-v for v in specials], dtype=torch.float32)
    _vs_torch(x, name)
    assert cast(torch.tensor([-0.0, -1e-45]), name).view(torch.int32).tolist() == [-(2**31)] * 2  # -0 kept


@few
@given(st.lists(fp32_bits, min_size=1, max_size=64), st.sampled_from(sorted(TORCH_FLOATS)))
def test_cast_matches_torch_on_hypothesis_bit_patterns(bits, name):
    _vs_torch(_from_bits(bits), name)


@few
@given(st.lists(fp32_values, min_size=1, max_size=64), st.sampled_from(sorted(TORCH_FLOATS)))
def test_saturating_cast_equals_torch_cast_of_the_clamped_input(values, name):
    x = torch.tensor(values, dtype=torch.float32)
    fmt = get_format(name)
    expected = x.clamp(fmt.lowest, fmt.max).to(TORCH_FLOATS[name]).float()  # clamp keeps NaN, sends ±inf to ±max
    _assert_same_bits(cast(x, name, saturate=True), expected, x)


def test_overflow_follows_the_ocp_rules_in_both_modes():
    nan, inf = math.nan, math.inf
    cases = [  # (format, saturate, inputs, expected)
        ("fp8_e4m3", False, [448, 464, 465, 480, 1e9, inf, -inf, nan], [448, 448, nan, nan, nan, nan, nan, nan]),
        ("fp8_e4m3", True, [448, 464, 465, 480, 1e9, inf, -inf, nan], [448, 448, 448, 448, 448, 448, -448, nan]),
        ("fp8_e5m2", None, [57344, 61439.99, 61440, -1e9, inf, nan], [57344, 57344, inf, -inf, inf, nan]),
        ("fp8_e5m2", True, [61440, -1e9, inf, -inf, nan], [57344, -57344, 57344, -57344, nan]),
        ("fp16", None, [65519, 65520, -65520, inf], [65504, inf, -inf, inf]),
        ("fp16", True, [65520, 1e30, -inf], [65504, 65504, -65504]),
        ("bf16", None, [3.4028234663852886e38, -inf], [inf, -inf]),  # fp32's max rounds up past bf16's
    ]
    for name, saturate, inputs, expected in cases:
        got = cast(torch.tensor(inputs, dtype=torch.float32), name, saturate=saturate)
        torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32), equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize("name", TORCH_FLOATS)
def test_default_overflow_rule_is_the_installed_torch_one(name):
    dtype = TORCH_FLOATS[name]
    if name == "fp8_e4m3" and not _torch_saturates(dtype):
        pytest.skip("this torch's CPU e4m3fn cast gives NaN on overflow (before pytorch#178817); ours saturates")
    assert get_format(name).saturates == _torch_saturates(dtype)
    x = torch.tensor([1e38, -math.inf, math.nan])
    _assert_same_bits(cast(x, name), x.to(dtype).float(), x)


# --- TF32, fp32 and custom formats against independent references --------------------------------------


def _tf32_by_masking(x: torch.Tensor) -> torch.Tensor:
    """Round-to-nearest-even at fraction bit 13 by adding a bias and masking (carries reach the exponent)."""
    bits = x.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    sign, mag = bits & 0x80000000, bits & 0x7FFFFFFF
    rounded = (mag + 0xFFF + ((mag >> 13) & 1)) & ~0x1FFF
    out = _as_fp32(sign | rounded)  # a carry out of the largest finite value lands on inf (0x7F800000)
    return torch.where(x.isnan(), x, out)


def test_tf32_matches_the_masking_reference_on_patterns_and_ties():
    g = torch.Generator().manual_seed(3)
    upper = torch.randint(0, 2**19, (1 << 13,), generator=g, dtype=torch.int64) << 13
    ties = _as_fp32(upper | 0x1000)  # low 13 bits exactly half a TF32 step
    x = torch.cat([_random_bit_patterns(1 << 15, seed=4), ties, torch.nextafter(ties, torch.zeros(1)), -ties])
    _assert_same_bits(cast(x, "tf32"), _tf32_by_masking(x), x)


@few
@given(st.lists(fp32_bits, min_size=1, max_size=64))
def test_tf32_matches_the_masking_reference_on_hypothesis_patterns(bits):
    x = _from_bits(bits)
    _assert_same_bits(cast(x, "tf32"), _tf32_by_masking(x), x)


def test_fp32_cast_is_the_identity():
    x = _random_bit_patterns(1 << 15, seed=5)
    _assert_same_bits(cast(x, "fp32"), x, x)


def _nearest_by_search(v: float, fmt: NumberFormat) -> float:
    """Brute force: the closest grid value to v, ties to the even code; the step past max means overflow."""
    m, emin = fmt.mantissa_bits, fmt.emin
    grid = [k * 2.0 ** (emin - m) for k in range(2**m)]  # zero and subnormals
    grid += [(1 + k / 2**m) * 2.0**e for e in range(emin, fmt.emax + 1) for k in range(2**m)]
    grid = [g for g in grid if g <= fmt.max] + [2 * fmt.max - [g for g in grid if g < fmt.max][-1]]
    dist = [abs(abs(v) - g) for g in grid]
    best = min(range(len(grid)), key=lambda i: (dist[i], i % 2))  # positive values are codes 0, 1, 2, …
    mag = grid[best] if best < len(grid) - 1 else (math.inf if fmt.has_inf else math.nan)
    return math.copysign(mag, v)


SMALL_FORMATS = [
    NumberFormat(name="e3m2", kind="float", exponent_bits=3, mantissa_bits=2),
    NumberFormat(name="e2m3", kind="float", exponent_bits=2, mantissa_bits=3),
    NumberFormat(name="e3m2fn", kind="float", exponent_bits=3, mantissa_bits=2, finite_only=True),
    FORMATS["fp8_e4m3"],
]


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=lambda f: f.name)
def test_small_formats_round_like_a_brute_force_search(fmt):
    g = torch.Generator().manual_seed(6)
    scales = torch.pow(2.0, torch.randint(fmt.emin - fmt.mantissa_bits - 2, fmt.emax + 2, (400,), generator=g))
    half_steps = torch.arange(-600, 601) * 2.0 ** (fmt.emin - fmt.mantissa_bits - 1)  # every subnormal tie
    x = torch.cat([torch.randn(400, generator=g) * scales, half_steps])
    got = cast(x, fmt, saturate=False)
    expected = torch.tensor([_nearest_by_search(v, fmt) for v in x.tolist()])
    _assert_same_bits(got, expected, x)


@few
@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(["tf32", *TORCH_FLOATS]))
def test_rounding_error_is_at_most_half_a_step(v, name):
    fmt = get_format(name)
    if abs(v) > fmt.max:
        return
    exponent = math.frexp(v)[1] - 1  # floor(log2 |v|), exactly
    step = fmt.min_subnormal if abs(v) < fmt.min_normal else 2.0 ** (exponent - fmt.mantissa_bits)
    assert abs(cast(torch.tensor([v]), name).item() - v) <= step / 2


# --- the table ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "maximum", "min_normal", "min_subnormal", "eps", "nbytes"),
    [
        ("fp32", (2 - 2**-23) * 2.0**127, 2.0**-126, 2.0**-149, 2.0**-23, 4),
        ("tf32", (2 - 2**-10) * 2.0**127, 2.0**-126, 2.0**-136, 2.0**-10, 4),
        ("fp16", 65504, 2.0**-14, 2.0**-24, 2.0**-10, 2),
        ("bf16", (2 - 2**-7) * 2.0**127, 2.0**-126, 2.0**-133, 2.0**-7, 2),  # ≈ 3.3895e38
        ("fp8_e4m3", 448, 2.0**-6, 2.0**-9, 2.0**-3, 1),
        ("fp8_e5m2", 57344, 2.0**-14, 2.0**-16, 2.0**-2, 1),
        ("int8", 127, 1, None, 1, 1),
        ("int4", 7, 1, None, 1, 0.5),
        ("int2", 1, 1, None, 1, 0.25),
        ("binary", 1, 1, None, None, 0.125),
    ],
)
def test_table_matches_closed_forms(name, maximum, min_normal, min_subnormal, eps, nbytes):
    fmt = FORMATS[name]
    assert (fmt.max, fmt.min_normal, fmt.min_subnormal, fmt.eps, fmt.bytes_per_value) == (
        maximum, min_normal, min_subnormal, eps, nbytes,
    )  # fmt: skip


def test_bf16_keeps_the_fp32_range_and_fp16_does_not():
    bf16, fp16, fp32 = FORMATS["bf16"], FORMATS["fp16"], FORMATS["fp32"]
    assert math.isclose(bf16.max, 3.3895e38, rel_tol=1e-4) and bf16.min_normal == fp32.min_normal
    assert bf16.exponent_bits == fp32.exponent_bits == 8 and fp16.max < 1e5 < bf16.max


@pytest.mark.parametrize("name", ["fp32", *TORCH_FLOATS])
def test_table_matches_torch_finfo(name):
    fmt, info = FORMATS[name], torch.finfo(FORMATS[name].torch_dtype)
    assert (fmt.max, fmt.lowest, fmt.min_normal, fmt.eps, fmt.total_bits) == (
        info.max, info.min, info.smallest_normal, info.eps, info.bits,
    )  # fmt: skip


def test_int_ranges_match_torch_iinfo_and_twos_complement():
    assert (FORMATS["int8"].lowest, FORMATS["int8"].max) == (torch.iinfo(torch.int8).min, torch.iinfo(torch.int8).max)
    assert [(FORMATS[n].lowest, FORMATS[n].max) for n in ("int4", "int2")] == [(-8, 7), (-2, 1)]


@pytest.mark.parametrize("name", TORCH_FLOATS)
def test_every_code_is_a_fixed_point_and_fixes_the_table(name):
    fmt, values = FORMATS[name], _all_codes(TORCH_FLOATS[name])
    finite = values[torch.isfinite(values)]
    _assert_same_bits(cast(finite, name), finite, finite)
    positive = finite[finite > 0]
    assert (positive.max().item(), positive.min().item()) == (fmt.max, fmt.min_subnormal)
    assert positive[positive >= fmt.min_normal].min().item() == fmt.min_normal
    assert fmt.min_normal - fmt.min_subnormal in positive.tolist()  # the largest subnormal exists
    assert bool(values.isinf().any()) == fmt.has_inf and bool(values.isnan().any()) == fmt.has_nan
    expected_nans = 2 if fmt.finite_only else 2 * (2**fmt.mantissa_bits - 1)  # e4m3fn: only S.1111.111
    assert int(values.isnan().sum()) == expected_nans


def test_format_table_rows_are_complete_and_json_safe():
    rows = format_table()
    assert [r["name"] for r in rows] == list(FORMATS)
    columns = {"sign_bits", "exponent_bits", "mantissa_bits", "total_bits", "bytes_per_value", "bias", "max",
               "min_normal", "min_subnormal", "eps", "has_inf", "has_nan", "overflow"}  # fmt: skip
    assert all(columns <= set(r) for r in rows)
    assert json.loads(json.dumps(rows, allow_nan=False)) == rows
    e4m3 = rows[list(FORMATS).index("fp8_e4m3")]
    assert (e4m3["bias"], e4m3["max"], e4m3["has_inf"], e4m3["overflow"], e4m3["torch_dtype"]) == (
        7, 448.0, False, "saturate", "float8_e4m3fn",
    )  # fmt: skip


# --- the registry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "name"),
    [("float32", "fp32"), ("half", "fp16"), ("bfloat16", "bf16"), ("e4m3", "fp8_e4m3"), ("FP8-E4M3", "fp8_e4m3"),
     ("float8_e4m3fn", "fp8_e4m3"), ("e5m2", "fp8_e5m2"), (" INT4 ", "int4"), ("tf32", "tf32"), ("binary", "binary")],
)  # fmt: skip
def test_get_format_resolves_aliases(alias, name):
    assert get_format(alias) is FORMATS[name]


def test_get_format_takes_formats_and_torch_dtypes():
    assert get_format(FORMATS["int2"]) is FORMATS["int2"]
    assert get_format(torch.bfloat16) is FORMATS["bf16"] and get_format(torch.float8_e5m2) is FORMATS["fp8_e5m2"]


def test_get_format_rejects_unknown_names_with_a_suggestion():
    with pytest.raises(AicomputeError, match=r"unknown number format 'fp61' \(did you mean 'fp16'\?\).*int8"):
        get_format("fp61")
    with pytest.raises(AicomputeError, match="no number format for torch.int16"):
        get_format(torch.int16)
    with pytest.raises(AicomputeError, match="got int"):
        get_format(8)


def test_number_format_validates_its_layout():
    with pytest.raises(AicomputeError, match="kind must be"):
        NumberFormat(name="q", kind="fixed", exponent_bits=0, mantissa_bits=7)
    with pytest.raises(AicomputeError, match="2..8 exponent bits"):
        NumberFormat(name="fp64", kind="float", exponent_bits=11, mantissa_bits=52)
    with pytest.raises(AicomputeError, match="always saturate"):
        NumberFormat(name="int3", kind="int", exponent_bits=0, mantissa_bits=2)


# --- integer and binary formats ---------------------------------------------------------------------------

INT_NAMES = ["int8", "int4", "int2"]


@few
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=64), st.sampled_from(INT_NAMES))
def test_int_cast_is_round_half_even_then_clamp(values, name):
    x, fmt = torch.tensor(values, dtype=torch.float32), FORMATS[name]
    expected = torch.round(x).clamp(fmt.lowest, fmt.max)
    got = cast(x, name)
    assert torch.equal(got, expected) and not torch.signbit(got[got == 0]).any()  # no -0 in an integer


def test_int_cast_ties_and_range_by_hand():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5, -0.3, 126.5, 127.5, -128.5, 1e10, math.inf, -math.inf])
    assert cast(x, "int8").tolist() == [0, 2, 2, 0, -2, 0, 126, 127, -128, 127, 127, -128]
    assert torch.equal(cast(x, "int8"), x.round().clamp(-128, 127).to(torch.int8).float())
    assert cast(x, "int4").tolist() == [0, 2, 2, 0, -2, 0, 7, 7, -8, 7, 7, -8]


def test_binary_cast_is_sign_with_sign_of_zero_plus_one():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, -1e-30, math.inf, -math.inf])
    assert cast(x, "binary").tolist() == [-1, 1, 1, 1, -1, 1, -1]


@pytest.mark.parametrize("name", ["int8", "binary"])
def test_int_and_binary_refuse_nan_and_non_saturating_casts(name):
    with pytest.raises(AicomputeError, match="cannot represent"):
        cast(torch.tensor([1.0, math.nan]), name)
    with pytest.raises(AicomputeError, match="always saturates"):
        cast(torch.tensor([1.0]), name, saturate=False)


# --- inputs and format_error --------------------------------------------------------------------------------


def test_cast_leaves_its_input_alone_and_accepts_other_real_dtypes():
    x = torch.tensor([[1.0001, -3e5], [7e-9, 2.5]])
    before = x.clone()
    assert cast(x, "fp16").shape == (2, 2) and torch.equal(x, before)
    x64 = torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    assert torch.equal(cast(x64, "bf16"), cast(x64.float(), "bf16"))
    ints = torch.arange(-600, 601)
    assert torch.equal(cast(ints, "fp8_e5m2"), ints.float().to(torch.float8_e5m2).float())
    for bad in (torch.tensor([True]), torch.tensor([1 + 1j])):
        with pytest.raises(AicomputeError, match="real numbers"):
            cast(bad, "fp16")
    with pytest.raises(AicomputeError, match="torch.Tensor"):
        cast([1.0], "fp16")


def test_format_error_by_hand_for_fp16():
    x = torch.tensor([1.0, 1e5, 1e-10, 1 / 3, -0.0])  # exact, overflow, flush, rounded, zero
    q = x.to(torch.float16).float()  # torch's own fp16 as the reference; 1e5 → inf
    kept = torch.tensor([0, 2, 3, 4])
    err = (q[kept].double() - x[kept].double()).abs()
    report = format_error(x, "fp16")
    assert report == {
        "format": "fp16", "numel": 5, "max_abs_error": err.max().item(), "mean_abs_error": err.mean().item(),
        "rel_rms_error": math.sqrt(err.square().sum().item() / x[kept].double().square().sum().item()),
        "overflow_fraction": 0.2, "flushed_to_zero_fraction": 0.2,
    }  # fmt: skip
    saturated = format_error(x, "fp16", saturate=True)  # 1e5 → 65504 and now counted in the errors
    assert saturated["max_abs_error"] == 1e5 - 65504 and saturated["overflow_fraction"] == 0.2


def test_format_error_by_hand_for_int8():
    x = torch.tensor([0.4, 200.0, -1.6, 3.0])  # → 0, 127 (clamped), -2, 3
    x64 = x.double()
    err = (torch.tensor([0.0, 127.0, -2.0, 3.0], dtype=torch.float64) - x64).abs()
    report = format_error(x, "int8")
    assert report["max_abs_error"] == 73.0 and report["mean_abs_error"] == err.mean().item()
    assert report["rel_rms_error"] == math.sqrt(err.square().sum().item() / x64.square().sum().item())
    assert (report["overflow_fraction"], report["flushed_to_zero_fraction"]) == (0.25, 0.25)


def test_format_error_of_bf16_on_weights_is_within_unit_roundoff():
    w = torch.randn(4096, generator=torch.Generator().manual_seed(8))
    report = format_error(w, "bf16")
    assert 0 < report["rel_rms_error"] <= 2**-8 and report["overflow_fraction"] == 0
    assert report["max_abs_error"] <= w.abs().max().item() * 2**-8


def test_format_error_rejects_empty_and_non_finite_tensors():
    with pytest.raises(AicomputeError, match="empty"):
        format_error(torch.empty(0), "fp16")
    with pytest.raises(AicomputeError, match="NaN or inf"):
        format_error(torch.tensor([1.0, math.inf]), "fp16")
