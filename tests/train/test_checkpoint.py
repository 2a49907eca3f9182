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
from aicompute.models.registry import get_model
from aicompute.train import checkpoint as ckpt_module
from aicompute.train.checkpoint import FORMAT, VERSION, is_imported_model, load_checkpoint, save_checkpoint

ZOO = "perceptron"  # a zoo model: rebuilt without importing anything the file names
KWARGS = {"in_features": 4, "num_classes": 3}
INFO = DatasetInfo(name="toy", task="classification", input_shape=(4,), num_classes=3, kind="tensor")


def tiny_linear(in_features: int, out_features: int) -> nn.Module:
    """A user's own factory, named in checkpoints as ``<this test module>:tiny_linear``."""
    return nn.Linear(in_features, out_features)


USER = f"{__name__}:tiny_linear"
USER_KWARGS = {"in_features": 4, "out_features": 3}


def _model(**kwargs) -> nn.Module:
    return get_model(ZOO, **{**KWARGS, **kwargs})


def _saved(tmp_path, **kw):
    torch.manual_seed(0)
    model = _model()
    path = save_checkpoint(tmp_path / "m.pt", model, model_name=ZOO, model_kwargs=KWARGS, **kw)
    return model, path


def _payload(model: nn.Module, **overrides) -> dict:
    base = {"format": FORMAT, "version": VERSION, "model_name": ZOO, "model_kwargs": dict(KWARGS),
            "metrics": None, "dataset": None, "extra": None, "state_dict": model.state_dict()}
    return {**base, **overrides}


def test_round_trip_gives_identical_outputs(tmp_path):
    model, path = _saved(tmp_path, metrics={"test_accuracy": 0.75, "history": [1.0, 0.5]}, dataset=INFO,
                         extra={"note": "hi", "mask": torch.ones(2)})
    loaded = load_checkpoint(path)
    x = torch.randn(5, 4)
    assert torch.equal(loaded.model(x), model(x))
    assert type(loaded.model) is type(model) and not any(m.training for m in loaded.model.modules())
    assert loaded.model_name == ZOO and loaded.model_kwargs == KWARGS
    assert loaded.metrics == {"test_accuracy": 0.75, "history": [1.0, 0.5]}
    assert loaded.dataset == {"name": "toy", "info": INFO.to_dict()}
    assert loaded.dataset_info == INFO
    assert torch.equal(loaded.extra["mask"], torch.ones(2))
    assert loaded.version == VERSION and loaded.torch_version == torch.__version__


def test_to_dict_is_json_and_leaves_out_the_weights(tmp_path):
    _, path = _saved(tmp_path, dataset="toy", extra={"t": torch.zeros(2, 3), "shape": (1, 2)})
    d = load_checkpoint(path).to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["kind"] == "checkpoint" and d["format"] == FORMAT and d["model_name"] == ZOO
    assert d["params"] == 4 * 3 + 3  # W (3×4) + b (3)
    assert d["extra"] == {"t": {"tensor": [2, 3], "dtype": "float32"}, "shape": [1, 2]}
    assert d["dataset"] == {"name": "toy", "info": None}


def test_the_file_holds_only_plain_data_and_tensors(tmp_path):
    _, path = _saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == VERSION
    assert set(raw["state_dict"]) == set(_model().state_dict())


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
    evil = _payload(_model(), extra={"x": _Payload(str(target))})
    if container == "torch-zip":
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil))
    with pytest.raises(AicomputeError, match="refusing to load .*could run code"):
        load_checkpoint(path)
    assert not target.exists()


def test_the_shell_command_used_below_really_runs_when_the_model_is_rebuilt(tmp_path):
    """Control: with allow_import=True the crafted model name does run its command."""
    target = tmp_path / "shell-ran"
    path = tmp_path / "crafted.pt"
    torch.save(_payload(_model(), model_name="subprocess:getoutput",
                        model_kwargs={"cmd": f"echo pwned > {target}"}, state_dict={}), path)
    with pytest.raises(AicomputeError, match="returned str, not a torch.nn.Module"):
        load_checkpoint(path, allow_import=True)
    assert target.read_text().strip() == "pwned"


def test_a_checkpoint_naming_imported_code_is_refused_before_anything_runs(tmp_path):
    target = tmp_path / "shell-ran"
    path = tmp_path / "crafted.pt"
    torch.save(_payload(_model(), model_name="subprocess:getoutput",
                        model_kwargs={"cmd": f"echo pwned > {target}"}, state_dict={}), path)
    with pytest.raises(AicomputeError, match=r"'subprocess:getoutput' is not a zoo model but imported code.*"
                                             r"allow_import=True \(CLI: --allow-import\).*you trust"):
        load_checkpoint(path)
    assert not target.exists()


def test_the_module_a_refused_checkpoint_names_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    module = f"aicompute_test_evil_{os.getpid()}"
    (tmp_path / f"{module}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n\ndef build():\n    raise SystemExit('called')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "crafted.pt"
    torch.save(_payload(_model(), model_name=f"{module}:build", model_kwargs={}), path)
    with pytest.raises(AicomputeError, match="not a zoo model but imported code"):
        load_checkpoint(path)
    assert not marker.exists() and module not in sys.modules


def test_a_users_own_factory_loads_with_allow_import(tmp_path):
    torch.manual_seed(0)
    model = tiny_linear(**USER_KWARGS)
    path = save_checkpoint(tmp_path / "u.pt", model, model_name=USER, model_kwargs=USER_KWARGS)
    with pytest.raises(AicomputeError, match="allow_import=True"):
        load_checkpoint(path)
    loaded = load_checkpoint(path, allow_import=True)
    x = torch.randn(5, 4)
    assert type(loaded.model) is nn.Linear and torch.equal(loaded.model(x), model(x))
    assert loaded.model_name == USER and loaded.to_dict()["params"] == 4 * 3 + 3


def test_only_module_colon_factory_names_count_as_imported_code():
    assert is_imported_model("subprocess:getoutput") and is_imported_model("pkg.mod:Class.build")
    assert not is_imported_model("perceptron") and not is_imported_model("char-gru")


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
    model = _model()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.2345)
    path = save_checkpoint(tmp_path / "m.pt", model, model_name=ZOO, model_kwargs=KWARGS)
    data = bytearray(path.read_bytes())
    at = bytes(data).index(torch.tensor([1.2345]).numpy().tobytes())  # the weight storage
    data[at] ^= 0x01  # 1.2345 becomes a nearby float: torch.load alone would not notice
    path.write_bytes(bytes(data))
    with pytest.raises(AicomputeError, match="fails its CRC-32 check"):
        load_checkpoint(path)


def test_a_bare_state_dict_is_not_an_aicompute_checkpoint(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(_model().state_dict(), path)
    with pytest.raises(AicomputeError, match="not an aicompute checkpoint.*bare state dict"):
        load_checkpoint(path)


@pytest.mark.parametrize("version, match", [(VERSION + 1, "upgrade aicompute"), (0, "re-save it"),
                                            ("1", "re-save it")])
def test_another_format_version_is_an_error(tmp_path, version, match):
    path = tmp_path / "v.pt"
    torch.save(_payload(_model(), version=version), path)
    with pytest.raises(AicomputeError, match=f"format version .*reads version {VERSION}; {match}"):
        load_checkpoint(path)


def test_a_damaged_field_is_an_error(tmp_path):
    path = tmp_path / "d.pt"
    torch.save(_payload(_model(), model_kwargs=[4, 3]), path)
    with pytest.raises(AicomputeError, match="field 'model_kwargs' should be a dict"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_model_are_an_error(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(_payload(_model(in_features=5)), path)  # weights of a 5-input model, recorded as 4 inputs
    with pytest.raises(AicomputeError, match=r"do not fit model 'perceptron'.*size mismatch for .*weight"):
        load_checkpoint(path)


def test_missing_weights_are_an_error(tmp_path):
    path = tmp_path / "w.pt"
    weights = {k: v for k, v in _model().state_dict().items() if not k.endswith("bias")}
    torch.save(_payload(_model(), state_dict=weights), path)
    with pytest.raises(AicomputeError, match="Missing key.*bias"):
        load_checkpoint(path)


def test_an_unknown_model_is_an_error(tmp_path):
    path = tmp_path / "u.pt"
    torch.save(_payload(_model(), model_name="no_such_model_xyz"), path)
    with pytest.raises(AicomputeError, match="cannot rebuild the model .*no_such_model_xyz"):
        load_checkpoint(path)


def test_nan_weights_are_refused_on_save_and_on_load(tmp_path):
    model = _model()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(AicomputeError, match="weight' contains NaN"):
        save_checkpoint(tmp_path / "n.pt", model, model_name=ZOO, model_kwargs=KWARGS)
    assert not (tmp_path / "n.pt").exists()
    torch.save(_payload(model), tmp_path / "n.pt")
    with pytest.raises(AicomputeError, match="weight' contains NaN"):
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
    args = {"model_name": ZOO, "model_kwargs": KWARGS, **kw}
    with pytest.raises(AicomputeError, match=match):
        save_checkpoint(tmp_path / "x.pt", _model(), **args)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    old_model, path = _saved(tmp_path, metrics={"run": 1})

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _model(), model_name=ZOO, model_kwargs=KWARGS, metrics={"run": 2})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    loaded = load_checkpoint(path)
    assert loaded.metrics == {"run": 1}
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.parameters(), old_model.parameters(), strict=True))


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
    model = _model().cuda()
    path = save_checkpoint(tmp_path / "g.pt", model, model_name=ZOO, model_kwargs=KWARGS)
    raw = torch.load(path, weights_only=True)
    assert all(t.device.type == "cpu" for t in raw["state_dict"].values())
    assert next(load_checkpoint(path).model.parameters()).device.type == "cpu"
    on_gpu = load_checkpoint(path, map_location="cuda").model
    assert all(p.device.type == "cuda" for p in on_gpu.parameters())
    assert all(torch.equal(a.cpu(), b.cpu()) for a, b in zip(on_gpu.parameters(), model.parameters(), strict=True))
