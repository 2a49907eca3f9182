"""Hardware specs: datasheet figures with their sources, dtype lookups and errors."""

import json

import pytest
import torch

from aicompute.errors import AicomputeError
from aicompute.profile.hardware import (
    DTYPES,
    HardwareSpec,
    get_hardware,
    list_hardware,
    local_spec_path,
    normalize_dtype,
)

T = 1e12


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache: the user's own probed spec is never read or overwritten."""
    monkeypatch.setenv("AICOMPUTE_CACHE", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------ datasheets

@pytest.mark.parametrize(
    "key,dtype,tensor,tflops",
    [
        # NVIDIA H100 whitepaper Table 3, H100 SXM5 dense (sparse figures are 2x these)
        ("h100", "bfloat16", True, 989.4),
        ("h100", "tfloat32", True, 494.7),
        ("h100", "float8", True, 1978.9),
        ("h100", "float32", True, 66.9),  # float32 matmul = FP32 non-tensor rate (TF32 off by default)
        ("h100", "bfloat16", False, 133.8),
        # NVIDIA A100 datasheet (dense) and whitepaper Table 1 (non-tensor FP16 78, BF16 39)
        ("a100", "float16", True, 312),
        ("a100", "tfloat32", True, 156),
        ("a100", "int8", True, 624),
        ("a100", "float16", False, 78),
        ("a100", "bfloat16", False, 39),
        # V100 datasheet: 125 TFLOPS tensor (FP16 in, FP32 accumulate), 15.7 FP32
        ("v100", "float16", True, 125),
        ("v100", "float32", True, 15.7),
        # Ada whitepaper Appendix A, RTX 4090, FP32 accumulate
        ("rtx4090", "bfloat16", True, 165.2),
        ("rtx4090", "float8", True, 330.3),
        ("rtx4090", "float32", False, 82.6),
    ],
)
def test_datasheet_peaks(key, dtype, tensor, tflops):
    assert get_hardware(key).peak(dtype, tensor=tensor) == pytest.approx(tflops * T)


@pytest.mark.parametrize("key,gb_per_s,gib", [("h100", 3350, 80), ("a100", 2039, 80), ("v100", 900, 32),
                                              ("rtx4090", 1008, 24), ("ascend910b", 1600, 64)])
def test_datasheet_bandwidth_and_memory(key, gb_per_s, gib):
    spec = get_hardware(key)
    assert spec.bandwidth == pytest.approx(gb_per_s * 1e9)
    assert spec.memory_bytes == gib * 2**30


def test_every_datasheet_spec_cites_its_source_and_is_dense():
    specs = [s for s in list_hardware() if not s.measured]
    assert {s.key for s in specs} == {"h100", "a100", "v100", "rtx4090", "ascend910b"}
    for spec in specs:
        assert len(spec.source) > 40 and spec.origin in ("datasheet", "reported")
        assert set(spec.tensor_flops) <= set(DTYPES) and set(spec.vector_flops) <= set(DTYPES)
    nvidia = [s for s in specs if s.key != "ascend910b"]
    assert all("NVIDIA" in s.source and s.origin == "datasheet" for s in nvidia)
    # dense: a tensor-core rate is 8x (A100/H100) the FP32 rate for TF32, not the 16x of the sparse figure
    assert get_hardware("a100").peak("tfloat32", tensor=True) / get_hardware("a100").peak("float32", tensor=True) == 8
    ascend = get_hardware("ascend910b")
    assert ascend.origin == "reported" and "not vendor-published" in ascend.source


def test_ridge_is_peak_over_bandwidth():
    h100 = get_hardware("h100")
    assert h100.ridge("bfloat16") == pytest.approx(989.4e12 / 3.35e12)  # ≈ 295 FLOP/byte
    assert h100.ridge("float32", tensor=False) == pytest.approx(66.9e12 / 3.35e12)
    assert h100.to_dict()["ridge_flops_per_byte"]["bfloat16"] == pytest.approx(295.3, abs=0.1)


@pytest.mark.parametrize("name,expected", [(torch.bfloat16, "bfloat16"), ("bf16", "bfloat16"), ("FP32", "float32"),
                                           ("tf32", "tfloat32"), (torch.float8_e4m3fn, "float8"), ("half", "float16")])
def test_dtype_names(name, expected):
    assert normalize_dtype(name) == expected


def test_dtype_aliases_reach_the_same_peak():
    a100 = get_hardware("a100")
    assert a100.peak(torch.bfloat16, tensor=True) == a100.peak("bf16", tensor=True) == 312 * T


def test_spec_round_trips_through_its_dict():
    for spec in list_hardware():
        assert HardwareSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# ------------------------------------------------------------------------------------------ errors

def test_missing_dtype_lists_what_the_chip_has():
    with pytest.raises(AicomputeError, match=r"V100 SXM2 32GB has no tensor .*bfloat16.*lists: float32, float16"):
        get_hardware("v100").peak("bfloat16", tensor=True)
    with pytest.raises(AicomputeError, match="no vector rate for float16; it lists: none"):
        get_hardware("ascend910b").peak("float16", tensor=False)


def test_unknown_hardware_suggests_a_close_key():
    with pytest.raises(AicomputeError, match=r"unknown hardware 'h10'.*did you mean 'h100'.*known: h100, a100"):
        get_hardware("h10")


@pytest.mark.parametrize("spelling", ["H100", "RTX 4090", "ascend-910B", "rtx_4090"])
def test_keys_ignore_case_spaces_and_dashes(spelling):
    assert get_hardware(spelling).key in ("h100", "rtx4090", "ascend910b")


def test_local_before_a_probe_says_to_run_the_probe():
    with pytest.raises(AicomputeError, match=r"run `aicompute hw probe`"):
        get_hardware("local")
    assert [s.key for s in list_hardware()] == ["h100", "a100", "v100", "rtx4090", "ascend910b"]


def test_corrupt_local_spec_says_to_probe_again():
    local_spec_path().write_text("{not json")
    with pytest.raises(AicomputeError, match="cannot be read.*run `aicompute hw probe` again"):
        get_hardware("local")


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"tensor_flops": {"float33": 1.0}}, "unknown dtype 'float33'"),
        ({"tensor_flops": {"float32": 0.0}}, "must be a rate > 0"),
        ({"tensor_flops": {}}, "lists no dtype"),
        ({"bandwidth": -1.0}, "bandwidth must be > 0"),
    ],
)
def test_spec_validates_itself(kw, message):
    base = dict(key="x", name="x", tensor_flops={"float32": 1.0}, vector_flops={}, bandwidth=1.0,
                memory_bytes=0, source="test")
    with pytest.raises(AicomputeError, match=message):
        HardwareSpec(**{**base, **kw})

