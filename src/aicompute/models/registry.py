"""The model zoo's registry: ``register_model`` (a decorator), ``get_model``, ``list_models``.

Every zoo factory is registered with the default input it expects and an *adapter*: a function from a
:class:`~aicompute.data.info.DatasetInfo` to the constructor keyword arguments that fit the model to that
data set (input channels and size, class count, vocabulary...). Wherever a zoo name is accepted, a user's
own model may be named ``pkg.module:factory`` — any importable callable that returns an ``nn.Module``.

Factory keyword conventions (so that one adapter serves a family):

* image models: ``num_classes``, ``in_channels``, ``image_size`` (int or ``(H, W)``);
* vector models (perceptron, MLP): ``in_features``, ``num_classes`` — they flatten their input;
* sequence classifiers (RNN/LSTM/GRU): ``input_size`` (features per step, as in ``torch.nn.LSTM``),
  ``num_classes``; an image is read row by row, a 1-D signal one value per step;
* 1-D signal models: ``in_channels``, ``length``, ``num_classes``;
* language models: ``vocab_size``, ``block_size`` (longest sequence).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn

from aicompute.data.info import DatasetInfo
from aicompute.checks import did_you_mean
from aicompute.errors import AicomputeError

__all__ = [
    "ModelSpec",
    "register_model",
    "get_model",
    "list_models",
    "model_spec",
    "resolve_model",
    "build_for_dataset",
    "example_input",
    "count_params",
    "ADAPTERS",
]

Adapter = Callable[[DatasetInfo], dict[str, Any]]
Family = Literal["image", "vector", "sequence", "signal", "lm"]


def _image_adapter(info: DatasetInfo) -> dict[str, Any]:
    if info.task != "classification" or len(info.input_shape) != 3:
        raise _mismatch("images (C×H×W) with class labels", info)
    c, h, w = info.input_shape
    return {"in_channels": c, "image_size": (h, w), "num_classes": info.num_classes}


def _vector_adapter(info: DatasetInfo) -> dict[str, Any]:
    if info.task != "classification" or info.input_dtype != "float32":
        raise _mismatch("float feature vectors (any shape, flattened) with class labels", info)
    return {"in_features": math.prod(info.input_shape), "num_classes": info.num_classes}


def _sequence_adapter(info: DatasetInfo) -> dict[str, Any]:
    if info.task != "classification" or info.input_dtype != "float32" or len(info.input_shape) not in (1, 2, 3):
        raise _mismatch("float sequences (L,), (T, F) or images read row by row, with class labels", info)
    shape = info.input_shape
    if len(shape) == 1:  # one value per step
        features = 1
    elif len(shape) == 2:  # (T, F)
        features = shape[1]
    else:  # (C, H, W): H steps of C·W features
        features = shape[0] * shape[2]
    return {"input_size": features, "num_classes": info.num_classes}


def _signal_adapter(info: DatasetInfo) -> dict[str, Any]:
    if info.task != "classification" or len(info.input_shape) not in (1, 2):
        raise _mismatch("1-D signals (L,) or (C, L) with class labels", info)
    c, length = (1, info.input_shape[0]) if len(info.input_shape) == 1 else info.input_shape
    return {"in_channels": c, "length": length, "num_classes": info.num_classes}


def _lm_adapter(info: DatasetInfo) -> dict[str, Any]:
    if info.task != "language-modeling" or len(info.input_shape) != 1:
        raise _mismatch("token sequences (T,) for language modelling", info)
    return {"vocab_size": info.num_classes, "block_size": info.input_shape[0]}


def _mismatch(wants: str, info: DatasetInfo) -> AicomputeError:
    return AicomputeError(
        f"this model reads {wants}, but data set {info.name!r} gives {info.kind} of shape "
        f"{tuple(info.input_shape)} for {info.task}; pick a model and a data set of the same kind "
        "(`aicompute models` lists each model's family)"
    )


ADAPTERS: dict[str, Adapter] = {
    "image": _image_adapter,
    "vector": _vector_adapter,
    "sequence": _sequence_adapter,
    "signal": _signal_adapter,
    "lm": _lm_adapter,
}


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry."""

    name: str
    factory: Callable[..., nn.Module]
    family: Family
    """Which adapter fits the model to a data set (see module docstring)."""
    input_shape: tuple[int, ...]
    """Default input of one example (no batch dim) at the factory's default arguments."""
    input_dtype: Literal["float32", "int64"] = "float32"
    description: str = ""
    meta_only: bool = False
    """Too large to materialize here; build it under ``torch.device("meta")``."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the factory with their defaults (filled in by ``register_model``)."""

    def adapt(self, info: DatasetInfo) -> dict[str, Any]:
        return ADAPTERS[self.family](info)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "description": self.description,
            "meta_only": self.meta_only,
        }


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    family: Family,
    input_shape: tuple[int, ...],
    input_dtype: Literal["float32", "int64"] = "float32",
    description: str = "",
    meta_only: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a factory under ``name``. A duplicate name or an unknown family is a bug: ``ValueError``."""
    if family not in ADAPTERS:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(ADAPTERS)}")

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        defaults = {
            p.name: p.default
            for p in inspect.signature(factory).parameters.values()
            if p.default is not inspect.Parameter.empty
        }
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        _REGISTRY[name] = ModelSpec(
            name, factory, family, tuple(input_shape), input_dtype, doc, meta_only, defaults
        )
        return factory

    return decorate


def _ensure_zoo_loaded() -> None:
    importlib.import_module("aicompute.models")  # its __init__ imports every zoo module


def list_models() -> list[ModelSpec]:
    """Every registered zoo model, in registration order."""
    _ensure_zoo_loaded()
    return list(_REGISTRY.values())


def model_spec(name: str) -> ModelSpec:
    _ensure_zoo_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AicomputeError(
            f"unknown model {name!r}{did_you_mean(name, _REGISTRY)}; known models: {', '.join(_REGISTRY)} "
            "(or name your own as pkg.module:factory)"
        ) from None


def resolve_model(name: str) -> tuple[Callable[..., nn.Module], ModelSpec | None]:
    """A zoo name → (factory, spec); ``pkg.module:factory`` → (that callable, None)."""
    if ":" not in name:
        spec = model_spec(name)
        return spec.factory, spec
    module_name, _, attr = name.partition(":")
    module = _import_user_module(module_name, name)
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise AicomputeError(f"module {module_name!r} has no attribute {attr!r} (model {name!r})")
    if not callable(factory):
        raise AicomputeError(f"{name!r} is not callable; name a function or class that returns an nn.Module")
    return factory, None


def _import_user_module(module_name: str, name: str) -> ModuleType:
    """Import ``module_name``, also from the working directory, as ``python -m`` and uvicorn do.

    The installed ``aicompute`` script does not have the working directory on ``sys.path``, so a user's
    ``mymodel.py`` beside them would not import. It is appended (not prepended) and only when the module
    itself is missing, so an installed package of the same name still wins and a missing dependency
    inside the user's module is reported as such.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        top = module_name.partition(".")[0]
        if e.name != top or cwd in sys.path or "" in sys.path:
            raise AicomputeError(f"cannot import {module_name!r} for model {name!r}: {e}") from None
        sys.path.append(cwd)
    except ImportError as e:
        raise AicomputeError(f"cannot import {module_name!r} for model {name!r}: {e}") from None
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        raise AicomputeError(
            f"cannot import {module_name!r} for model {name!r} (searched sys.path and {cwd}): {e}"
        ) from None


def get_model(name: str, *, device: torch.device | str | None = None, **kwargs: Any) -> nn.Module:
    """Build a zoo model (or ``pkg.module:factory``) with keyword overrides.

    ``device="meta"`` builds it without allocating weight memory (for profiling and sizing).
    """
    factory, _ = resolve_model(name)
    _check_arguments(name, factory, kwargs)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise AicomputeError(f"{name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _check_arguments(name: str, factory: Callable[..., nn.Module], kwargs: dict[str, Any]) -> None:
    """Raise ``AicomputeError`` unless ``factory(**kwargs)`` binds, naming the arguments it does take.

    Checking the binding up front (instead of catching ``TypeError`` from the call) keeps a real bug inside
    a factory a bug, with its traceback.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature: let the call itself decide
        return
    try:
        signature.bind(**kwargs)
    except TypeError as e:
        takes = ", ".join(p.name for p in signature.parameters.values()
                          if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)) or "none"
        raise AicomputeError(f"cannot build model {name!r} with {kwargs}: {e}; it takes: {takes}") from None


def build_for_dataset(
    name: str, info: DatasetInfo, *, device: torch.device | str | None = None, **overrides: Any
) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``name`` fitted to data set ``info``; returns the model and the kwargs it was built with.

    For ``pkg.module:factory`` models only ``num_classes`` is passed (when the factory accepts it).
    """
    factory, spec = resolve_model(name)
    if spec is not None:
        kwargs = {**spec.adapt(info), **overrides}
    else:
        params = inspect.signature(factory).parameters
        kwargs = {"num_classes": info.num_classes} if "num_classes" in params else {}
        kwargs.update(overrides)
    return get_model(name, device=device, **kwargs), kwargs


def example_input(
    spec: ModelSpec,
    batch_size: int = 1,
    *,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random input of the spec's default shape (token ids for int64 models), drawn from ``generator``
    (a CPU generator; the global one when ``None``)."""
    shape = (batch_size, *spec.input_shape)
    if spec.input_dtype == "int64":
        vocab = int(spec.defaults.get("vocab_size", 2))
        x = torch.randint(0, vocab, shape, generator=generator) if str(device) != "meta" else None
        return x.to(device) if x is not None else torch.empty(shape, dtype=torch.int64, device="meta")
    if str(device) == "meta":
        return torch.empty(shape, device="meta")
    return torch.randn(shape, generator=generator).to(device)


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements; shared (tied) parameters are counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
