"""Checkpoints: a model's weights plus what is needed to rebuild it.

A checkpoint is one ``torch.save`` of a dict of plain data and tensors::

    {"format": "aicompute-checkpoint", "version": 1,
     "model_name": "mlp", "model_kwargs": {"in_features": 64, "num_classes": 10},
     "state_dict": {...tensors...},
     "metrics": {...} | None, "dataset": {"name": ..., "info": {...}, ...} | None, "extra": {...} | None,
     "aicompute_version": "0.1.0", "torch_version": "2.13.0"}

It is written atomically (a temporary file renamed into place), with every tensor moved to the CPU. On
load, the CRC-32 of every record of the zip container is checked first (``torch.load`` does not, so a
damaged byte in the weights would load silently), and the file is read **only** with
``torch.load(..., weights_only=True)``: the unpickler then accepts tensors and plain containers and refuses
every other object, so *reading* a crafted file cannot execute code. For the same reason ``model_kwargs``,
``metrics``, ``dataset`` and ``extra`` must be plain data (``None``, ``bool``, ``int``, ``float``, ``str``,
tensors, and lists/tuples/dicts with string keys of those); this is checked when saving.

**Rebuilding the model is where code runs.** The model is rebuilt with
``get_model(model_name, **model_kwargs)`` and its weights are loaded strictly. A zoo name runs only
aicompute's own factory, with keyword arguments checked against its signature. A ``pkg.module:factory``
name would import that module and call that attribute with arguments taken from the file — and a crafted
file may name anything (``"subprocess:getoutput"`` with ``{"cmd": ...}`` runs a shell command). So
:func:`load_checkpoint` refuses such a checkpoint, before importing or calling anything, unless the caller
passes ``allow_import=True`` (CLI: ``--allow-import``), which is safe only for files you trust.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import aicompute
from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.fileio import atomic_write
from aicompute.train.results import json_safe

__all__ = ["FORMAT", "VERSION", "Checkpoint", "save_checkpoint", "load_checkpoint", "is_imported_model"]

FORMAT = "aicompute-checkpoint"
VERSION = 1
"""Format version written by this aicompute; a file of another version is refused with a clear error."""

_PLAIN_SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (weights loaded, in eval mode, on ``map_location``) and its record."""

    model: nn.Module = field(repr=False)
    model_name: str
    model_kwargs: dict[str, Any]
    metrics: dict[str, Any] | None
    dataset: dict[str, Any] | None
    """``{"name": ..., "info": DatasetInfo.to_dict() or None, ...}``, or ``None`` when not recorded."""
    extra: dict[str, Any] | None
    path: Path
    version: int = VERSION
    aicompute_version: str | None = None
    torch_version: str | None = None

    @property
    def dataset_info(self) -> DatasetInfo | None:
        """The recorded data set's :class:`DatasetInfo`, when the checkpoint has one."""
        info = (self.dataset or {}).get("info")
        if not info:
            return None
        try:
            return DatasetInfo(**{**info, "input_shape": tuple(info["input_shape"])})
        except (TypeError, KeyError) as e:
            raise AicomputeError(f"checkpoint {str(self.path)!r} has a damaged data set record ({e})") from None

    def to_dict(self) -> dict[str, Any]:
        """The record without the weights, JSON-safe (:func:`~aicompute.train.results.json_safe`: tuples
        become lists, tensors their shapes)."""
        from aicompute.models.registry import count_params  # the zoo imports lazily: only loading needs it

        return json_safe({
            "kind": "checkpoint",
            "path": self.path,
            "format": FORMAT,
            "version": self.version,
            "model_name": self.model_name,
            "model_kwargs": self.model_kwargs,
            "params": count_params(self.model),
            "metrics": self.metrics,
            "dataset": self.dataset,
            "extra": self.extra,
            "aicompute_version": self.aicompute_version,
            "torch_version": self.torch_version,
        })


def _check_plain(value: Any, where: str) -> None:
    """Raise unless ``value`` is data ``torch.load(weights_only=True)`` reads back (see module docstring)."""
    # Exact types: a subclass (a numpy float64, an enum, a namedtuple) pickles as its own class, which the
    # weights-only loader refuses.
    if type(value) in _PLAIN_SCALARS or type(value) in (torch.Tensor, nn.Parameter):
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AicomputeError(f"checkpoint {where} has a non-string key {key!r}; use string keys")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise AicomputeError(
        f"checkpoint {where} is a {type(value).__name__}, which a weights-only checkpoint cannot hold; "
        "store plain data (int, float, str, bool, None, lists, dicts, tensors) instead, e.g. float(x) or "
        "result.to_dict()"
    )


def _dataset_record(dataset: Any) -> dict[str, Any] | None:
    """``dataset=`` of ``save_checkpoint`` as ``{"name": ..., "info": ...}``."""
    if dataset is None:
        return None
    if isinstance(dataset, str):
        return {"name": dataset, "info": None}
    info = getattr(dataset, "info", dataset)  # a data set object carries .info
    if isinstance(info, DatasetInfo):
        return {"name": info.name, "info": info.to_dict()}
    if isinstance(dataset, dict) and isinstance(dataset.get("name"), str):
        record = dict(dataset)
        if isinstance(record.get("info"), DatasetInfo):
            record["info"] = record["info"].to_dict()
        record.setdefault("info", None)
        return record
    raise AicomputeError(
        f"dataset= must be a data set name, a DatasetInfo, a data set with .info, or a dict with a 'name' "
        f"key, got {type(dataset).__name__}"
    )


def _check_finite_parameters(model: nn.Module, what: str) -> None:
    for name, param in model.named_parameters():
        if param.is_floating_point() and not bool(torch.isfinite(param).all()):
            raise AicomputeError(
                f"{what}: parameter {name!r} contains NaN or inf values; the run that produced it diverged — "
                "retrain with a lower learning rate"
            )


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str,
    model_kwargs: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    dataset: Any = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights and the record needed to rebuild it to ``path``, atomically; returns the path.

    ``model_name`` and ``model_kwargs`` must rebuild the same architecture through
    ``get_model(model_name, **model_kwargs)``; a ``pkg.module:factory`` name is saved as well, but loading it
    then needs ``allow_import=True``. ``dataset`` is a name, a ``DatasetInfo``, a data set object
    (its ``.info`` is used) or a dict with a ``"name"`` key (extra keys, such as the data set's keyword
    arguments, are kept).
    """
    if not isinstance(model_name, str) or not model_name:
        raise AicomputeError(
            f"model_name must be a non-empty string (a zoo name or pkg.module:factory), got {model_name!r}"
        )
    if not isinstance(model_kwargs, dict):
        raise AicomputeError(f"model_kwargs must be a dict, got {type(model_kwargs).__name__}")
    record = {"model_kwargs": model_kwargs, "metrics": metrics, "dataset": _dataset_record(dataset), "extra": extra}
    for key, value in record.items():
        if value is not None and not isinstance(value, dict):
            raise AicomputeError(f"checkpoint {key} must be a dict or None, got {type(value).__name__}")
        _check_plain(value, key)
    _check_finite_parameters(model, f"refusing to save {model_name!r}")
    state_dict = {}
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor):
            state_dict[key] = value.detach().cpu()
        else:  # a module's get_extra_state(): it must be plain data too
            _check_plain(value, f"state_dict[{key!r}]")
            state_dict[key] = value
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_name": model_name,
        **record,
        "state_dict": state_dict,
        "aicompute_version": str(aicompute.__version__),
        "torch_version": str(torch.__version__),  # a TorchVersion object would not load weights-only
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def _read(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(path, weights_only=True)``, with every way it can fail turned into an ``AicomputeError``."""
    if not path.exists():
        raise AicomputeError(f"checkpoint {str(path)!r} does not exist; pass the path that training wrote (--out)")
    if not path.is_file():
        raise AicomputeError(f"checkpoint {str(path)!r} is not a file; pass the checkpoint file itself")
    _check_zip_records(path)
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of foreign files; we explain
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise _corrupt(path, e) from None
        lines = [line.strip() for line in str(e).splitlines() if "nsupported" in line]
        reason = lines[0] if lines else "the weights-only loader rejected it"
        raise AicomputeError(
            f"refusing to load {str(path)!r}: it is not made only of tensors and plain data ({reason}); such a "
            "file could run code when loaded. aicompute loads only checkpoints written by save_checkpoint; "
            "re-save the weights from a trusted source"
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError, IndexError) as e:
        raise _corrupt(path, e) from None


def _check_zip_records(path: Path) -> None:
    """Verify the CRC-32 of every record of a torch zip file: ``torch.load`` does not, so flipped bytes in
    the weights would otherwise load silently. Files that are not zip archives are left to ``torch.load``."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise _corrupt(path, e) from None
    if bad is not None:
        raise _corrupt(path, ValueError(f"record {bad!r} fails its CRC-32 check"))


def _corrupt(path: Path, error: BaseException) -> AicomputeError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return AicomputeError(
        f"checkpoint {str(path)!r} is corrupt or truncated, or not a torch file ({reason[:200]}); "
        "write it again (e.g. re-run training with --out)"
    )


def _check_record(path: Path, payload: Any) -> None:
    """Check the format tag, the version and the types of the fields."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = " It looks like a bare state dict: load it with model.load_state_dict(torch.load(path))."
        raise AicomputeError(
            f"{str(path)!r} is not an aicompute checkpoint (no {FORMAT!r} format tag); save one with "
            f"save_checkpoint or train --out.{hint}"
        )
    version = payload.get("version")
    if version != VERSION:
        newer = isinstance(version, int) and version > VERSION
        raise AicomputeError(
            f"checkpoint {str(path)!r} has format version {version!r}, but this aicompute "
            f"({aicompute.__version__}) reads version {VERSION}; "
            + ("upgrade aicompute to read it" if newer else "re-save it with this version of aicompute")
        )
    expected = {"model_name": str, "model_kwargs": dict, "state_dict": dict}
    for key, kind in expected.items():
        if not isinstance(payload.get(key), kind):
            raise AicomputeError(
                f"checkpoint {str(path)!r} is damaged: field {key!r} should be a {kind.__name__}, "
                f"got {type(payload.get(key)).__name__}; write it again"
            )
    for key in ("metrics", "dataset", "extra"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise AicomputeError(f"checkpoint {str(path)!r} is damaged: field {key!r} should be a dict or None")


def _load_weights(model: nn.Module, state_dict: dict[str, Any], name: str, kwargs: dict[str, Any]) -> None:
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise AicomputeError(
            f"the checkpoint's weights do not fit model {name!r} built with {kwargs}: {detail[:600]}. "
            "The file was written for a different architecture (or another version of this model); "
            "rebuild with the same model_kwargs or retrain"
        ) from None


def is_imported_model(model_name: str) -> bool:
    """True when ``model_name`` is ``pkg.module:factory``: rebuilding it imports and calls code named by the
    file (the rule of :func:`aicompute.models.registry.resolve_model`); a zoo name is False."""
    return ":" in model_name


def _check_import_allowed(path: Path, name: str, allow_import: bool) -> None:
    if allow_import or not is_imported_model(name):
        return
    module, _, attr = name.partition(":")
    raise AicomputeError(
        f"refusing to rebuild the model of checkpoint {str(path)!r}: its model {name!r} is not a zoo model but "
        f"imported code — loading it would import {module!r} and call {attr!r} with arguments taken from the "
        "file, which runs whatever the file names. Pass allow_import=True (CLI: --allow-import) only for a "
        "checkpoint you trust"
    )


def load_checkpoint(
    path: str | Path, *, map_location: str | torch.device = "cpu", allow_import: bool = False
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` and rebuild its model (in eval mode).

    Tensors are loaded onto ``map_location``, and the model is moved there. A checkpoint whose model is a
    ``pkg.module:factory`` name is refused unless ``allow_import=True``, before anything is imported or called
    (see the module docstring: only pass it for files you trust). Every failure — a missing, truncated or
    foreign file, a file that would run code, a wrong format version, weights that do not fit the model —
    is an ``AicomputeError`` that says what is wrong and what to do.
    """
    path = Path(path)
    payload = _read(path, map_location)
    _check_record(path, payload)
    name, kwargs = payload["model_name"], payload["model_kwargs"]
    _check_import_allowed(path, name, allow_import)
    from aicompute.models.registry import get_model  # the zoo imports lazily: only loading needs it

    try:
        model = get_model(name, **kwargs)
    except AicomputeError as e:
        raise AicomputeError(f"cannot rebuild the model of checkpoint {str(path)!r}: {e}") from None
    _load_weights(model, payload["state_dict"], name, kwargs)
    _check_finite_parameters(model, f"checkpoint {str(path)!r}")
    model.to(map_location)
    model.eval()
    return Checkpoint(
        model=model,
        model_name=name,
        model_kwargs=kwargs,
        metrics=payload.get("metrics"),
        dataset=payload.get("dataset"),
        extra=payload.get("extra"),
        path=path,
        version=payload["version"],
        aicompute_version=payload.get("aicompute_version"),
        torch_version=payload.get("torch_version"),
    )
