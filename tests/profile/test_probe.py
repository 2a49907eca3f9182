"""The local probe: measured rates, the saved spec in the cache, argument errors, and the TF32 switch."""

import json

import pytest
import torch

from aicompute.errors import AicomputeError
from aicompute.profile.hardware import get_hardware, list_hardware, local_spec_path
from aicompute.profile.probe import _tf32_matmul, probe_local


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache: the user's own probed spec is never read or overwritten."""
    monkeypatch.setenv("AICOMPUTE_CACHE", str(tmp_path / "cache"))


def tiny_probe(**kw):
    """A probe small enough to run in well under a second."""
    return probe_local(**{"repeats": 2, "matmul_size": 64, "copy_mib": 1, "vector_kib": 16, "device": "cpu", **kw})


def test_probe_measures_positive_rates_and_saves_them():
    spec = tiny_probe()
    assert spec.key == "local" and spec.measured and spec.origin == "measured"
    assert set(spec.tensor_flops) == set(spec.vector_flops) == {"float32", "bfloat16"}
    assert all(rate > 0 for rate in [*spec.tensor_flops.values(), *spec.vector_flops.values(), spec.bandwidth])
    assert spec.memory_bytes > 0
    assert f"({torch.get_num_threads()} threads)" in spec.name
    assert spec.details["matmul_size"] == 64 and spec.details["device"] == "cpu"
    # the cache holds exactly the spec (no temporary file left beside it) and reloads equal
    folder = local_spec_path().parent
    assert [p.name for p in folder.iterdir()] == ["local.json"]
    assert json.loads(local_spec_path().read_text())["key"] == "local"
    assert get_hardware("local") == spec
    assert list_hardware()[-1] == spec


def test_probe_replaces_the_previous_spec():
    first = tiny_probe(dtypes=("float32",))
    second = tiny_probe(dtypes=("bfloat16",))
    assert set(first.tensor_flops) == {"float32"}
    assert get_hardware("local").tensor_flops.keys() == {"bfloat16"} == second.tensor_flops.keys()


def test_probe_without_save_leaves_the_cache_alone():
    tiny_probe(save=False)
    assert not local_spec_path().exists()


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"dtypes": ("int8",)}, "cannot probe 'int8'"),
        ({"dtypes": ("tf32",)}, "TF32 is a CUDA tensor-core mode"),
        ({"dtypes": ()}, "dtypes is empty"),
        ({"repeats": 0}, "repeats must be a positive integer"),
        ({"device": "tpu:9"}, "not a torch device|measures 'cpu' or 'cuda'"),
    ],
)
def test_probe_rejects_bad_arguments(kw, message):
    with pytest.raises(AicomputeError, match=message):
        tiny_probe(save=False, **kw)


def test_tf32_switch_is_restored_after_the_probe_block():
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with _tf32_matmul(True):
        assert matmul.fp32_precision == "tf32"
    with _tf32_matmul(False):
        assert matmul.fp32_precision == "ieee"
    assert matmul.fp32_precision == before
