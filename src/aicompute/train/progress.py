"""The progress display of ``fit``: a rich progress bar per epoch and one summary line per finished epoch.

It writes to **stderr**, so a command's ``--json`` output on stdout stays clean; the bar itself is transient
(it disappears when the epoch ends, and is not drawn at all when stderr is not a terminal), the summary
lines stay. ``FitProgress(enabled=False)`` does nothing at all, which is how ``fit(progress=False)``
keeps the library silent.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from aicompute.train.results import EpochMetrics

__all__ = ["FitProgress", "format_epoch"]


def _percent(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def format_epoch(metrics: EpochMetrics, epochs: int) -> str:
    """One line: ``epoch 1/3  loss 0.4123  acc 87.50%  val loss 0.3810  val acc 88.20%  2.10 s``."""
    parts = [f"epoch {metrics.epoch + 1}/{epochs}", f"loss {metrics.train_loss:.4f}"]
    if metrics.train_accuracy is not None:
        parts.append(f"acc {_percent(metrics.train_accuracy)}")
    if metrics.val_loss is not None:
        parts.append(f"val loss {metrics.val_loss:.4f}")
    if metrics.val_accuracy is not None:
        parts.append(f"val acc {_percent(metrics.val_accuracy)}")
    parts.append(f"{metrics.seconds:.2f} s")
    return "  ".join(parts)


class FitProgress:
    """Context manager driving the display: ``start_epoch``, ``advance`` per step, ``end_epoch``."""

    def __init__(self, *, enabled: bool, epochs: int, console: Console | None = None) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> FitProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                console=self._console or Console(stderr=True),
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def start_epoch(self, epoch: int, total_steps: int | None) -> None:
        """Begin the bar of epoch ``epoch`` (0-based); ``total_steps`` is ``None`` when unknown."""
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=total_steps, loss="–")

    def advance(self, loss: float) -> None:
        """One step done, with that step's loss."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, loss=f"{loss:.4f}")

    def end_epoch(self, metrics: EpochMetrics) -> None:
        """Replace the bar by the epoch's summary line."""
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self._progress.console.print(Text(format_epoch(metrics, self.epochs)))
