"""What ``aicompute train`` and ``aicompute evaluate`` do, as library calls taking names.

``train_model("mlp", "digits", epochs=3, out="mlp.pt")`` builds the data set's train and test splits, builds
the model fitted to the data set (``build_for_dataset``: input shape, channels, class count or vocabulary),
fits it with the test split as validation data, measures it on the test split and, with ``out``, writes a
checkpoint that records the model, its keyword arguments and the data set (name, keyword arguments, seed
and ``DatasetInfo``), so that ``evaluate_checkpoint("mlp.pt")`` can rebuild both and measure again.

One ``seed`` drives everything: the data sets are built with it, the model is initialised with every global
generator seeded by it, and ``fit`` shuffles and runs with it — the same call gives the same numbers. Each
of these steps runs inside :func:`~aicompute.train.seeding.seeded`, so the caller's random streams are left
as they were. Neither function prints anything unless ``progress=True``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from aicompute.errors import AicomputeError
from aicompute.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from aicompute.train.compat import check_fits, data_info
from aicompute.train.evaluate import evaluate
from aicompute.train.loop import fit
from aicompute.train.optim import OptimizerSpec
from aicompute.train.results import EvalResult, FitResult, json_safe
from aicompute.train.seeding import seeded

__all__ = ["TrainResult", "train_model", "evaluate_checkpoint", "checkpoint_and_data"]


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
        return json_safe({
            "kind": "train",
            "model": self.model,
            "data": self.data,
            "model_kwargs": self.model_kwargs,
            "data_kwargs": self.data_kwargs,
            "params": self.params,
            "epochs": self.epochs,
            "steps": self.fit.steps,
            "seed": self.seed,
            "stopped_early": self.fit.stopped_early,
            "history": [m.to_dict() for m in self.fit.history],
            "test_loss": self.test.loss,
            "test_accuracy": self.test.accuracy,
            "test_perplexity": self.test.perplexity,
            "test_examples": self.test.examples,
            "checkpoint": self.checkpoint,
            "seconds": self.seconds,
        })


def train_model(
    model: str,
    data: str,
    *,
    epochs: int = 1,
    out: str | Path | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    optimizer: OptimizerSpec = "adam",
    seed: int = 0,
    progress: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    data_kwargs: dict[str, Any] | None = None,
    max_steps: int | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train zoo model (or ``pkg.module:factory``) ``model`` on data set ``data``; see the module docstring.

    ``model_kwargs`` override what the data set implies (e.g. ``{"hidden": 32}``); ``data_kwargs`` go to
    ``get_dataset`` (e.g. ``{"size": 512}`` for ``synthetic``). ``progress=True`` shows ``fit``'s progress
    display on stderr.
    """
    from aicompute.data import get_dataset
    from aicompute.models.registry import build_for_dataset, count_params, resolve_model

    start = time.perf_counter()
    if out is not None and Path(out).is_dir():  # fail before training, not after
        raise AicomputeError(
            f"out {str(out)!r} is a folder; pass the checkpoint's file path, e.g. {str(Path(out) / 'model.pt')!r}"
        )
    model_kwargs, data_kwargs = dict(model_kwargs or {}), dict(data_kwargs or {})
    _, spec = resolve_model(model)
    if spec is not None and spec.meta_only:
        raise AicomputeError(
            f"model {model!r} is too large to train here (it is only built on the meta device, for sizing); "
            "pick a smaller zoo model"
        )
    with seeded(seed):
        train_set = get_dataset(data, "train", seed=seed, **data_kwargs)
        test_set = get_dataset(data, "test", seed=seed, **data_kwargs)
    with seeded(seed):  # the initial weights depend on the seed only, not on how the data was made
        network, built_kwargs = build_for_dataset(model, train_set.info, **model_kwargs)
    fitted = fit(
        network, train_set, test_set, epochs=epochs, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
        batch_size=batch_size,
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


def evaluate_checkpoint(
    path: str | Path,
    data: Any = None,
    *,
    batch_size: int = 256,
    split: str = "test",
    device: str | None = None,
    allow_import: bool = False,
) -> EvalResult:
    """Load the checkpoint at ``path`` and measure its model on ``split`` of ``data``.

    ``data=None`` means the data set the checkpoint records (same keyword arguments and seed); a name
    builds that data set (reusing the recorded keyword arguments when it is the same one); a Dataset,
    DataLoader or ``(inputs, targets)`` pair is used as it is. Before evaluating, the model and the data are
    checked against each other (:func:`aicompute.train.compat.check_fits`: task, input shape and dtype,
    classes or vocabulary); a mismatch is an ``AicomputeError``, and errors raised while evaluating
    propagate unchanged. ``allow_import`` is :func:`~aicompute.train.checkpoint.load_checkpoint`'s: a
    checkpoint of a ``pkg.module:factory`` model loads only with ``allow_import=True``, for trusted files.
    """
    checkpoint, dataset, data_name = checkpoint_and_data(path, data, split=split, allow_import=allow_import)
    result = evaluate(checkpoint.model, dataset, batch_size=batch_size, device=device)
    return replace(result, model=checkpoint.model_name, data=data_name)


def checkpoint_and_data(
    path: str | Path, data: Any = None, *, split: str = "test", allow_import: bool = False
) -> tuple[Checkpoint, Any, str | None]:
    """The checkpoint at ``path``, the ``split`` of ``data`` it is measured on, and that data set's name.

    ``data`` as in :func:`evaluate_checkpoint`; the two are checked to fit each other.
    """
    from aicompute.data import get_dataset

    checkpoint = load_checkpoint(path, allow_import=allow_import)
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
        info = data_info(data)
        data_name = None if info is None else info.name
    check_fits(checkpoint, dataset)
    return checkpoint, dataset, data_name
