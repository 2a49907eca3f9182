"""Training, evaluation and checkpoints.

* :func:`fit` — the training loop (optimizer by name, callbacks, progress bar, NaN guard, seeding);
* :func:`evaluate` — loss / accuracy (and perplexity for language models) in eval mode;
* :func:`save_checkpoint` / :func:`load_checkpoint` — weights plus the recipe to rebuild the model, written
  atomically and loaded weights-only (a checkpoint can never run code);
* :func:`train_model` / :func:`evaluate_checkpoint` — the same by model and data set *names*, for the CLI;
* :class:`Callback`, :class:`LambdaCallback`, :class:`EarlyStopping` — hooks for pruning, QAT, distillation;
* :func:`seed_everything` — with the determinism guarantee of :mod:`aicompute.train.seeding`.
"""

from aicompute.train.api import TrainResult, evaluate_checkpoint, train_model
from aicompute.train.callbacks import HOOKS, Callback, EarlyStopping, LambdaCallback, TrainState
from aicompute.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from aicompute.train.evaluate import evaluate
from aicompute.train.loop import fit
from aicompute.train.metrics import default_loss
from aicompute.train.optim import OPTIMIZERS, make_optimizer
from aicompute.train.results import METRIC_NAMES, EpochMetrics, EvalResult, FitResult
from aicompute.train.seeding import make_generator, seed_everything

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EpochMetrics",
    "EvalResult",
    "FitResult",
    "HOOKS",
    "LambdaCallback",
    "METRIC_NAMES",
    "OPTIMIZERS",
    "TrainResult",
    "TrainState",
    "default_loss",
    "evaluate",
    "evaluate_checkpoint",
    "fit",
    "load_checkpoint",
    "make_generator",
    "make_optimizer",
    "save_checkpoint",
    "seed_everything",
    "train_model",
]
