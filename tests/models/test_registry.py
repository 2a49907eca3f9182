import sys

import pytest
import torch
from torch import nn

from aicompute import AicomputeError
from aicompute.data.info import DatasetInfo
from aicompute.models import registry
from aicompute.models.registry import (
    ADAPTERS,
    build_for_dataset,
    count_params,
    example_input,
    get_model,
    list_models,
    model_spec,
    register_model,
    resolve_model,
)

MNIST = DatasetInfo(name="mnist", task="classification", input_shape=(1, 28, 28), num_classes=10)
SIGNAL = DatasetInfo(name="mnist1d", task="classification", input_shape=(40,), num_classes=10, kind="signal")
CHARS = DatasetInfo(name="chars", task="language-modeling", input_shape=(64,), num_classes=98,
                    input_dtype="int64", kind="tokens")


def tiny_factory(num_classes: int = 3, width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(width), nn.ReLU(), nn.Linear(width, num_classes))


def not_a_module():
    return 42


def test_adapters_give_the_keyword_conventions():
    assert ADAPTERS["image"](MNIST) == {"in_channels": 1, "image_size": (28, 28), "num_classes": 10}
    assert ADAPTERS["vector"](MNIST) == {"in_features": 784, "num_classes": 10}
    assert ADAPTERS["sequence"](MNIST) == {"input_size": 28, "num_classes": 10}  # 28 rows of 1·28
    assert ADAPTERS["sequence"](SIGNAL) == {"input_size": 1, "num_classes": 10}
    assert ADAPTERS["signal"](SIGNAL) == {"in_channels": 1, "length": 40, "num_classes": 10}
    assert ADAPTERS["lm"](CHARS) == {"vocab_size": 98, "block_size": 64}


@pytest.mark.parametrize("family,info", [("image", SIGNAL), ("lm", MNIST), ("vector", CHARS), ("signal", CHARS)])
def test_adapter_mismatch_is_a_user_error(family, info):
    with pytest.raises(AicomputeError, match=f"data set '{info.name}'"):
        ADAPTERS[family](info)


def test_user_factory_by_import_path():
    factory, spec = resolve_model("torch.nn:Linear")
    assert factory is nn.Linear and spec is None
    model = get_model("torch.nn:Linear", in_features=3, out_features=2)
    assert count_params(model) == 3 * 2 + 2


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A working directory holding the user's own module, not on sys.path (as under the installed script)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    return tmp_path


def test_user_module_in_the_working_directory_imports(user_dir):
    (user_dir / "aicompute_test_cwd_model.py").write_text(
        "import torch.nn as nn\ndef make(width=3):\n    return nn.Linear(2, width)\n"
    )
    model = get_model("aicompute_test_cwd_model:make", width=5)
    assert isinstance(model, nn.Linear) and model.out_features == 5
    assert sys.path[-1] == str(user_dir)  # appended: installed packages still win


def test_a_missing_dependency_inside_the_user_module_is_named(user_dir):
    (user_dir / "aicompute_test_cwd_broken.py").write_text("import no_such_dependency_xyz\n")
    with pytest.raises(AicomputeError, match="No module named 'no_such_dependency_xyz'"):
        get_model("aicompute_test_cwd_broken:make")


def test_a_module_found_nowhere_says_where_it_looked(user_dir):
    with pytest.raises(AicomputeError, match=f"searched sys.path and {user_dir}"):
        get_model("aicompute_no_such_module_xyz:make")


def test_user_factory_gets_num_classes_from_data():
    model, kwargs = build_for_dataset(f"{__name__}:tiny_factory", MNIST)
    assert kwargs == {"num_classes": 10}
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    "name,match",
    [
        ("no_such_model", "unknown model 'no_such_model'; known models:"),
        ("no_such_pkg.mod:f", "cannot import 'no_such_pkg.mod'"),
        ("torch.nn:NoSuchThing", "has no attribute 'NoSuchThing'"),
        ("torch:__version__", "is not callable"),
        (f"{__name__}:not_a_module", "returned int, not a torch.nn.Module"),
    ],
)
def test_bad_model_names(name, match):
    with pytest.raises(AicomputeError, match=match):
        get_model(name)


def test_bad_kwargs_name_the_accepted_ones():
    with pytest.raises(AicomputeError, match=r"cannot build model 'mlp'.*no_such_kwarg.*it takes: in_features"):
        get_model("mlp", no_such_kwarg=1)
    with pytest.raises(AicomputeError, match="cannot build model.*out_features"):
        get_model("torch.nn:Linear", in_features=3)  # out_features missing


def buggy_factory(width: int = 2) -> nn.Module:
    raise TypeError("a bug inside the factory")


def test_a_bug_inside_a_factory_keeps_its_traceback():
    with pytest.raises(TypeError, match="a bug inside the factory"):
        get_model(f"{__name__}:buggy_factory", width=3)


def test_unknown_model_suggests_a_close_name():
    with pytest.raises(AicomputeError, match=r"unknown model 'resnet5' \(did you mean 'resnet50'\?\)"):
        get_model("resnet5")


def test_registry_rejects_duplicates_and_unknown_families():
    first = list_models()[0].name
    with pytest.raises(ValueError, match="registered twice"):
        register_model(first, family="image", input_shape=(3, 8, 8))(tiny_factory)
    with pytest.raises(ValueError, match="unknown model family"):
        register_model("x", family="audio", input_shape=(1,))  # type: ignore[arg-type]
    assert model_spec(first).factory is not tiny_factory


def test_meta_device_allocates_nothing_and_spec_defaults():
    model = get_model("torch.nn:Linear", device="meta", in_features=1000, out_features=1000)
    assert all(p.is_meta for p in model.parameters())
    spec = model_spec("mlp")
    assert spec.family == "vector" and spec.to_dict()["name"] == "mlp"


def test_example_input_matches_spec():
    for spec in list_models():
        x = example_input(spec, 2, device="meta")
        assert x.shape == (2, *spec.input_shape) and x.is_meta
        assert x.dtype == (torch.int64 if spec.input_dtype == "int64" else torch.float32)


def test_example_input_is_drawn_from_the_generator_only():
    spec, lm = model_spec("lenet5"), model_spec("transformer")
    state = torch.random.get_rng_state()
    a = example_input(spec, 3, generator=torch.Generator().manual_seed(1))
    b = example_input(spec, 3, generator=torch.Generator().manual_seed(1))
    tokens = example_input(lm, 2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (3, 1, 32, 32)
    assert tokens.dtype == torch.int64 and 0 <= int(tokens.min()) and int(tokens.max()) < 100
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator was not touched


def test_count_params_counts_tied_weights_once():
    a = nn.Linear(4, 4, bias=False)
    tied = nn.Sequential(a, nn.ReLU(), a)
    assert count_params(tied) == 16
    frozen = nn.Linear(2, 2)
    frozen.bias.requires_grad_(False)
    assert count_params(frozen, trainable_only=True) == 4


def test_every_zoo_model_is_registered_once_in_the_module_registry():
    names = [s.name for s in list_models()]
    assert len(names) == len(set(names)) == len(registry._REGISTRY)
