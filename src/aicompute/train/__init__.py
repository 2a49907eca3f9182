"""Training, evaluation and checkpoints.

* :func:`fit` — the training loop (optimizer by name, callbacks, optional progress bar, NaN guard, seeding
  that leaves the caller's random streams as they were);
* :func:`evaluate` — loss / accuracy (and perplexity for language models) in eval mode;
* :func:`save_checkpoint` / :func:`load_checkpoint` — weights plus the recipe to rebuild the model, written
  atomically and read weights-only (reading a file never runs code; rebuilding a ``pkg.module:factory``
  model imports and calls it, so such a checkpoint loads only with ``allow_import=True``);
* :func:`train_model` / :func:`evaluate_checkpoint` — the same by model and data set *names*, for the CLI;
* :class:`Callback`, :class:`LambdaCallback`, :class:`EarlyStopping` — hooks for pruning, QAT, distillation;
* :func:`seeded` / :func:`seed_everything` — with the determinism guarantee of :mod:`aicompute.train.seeding`.

Nothing here prints unless asked (``progress=True``).
"""

from aicompute.train.api import TrainResult, checkpoint_and_data, evaluate_checkpoint, train_model
from aicompute.train.callbacks import HOOKS, Callback, EarlyStopping, LambdaCallback, TrainState
from aicompute.train.checkpoint import Checkpoint, is_imported_model, load_checkpoint, save_checkpoint
from aicompute.train.evaluate import evaluate
from aicompute.train.loop import fit
from aicompute.train.metrics import LossFn, default_loss
from aicompute.train.optim import OPTIMIZERS, make_optimizer
from aicompute.train.results import METRIC_NAMES, EpochMetrics, EvalResult, FitResult, json_safe
from aicompute.train.seeding import make_generator, seed_everything, seeded

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EpochMetrics",
    "EvalResult",
    "FitResult",
    "HOOKS",
    "LambdaCallback",
    "LossFn",
    "METRIC_NAMES",
    "OPTIMIZERS",
    "TrainResult",
    "TrainState",
    "default_loss",
    "evaluate",
    "evaluate_checkpoint",
    "checkpoint_and_data",
    "fit",
    "is_imported_model",
    "json_safe",
    "load_checkpoint",
    "make_generator",
    "make_optimizer",
    "save_checkpoint",
    "seed_everything",
    "seeded",
    "train_model",
]
