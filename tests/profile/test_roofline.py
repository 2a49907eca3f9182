"""The roofline on hand-computed records: a pure compute op, a pure memory op, one exactly at the ridge."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.errors import AicomputeError
from aicompute.profile.hardware import HardwareSpec, get_hardware
from aicompute.profile.records import OpRecord, is_tensor_category
from aicompute.profile.roofline import roofline

# Powers of two, so every time below is exact in binary floating point.
PEAK = 2.0**40  # tensor FLOP/s
VECTOR = 2.0**36  # vector FLOP/s
BW = 2.0**30  # bytes/s  → tensor ridge 1024 FLOP/byte, vector ridge 64
TOY = HardwareSpec(key="toy", name="Toy chip", tensor_flops={"float32": PEAK}, vector_flops={"float32": VECTOR},
                   bandwidth=BW, memory_bytes=2**30, source="test figures")


def rec(op="aten.mm", category="matmul", flops=0, moved=0, module="", phase="forward", dtype="float32"):
    """A record moving ``moved`` bytes (all as activation reads)."""
    return OpRecord(op=op, module=module, phase=phase, category=category, dtype=dtype, macs=0, flops=flops,
                    act_read=moved, weight_read=0, written=0)


COMPUTE = rec("aten.mm", "matmul", flops=2**40, moved=2**20, module="enc.fc")  # 1 s compute vs 2^-10 s memory
MEMORY = rec("aten.add", "elementwise", flops=2**20, moved=2**30, module="enc.act")  # 2^-16 s vs 1 s memory
RIDGE = rec("aten.bmm", "matmul", flops=2**30, moved=2**20, module="dec.attn")  # intensity 1024 = ridge: 2^-10 both
UNCOUNTED = rec("aten.weird", "uncounted", flops=None, moved=2**29, module="dec")  # 0.5 s memory only


def test_pure_compute_op():
    row = roofline([COMPUTE], TOY).ops[0]
    assert row.time_s == 1.0  # max(2^40 / 2^40, 2^20 / 2^30)
    assert row.bound == "compute" and row.attainable == PEAK
    assert row.intensity == 2**20


def test_pure_memory_op():
    row = roofline([MEMORY], TOY).ops[0]
    assert row.time_s == 1.0  # max(2^20 / 2^36, 2^30 / 2^30)
    assert row.bound == "memory"
    assert row.attainable == row.intensity * BW == 2**20  # intensity 2^-10 FLOP/byte × 2^30 B/s


def test_op_exactly_at_the_ridge_is_compute_bound_at_peak():
    assert TOY.ridge("float32") == 1024
    row = roofline([RIDGE], TOY).ops[0]
    assert row.intensity == TOY.ridge("float32")
    assert row.time_s == 2**30 / PEAK == 2**20 / BW == 2.0**-10
    assert row.attainable == PEAK == row.intensity * BW
    assert row.bound == "compute"


def test_totals_shares_and_uncounted_ops():
    result = roofline([COMPUTE, MEMORY, RIDGE, UNCOUNTED], TOY)
    total = 1.0 + 1.0 + 2**-10 + 0.5
    assert result.latency_s == total and result.latency_ms == pytest.approx(total * 1e3)
    assert result.compute_share == (1.0 + 2**-10) / total
    assert result.memory_share == 1.5 / total
    assert result.compute_share + result.memory_share == pytest.approx(1.0)
    assert result.flops == 2**40 + 2**20 + 2**30
    assert result.achieved_flops == result.flops / total
    uncounted = next(r for r in result.ops if r.name == "aten.weird")
    assert uncounted.time_s == 0.5 and uncounted.bound == "memory" and uncounted.uncounted_calls == 1
    assert any("1 uncounted op calls" in note for note in result.notes())
    assert [r.name for r in result.ops] == ["aten.add", "aten.mm", "aten.weird", "aten.bmm"]  # most time first


def test_rows_per_op_sum_repeated_calls():
    result = roofline([COMPUTE, COMPUTE, RIDGE], TOY)
    mm = result.ops[0]
    assert (mm.name, mm.calls, mm.time_s, mm.flops) == ("aten.mm", 2, 2.0, 2**41)
    assert mm.attainable == PEAK  # same-shape calls: min(peak, I × bandwidth)


def test_module_rows_roll_up_to_a_depth_and_partition_the_time():
    records = [COMPUTE, MEMORY, RIDGE, UNCOUNTED]
    leaves = {r.name: r.time_s for r in roofline(records, TOY).modules}
    assert leaves == {"enc.fc": 1.0, "enc.act": 1.0, "dec.attn": 2**-10, "dec": 0.5}
    top = {r.name: r.time_s for r in roofline(records, TOY, depth=1).modules}
    assert top == {"enc": 2.0, "dec": 0.5 + 2**-10}
    assert {r.name: r.calls for r in roofline(records, TOY, depth=0).modules} == {"": 4}


def test_phases_are_totalled():
    result = roofline([COMPUTE, rec(flops=2**40, moved=0, phase="backward")], TOY)
    assert result.phase_s == {"forward": 1.0, "backward": 1.0}


def test_dtype_without_a_tensor_rate_is_an_error_naming_the_fix():
    bf16 = rec(flops=2**40, moved=2**20, dtype="bfloat16", module="enc.fc")
    with pytest.raises(AicomputeError, match=r"no tensor rate for bfloat16 \(op aten.mm in module 'enc.fc'\).*"
                                             r"lists float32: pass dtype="):
        roofline([bf16], TOY)
    assert roofline([bf16], TOY, dtype="float32").latency_s == 1.0


def test_vector_op_in_another_dtype_uses_the_float32_vector_rate():
    half = rec("aten.exp", "elementwise", flops=2**36, moved=0, dtype="bfloat16")
    assert roofline([half], TOY).latency_s == 1.0  # 2^36 / 2^36 (float32 vector rate)


def test_vector_ops_on_a_chip_without_vector_rates_are_priced_by_memory():
    ascend = get_hardware("ascend910b")
    op = rec("aten.add", "elementwise", flops=10**9, moved=1_600_000, dtype="float16")
    result = roofline([op], ascend)
    assert result.latency_s == pytest.approx(1e-6)  # 1.6 MB at 1.6 TB/s
    assert result.unpriced_vector_calls == 1
    assert any("lists no vector rate" in note for note in result.notes())


def test_tfloat32_override_prices_float32_matmul_at_the_tf32_rate():
    a100 = get_hardware("a100")
    op = rec(flops=312 * 10**12, moved=0)
    assert roofline([op], a100).latency_s == pytest.approx(312 / 19.5)  # FP32 non-tensor rate by default
    assert roofline([op], "a100", dtype="tf32").latency_s == pytest.approx(2.0)  # 312 T / 156 T


def test_no_records_and_bad_depth_are_errors():
    with pytest.raises(AicomputeError, match="no op records to price"):
        roofline([], TOY)
    with pytest.raises(AicomputeError, match="depth must be a non-negative integer"):
        roofline([COMPUTE], TOY, depth=-1)
    with pytest.raises(AicomputeError, match="unknown hardware"):
        roofline([COMPUTE], "tpu9")


def test_to_dict_is_json_safe_and_has_points():
    result = roofline([COMPUTE, MEMORY, RIDGE, UNCOUNTED], TOY, depth=1)
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["kind"] == "roofline" and record["hardware"]["key"] == "toy"
    assert record["totals"]["latency_ms"] == pytest.approx(2.5009765625e3)
    shares = record["totals"]["compute_bound_share"] + record["totals"]["memory_bound_share"]
    assert shares == pytest.approx(1.0)
    mm = next(r for r in record["by_op"] if r["name"] == "aten.mm")
    assert mm["intensity_flops_per_byte"] == 2**20 and mm["attainable_flops_per_s"] == PEAK
    assert mm["time_ms"] == 1e3 and mm["bound"] == "compute"
    assert sum(r["time_share"] for r in record["by_op"]) == pytest.approx(1.0)
    assert {r["name"] for r in record["by_module"]} == {"enc", "dec"}
    assert record["roofs"] == [
        {"dtype": "float32", "unit": "tensor", "peak_flops_per_s": PEAK, "ridge_flops_per_byte": 1024.0},
        {"dtype": "float32", "unit": "vector", "peak_flops_per_s": VECTOR, "ridge_flops_per_byte": 64.0},
    ]


def test_table_rows():
    columns, rows = roofline([COMPUTE, MEMORY], TOY).table(top=1)
    assert columns[0] == "op" and "time (ms)" in columns and len(rows) == 1
    row = dict(zip(columns, rows[0]))
    assert row["time (ms)"] == 1e3 and row["% of time"] == 50.0 and row["bound"] in ("compute", "memory")
    with pytest.raises(AicomputeError, match="by 'op' or by 'module'"):
        roofline([COMPUTE], TOY).table(by="layer")


OPS = [("aten.mm", "matmul"), ("aten.convolution", "conv"), ("aten.add", "elementwise"),
       ("aten._softmax", "softmax"), ("aten.sum", "reduction")]
records_strategy = st.lists(
    st.builds(
        lambda op, **kw: rec(*op, **kw),
        op=st.sampled_from(OPS),
        flops=st.one_of(st.none(), st.integers(0, 2**44)),
        moved=st.integers(0, 2**34),
        module=st.sampled_from(["", "a", "a.b", "a.b.c", "d.e"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(records_strategy)
def test_every_call_costs_the_max_of_its_two_times(records):
    result = roofline(records, TOY, depth=1)
    expected = 0.0
    for r in records:
        peak = PEAK if is_tensor_category(r.category) else VECTOR
        expected += max((r.flops or 0) / peak, r.moved / BW)
    assert result.latency_s == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert sum(row.time_s for row in result.modules) == pytest.approx(result.latency_s, rel=1e-12, abs=1e-300)
    if result.latency_s > 0:
        assert result.compute_share + result.memory_share == pytest.approx(1.0)
    for row in result.ops:  # no row beats its roof: attainable ≤ min(peak, intensity × bandwidth)
        peak = PEAK if is_tensor_category(row.category) else VECTOR
        if row.moved:
            assert row.attainable <= min(peak, row.intensity * BW) * (1 + 1e-9)


def test_roofline_of_a_profiled_linear_layer():
    """End to end: a ProfileResult is accepted as is; its matmul is priced from the counter's own bytes."""
    from aicompute.profile.api import profile

    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU())
    result = profile(net, input_shape=(8, 64))
    priced = roofline(result, TOY, depth=1)
    by_hand = sum(max((r.flops or 0) / (PEAK if is_tensor_category(r.category) else VECTOR), r.moved / BW)
                  for r in result.records)
    assert priced.latency_s == pytest.approx(by_hand)
    assert {row.name: row.category for row in priced.modules} == {"0": "Linear", "1": "ReLU"}
    matmul = next(row for row in priced.ops if row.category == "matmul")
    assert matmul.flops == 2 * 8 * 64 * 32  # 2 × batch × in × out
