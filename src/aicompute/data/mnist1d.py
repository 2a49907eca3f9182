"""MNIST-1D: Greydanus's procedural 1-D digits, generated locally by the ``mnist1d`` package (no download).

Each example is a length-40 signal made from one of ten 1-D digit templates by random padding, shear,
scaling, translation and correlated plus i.i.d. noise. We use the package's default arguments
(``mnist1d.data.get_dataset_args()``: 5,000 examples, ``train_split=0.8``, ``final_seq_length=40``,
generator seed 42), so the split is the package's own: the first 4,000 for training, the last 1,000 for
testing. The package standardises the whole set to mean 0, standard deviation 1.

Generation takes a couple of seconds, so the result is cached on disk under ``cache_dir("mnist1d")`` as an
``.npz`` written atomically. Its name carries a hash of the generator arguments and the package version;
a file that cannot be read or has the wrong shapes is regenerated. Inputs are float32 ``(N, 40)``,
targets int64 labels 0–9.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import random
import zipfile
from pathlib import Path

import numpy as np

from aicompute.data.base import AicomputeDataset, SplitArrays, load_fixed_split
from aicompute.data.info import DatasetInfo
from aicompute.fileio import atomic_write, cache_dir

__all__ = ["DESCRIPTION", "LENGTH", "NUM_TRAIN", "NUM_TEST", "generator_args", "generate", "cache_path",
           "info", "load"]

LENGTH = 40
"""Signal length with the default arguments (``final_seq_length``)."""
NUM_TRAIN, NUM_TEST = 4000, 1000
"""Split sizes with the default arguments (5,000 examples, 80 % for training)."""
DESCRIPTION = "MNIST-1D procedural digit signals (mnist1d package defaults), length 40, 10 classes, 4,000/1,000"
_ARRAYS = ("x", "y", "x_test", "y_test")
_FORMAT = 1  # bump when the cached file's layout changes


def generator_args() -> dict:
    """The ``mnist1d`` package's default generator arguments, as a plain dict (the download URL dropped)."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)  # where the authors' pickle lives; it does not change what is generated
    return args


def generate() -> dict[str, np.ndarray]:
    """Run the package's generator with its default arguments: ``x`` (4000, 40) float32, ``y`` (4000,)
    int64, ``x_test`` (1000, 40), ``y_test`` (1000,).

    The generator seeds Python's and NumPy's global random state; both are restored afterwards, so calling
    this does not change any other random stream in the process.
    """
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(ObjectView(generator_args()))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {
        "x": data["x"].astype(np.float32), "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int64),
    }


def cache_path() -> Path:
    """Where the generated arrays are cached: ``cache_dir("mnist1d")/mnist1d-<hash of the arguments>.npz``."""
    key = {"format": _FORMAT, "package": importlib.metadata.version("mnist1d"), "args": generator_args()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir("mnist1d") / f"mnist1d-{digest}.npz"


def _read(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or ``None`` if the file is missing, unreadable or not what :func:`generate` writes."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in _ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    x, y, x_test, y_test = (arrays[name] for name in _ARRAYS)
    ok = (
        x.dtype == x_test.dtype == np.float32 and y.dtype == y_test.dtype == np.int64
        and x.ndim == x_test.ndim == 2 and x.shape[1] == x_test.shape[1]
        and y.shape == x.shape[:1] and y_test.shape == x_test.shape[:1]
    )
    return arrays if ok else None


@functools.lru_cache(maxsize=4)
def _arrays(path_str: str) -> dict[str, np.ndarray]:
    """The arrays cached at ``path_str``, generated (and written atomically) when missing or corrupt.

    Keyed by the path so that a different cache folder (``$AICOMPUTE_CACHE``) is read afresh.
    """
    path = Path(path_str)
    arrays = _read(path)
    if arrays is None:
        arrays = generate()
        atomic_write(path, lambda f: np.savez(f, **arrays))
    return arrays


def info() -> DatasetInfo:
    """The data set's shape and meaning (no data is generated)."""
    return DatasetInfo(name="mnist1d", task="classification", input_shape=(LENGTH,), num_classes=10,
                       input_dtype="float32", kind="signal")


def load(split: str = "train", *, seed: int = 0) -> AicomputeDataset:
    """The ``split`` ("train", "test" or "val" = "test") as a data set; ``seed`` is ignored (fixed split)."""
    return load_fixed_split(split, _splits, info())


def _splits() -> SplitArrays:
    """The cached arrays of the current cache folder, by split."""
    arrays = _arrays(str(cache_path()))
    return {"train": (arrays["x"], arrays["y"]), "test": (arrays["x_test"], arrays["y_test"])}
