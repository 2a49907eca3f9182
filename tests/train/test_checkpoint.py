import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.train import checkpoint as ckpt_module
from aicompute.train.checkpoint import FORMAT, VERSION, load_checkpoint, save_checkpoint

LINEAR = "torch.nn:Linear"  # any importable factory works as a model name; this one needs no zoo
KWARGS = {"in_features": 4, "out_features": 3}
INFO = DatasetInfo(name="toy", task="classification", input_shape=(4,), num_classes=3, kind="tensor")


def _saved(tmp_path, **kw):
    torch.manual_seed(0)
    model = nn.Linear(**KWARGS)
    path = save_checkpoint(tmp_path / "m.pt", model, model_name=LINEAR, model_kwargs=KWARGS, **kw)
    return model, path


def _payload(model: nn.Module, **overrides) -> dict:
    base = {"format": FORMAT, "version": VERSION, "model_name": LINEAR, "model_kwargs": dict(KWARGS),
            "metrics": None, "dataset": None, "extra": None, "state_dict": model.state_dict()}
    return {**base, **overrides}


def test_round_trip_gives_identical_outputs(tmp_path):
    model, path = _saved(tmp_path, metrics={"test_accuracy": 0.75, "history": [1.0, 0.5]}, dataset=INFO,
                         extra={"note": "hi", "mask": torch.ones(2)})
    loaded = load_checkpoint(path)
    x = torch.randn(5, 4)
    assert torch.equal(loaded.model(x), model(x))
    assert type(loaded.model) is nn.Linear and not loaded.model.training
    assert loaded.model_name == LINEAR and loaded.model_kwargs == KWARGS
    assert loaded.metrics == {"test_accuracy": 0.75, "history": [1.0, 0.5]}
    assert loaded.dataset == {"name": "toy", "info": INFO.to_dict()}
    assert loaded.dataset_info == INFO
    assert torch.equal(loaded.extra["mask"], torch.ones(2))
    assert loaded.version == VERSION and loaded.torch_version == torch.__version__


def test_to_dict_is_json_and_leaves_out_the_weights(tmp_path):
    _, path = _saved(tmp_path, dataset="toy", extra={"t": torch.zeros(2, 3), "shape": (1, 2)})
    d = load_checkpoint(path).to_dict()
    json.dumps(d, allow_nan=False)
    assert d["params"] == 4 * 3 + 3 and d["model_name"] == LINEAR and d["format"] == FORMAT
    assert d["extra"] == {"t": {"tensor": [2, 3], "dtype": "float32"}, "shape": [1, 2]}
    assert d["dataset"] == {"name": "toy", "info": None}


def test_the_file_holds_only_plain_data_and_tensors(tmp_path):
    _, path = _saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == VERSION
    assert set(raw["state_dict"]) == {"weight", "bias"}


def test_a_dataset_dict_keeps_its_extra_keys(tmp_path):
    _, path = _saved(tmp_path, dataset={"name": "synthetic", "kwargs": {"size": 64}, "seed": 3, "info": INFO})
    record = load_checkpoint(path).dataset
    assert record == {"name": "synthetic", "kwargs": {"size": 64}, "seed": 3, "info": INFO.to_dict()}


class _Payload:
    """Unpickling this object writes a file: what a malicious checkpoint would do."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (exec, (f"open({self.target!r}, 'w').write('pwned')",))


def test_the_payload_used_below_really_runs_code_when_unpickled(tmp_path):
    target = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(str(target))))
    assert target.read_text() == "pwned"


@pytest.mark.parametrize("container", ["torch-zip", "raw-pickle"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, container):
    target = tmp_path / "side-effect"
    path = tmp_path / "evil.pt"
    evil = _payload(nn.Linear(**KWARGS), extra={"x": _Payload(str(target))})
    if container == "torch-zip":
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil))
    with pytest.raises(AicomputeError, match="refusing to load .*could run code"):
        load_checkpoint(path)
    assert not target.exists()


def test_loading_never_unpickles_with_weights_only_off(tmp_path, monkeypatch):
    calls = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    _, path = _saved(tmp_path)
    load_checkpoint(path)
    assert calls and all(kw.get("weights_only") is True for kw in calls)


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(AicomputeError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(AicomputeError, match="not a file"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip-middle"])
def test_a_truncated_or_corrupt_file_is_an_error(tmp_path, damage):
    _, path = _saved(tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(2000))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :])
    with pytest.raises(AicomputeError, match="corrupt or truncated|refusing to load"):
        load_checkpoint(path)


def test_one_flipped_byte_in_the_weights_is_caught(tmp_path):
    model = nn.Linear(**KWARGS)
    with torch.no_grad():
        model.weight.fill_(1.2345)
    path = save_checkpoint(tmp_path / "m.pt", model, model_name=LINEAR, model_kwargs=KWARGS)
    data = bytearray(path.read_bytes())
    at = bytes(data).index(torch.tensor([1.2345]).numpy().tobytes())  # the weight storage
    data[at] ^= 0x01  # 1.2345 becomes a nearby float: torch.load alone would not notice
    path.write_bytes(bytes(data))
    with pytest.raises(AicomputeError, match="fails its CRC-32 check"):
        load_checkpoint(path)


def test_a_bare_state_dict_is_not_an_aicompute_checkpoint(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(nn.Linear(**KWARGS).state_dict(), path)
    with pytest.raises(AicomputeError, match="not an aicompute checkpoint.*bare state dict"):
        load_checkpoint(path)


@pytest.mark.parametrize("version, match", [(VERSION + 1, "upgrade aicompute"), (0, "re-save it"),
                                            ("1", "re-save it")])
def test_another_format_version_is_an_error(tmp_path, version, match):
    path = tmp_path / "v.pt"
    torch.save(_payload(nn.Linear(**KWARGS), version=version), path)
    with pytest.raises(AicomputeError, match=f"format version .*reads version {VERSION}; {match}"):
        load_checkpoint(path)


def test_a_damaged_field_is_an_error(tmp_path):
    path = tmp_path / "d.pt"
    torch.save(_payload(nn.Linear(**KWARGS), model_kwargs=[4, 3]), path)
    with pytest.raises(AicomputeError, match="field 'model_kwargs' should be a dict"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_model_are_an_error(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(_payload(nn.Linear(5, 3), model_kwargs={"in_features": 4, "out_features": 3}), path)
    with pytest.raises(AicomputeError, match=r"do not fit model 'torch.nn:Linear'.*size mismatch for weight"):
        load_checkpoint(path)


def test_missing_weights_are_an_error(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(_payload(nn.Linear(4, 3, bias=False)), path)
    with pytest.raises(AicomputeError, match="Missing key.*bias"):
        load_checkpoint(path)


def test_an_unknown_model_is_an_error(tmp_path):
    path = tmp_path / "u.pt"
    torch.save(_payload(nn.Linear(4, 3), model_name="no_such_model_xyz"), path)
    with pytest.raises(AicomputeError, match="cannot rebuild the model .*no_such_model_xyz"):
        load_checkpoint(path)


def test_nan_weights_are_refused_on_save_and_on_load(tmp_path):
    model = nn.Linear(**KWARGS)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(AicomputeError, match="'weight' contains NaN"):
        save_checkpoint(tmp_path / "n.pt", model, model_name=LINEAR, model_kwargs=KWARGS)
    assert not (tmp_path / "n.pt").exists()
    torch.save(_payload(model), tmp_path / "n.pt")
    with pytest.raises(AicomputeError, match="'weight' contains NaN"):
        load_checkpoint(tmp_path / "n.pt")


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"model_kwargs": {"act": nn.ReLU()}}, r"model_kwargs\['act'\] is a ReLU"),
        ({"metrics": {"when": object()}}, r"metrics\['when'\] is a object"),
        ({"extra": {1: "x"}}, "non-string key 1"),
        ({"extra": [1, 2]}, "extra must be a dict"),
        ({"dataset": 3.5}, "dataset= must be"),
        ({"model_name": ""}, "model_name must be"),
    ],
)
def test_what_a_weights_only_file_cannot_hold_is_refused_before_writing(tmp_path, kw, match):
    args = {"model_name": LINEAR, "model_kwargs": KWARGS, **kw}
    with pytest.raises(AicomputeError, match=match):
        save_checkpoint(tmp_path / "x.pt", nn.Linear(**KWARGS), **args)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    old_model, path = _saved(tmp_path, metrics={"run": 1})

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, nn.Linear(**KWARGS), model_name=LINEAR, model_kwargs=KWARGS, metrics={"run": 2})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    loaded = load_checkpoint(path)
    assert loaded.metrics == {"run": 1}
    assert torch.equal(loaded.model.weight, old_model.weight)


def test_a_checkpoint_loads_in_a_fresh_interpreter(tmp_path):
    model, path = _saved(tmp_path)
    code = (
        "import sys, torch; from aicompute.train import load_checkpoint; "
        "m = load_checkpoint(sys.argv[1]).model; print(m(torch.ones(1, 4)).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == model(torch.ones(1, 4)).tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_model_is_saved_with_cpu_tensors_and_loads_on_either_device(tmp_path):
    model = nn.Linear(**KWARGS).cuda()
    path = save_checkpoint(tmp_path / "g.pt", model, model_name=LINEAR, model_kwargs=KWARGS)
    raw = torch.load(path, weights_only=True)
    assert all(t.device.type == "cpu" for t in raw["state_dict"].values())
    assert load_checkpoint(path).model.weight.device.type == "cpu"
    on_gpu = load_checkpoint(path, map_location="cuda").model
    assert on_gpu.weight.device.type == "cuda"
    assert torch.equal(on_gpu.weight.cpu(), model.weight.cpu())
