"""What ``aicompute train`` and ``aicompute evaluate`` do, as library calls taking names.

``train_model("mlp", "digits", epochs=3, out="mlp.pt")`` builds the data set's train and test splits, builds
the model fitted to the data set (``build_for_dataset``: input shape, channels, class count or vocabulary),
fits it with the test split as validation data, measures it on the test split and, with ``out``, writes a
checkpoint that records the model, its keyword arguments and the data set (name, keyword arguments, seed
and ``DatasetInfo``), so that ``evaluate_checkpoint("mlp.pt")`` can rebuild both and measure again.

One ``seed`` drives everything: the data sets are built with it, the model is initialised right after
``seed_everything(seed)``, and ``fit`` shuffles and runs with it — the same call gives the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from aicompute.train.evaluate import evaluate
from aicompute.train.loop import fit
from aicompute.train.optim import OptimizerSpec
from aicompute.train.results import EvalResult, FitResult, json_float
from aicompute.train.seeding import seed_everything

__all__ = ["TrainResult", "train_model", "evaluate_checkpoint"]


@dataclass(frozen=True)
class TrainResult:
    """One ``train_model`` run. ``network`` is the trained module itself (not part of ``to_dict``)."""

    model: str
    data: str
    model_kwargs: dict[str, Any]
    data_kwargs: dict[str, Any]
    params: int
    """Parameter elements of the trained model (tied weights counted once)."""
    epochs: int
    """Epochs asked for (``fit.history`` holds the ones that ran)."""
    seed: int
    fit: FitResult
    test: EvalResult
    checkpoint: Path | None
    seconds: float
    """Wall time of the whole run: data, model, training, test evaluation and checkpoint."""
    network: nn.Module = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "train",
            "model": self.model,
            "data": self.data,
            "model_kwargs": _plain(self.model_kwargs),
            "data_kwargs": _plain(self.data_kwargs),
            "params": self.params,
            "epochs": self.epochs,
            "steps": self.fit.steps,
            "seed": self.seed,
            "stopped_early": self.fit.stopped_early,
            "history": [m.to_dict() for m in self.fit.history],
            "test_loss": json_float(self.test.loss),
            "test_accuracy": json_float(self.test.accuracy),
            "test_perplexity": json_float(self.test.perplexity),
            "test_examples": self.test.examples,
            "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
            "seconds": self.seconds,
        }


def _plain(value: Any) -> Any:
    """Tuples as lists, so the record reads the same after a JSON round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def train_model(
    model: str,
    data: str,
    *,
    epochs: int = 1,
    out: str | Path | None = None,
    lr: float = 1e-3,
    batch_size: int = 64,
    optimizer: OptimizerSpec = "adam",
    seed: int = 0,
    progress: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    data_kwargs: dict[str, Any] | None = None,
    max_steps: int | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train zoo model (or ``pkg.module:factory``) ``model`` on data set ``data``; see the module docstring.

    ``model_kwargs`` override what the data set implies (e.g. ``{"hidden": 32}``); ``data_kwargs`` go to
    ``get_dataset`` (e.g. ``{"size": 512}`` for ``synthetic``).
    """
    from aicompute.data import get_dataset
    from aicompute.models.registry import build_for_dataset, count_params, resolve_model

    start = time.perf_counter()
    model_kwargs, data_kwargs = dict(model_kwargs or {}), dict(data_kwargs or {})
    _, spec = resolve_model(model)
    if spec is not None and spec.meta_only:
        raise AicomputeError(
            f"model {model!r} is too large to train here (it is only built on the meta device, for sizing); "
            "pick a smaller zoo model"
        )
    seed_everything(seed)
    train_set = get_dataset(data, "train", seed=seed, **data_kwargs)
    test_set = get_dataset(data, "test", seed=seed, **data_kwargs)
    seed_everything(seed)  # the initial weights depend on the seed only, not on how the data was made
    network, built_kwargs = build_for_dataset(model, train_set.info, **model_kwargs)
    fitted = fit(
        network, train_set, test_set, epochs=epochs, optimizer=optimizer, lr=lr, batch_size=batch_size,
        seed=seed, progress=progress, max_steps=max_steps, device=device,
    )
    test = replace(evaluate(network, test_set), model=model, data=data)
    checkpoint = None
    if out is not None:
        checkpoint = save_checkpoint(
            out,
            network,
            model_name=model,
            model_kwargs=built_kwargs,
            metrics={"test": test.to_dict(), "fit": fitted.to_dict()},
            dataset={"name": data, "kwargs": data_kwargs, "seed": seed, "info": train_set.info},
        )
    return TrainResult(
        model=model,
        data=data,
        model_kwargs=built_kwargs,
        data_kwargs=data_kwargs,
        params=count_params(network),
        epochs=epochs,
        seed=seed,
        fit=fitted,
        test=test,
        checkpoint=checkpoint,
        seconds=time.perf_counter() - start,
        network=network,
    )


def _check_fits(checkpoint: Checkpoint, info: DatasetInfo | None) -> None:
    """A model/data mismatch (task, input shape or dtype, classes) is an ``AicomputeError``."""
    trained = checkpoint.dataset_info
    if trained is None or info is None:
        return
    fields = ("task", "input_shape", "input_dtype", "num_classes")
    differ = [f for f in fields if getattr(trained, f) != getattr(info, f)]
    if differ:
        had = ", ".join(f"{f}={getattr(trained, f)!r}" for f in differ)
        got = ", ".join(f"{f}={getattr(info, f)!r}" for f in differ)
        raise AicomputeError(
            f"model {checkpoint.model_name!r} of {str(checkpoint.path)!r} was trained on {trained.name!r} "
            f"({had}) but data set {info.name!r} has {got}; evaluate it on a data set of the same kind"
        )


def evaluate_checkpoint(
    path: str | Path,
    data: Any = None,
    *,
    batch_size: int = 256,
    split: str = "test",
    device: str | None = None,
) -> EvalResult:
    """Load the checkpoint at ``path`` and measure its model on ``split`` of ``data``.

    ``data=None`` means the data set the checkpoint records (same keyword arguments and seed); a name
    builds that data set (reusing the recorded keyword arguments when it is the same one); a Dataset,
    DataLoader or ``(inputs, targets)`` pair is used as it is.
    """
    from aicompute.data import get_dataset

    checkpoint = load_checkpoint(path)
    record = checkpoint.dataset or {}
    if data is None:
        if not record.get("name"):
            raise AicomputeError(
                f"checkpoint {str(path)!r} does not record the data set it was trained on; pass data=<name>"
            )
        data = record["name"]
    if isinstance(data, str):
        same = record.get("name") == data
        kwargs = dict(record.get("kwargs") or {}) if same else {}
        seed = int(record.get("seed") or 0) if same else 0
        data_name, dataset = data, get_dataset(data, split, seed=seed, **kwargs)
    else:
        dataset = data
        data_name = getattr(getattr(data, "info", None), "name", None)
    _check_fits(checkpoint, getattr(dataset, "info", None))
    try:
        result = evaluate(checkpoint.model, dataset, batch_size=batch_size, device=device)
    except RuntimeError as e:
        raise AicomputeError(
            f"model {checkpoint.model_name!r} of {str(path)!r} cannot read data set {data_name!r}: "
            f"{str(e).splitlines()[0]}; evaluate it on the kind of data it was trained on"
        ) from e
    return replace(result, model=checkpoint.model_name, data=data_name)
