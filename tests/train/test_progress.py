import io

import torch
from rich.console import Console

from aicompute.train.loop import fit
from aicompute.train.progress import FitProgress, format_epoch
from aicompute.train.results import EpochMetrics


def _metrics(**kw) -> EpochMetrics:
    base = dict(epoch=0, train_loss=0.41234, train_accuracy=0.875, val_loss=0.381, val_accuracy=0.882,
                steps=3, seconds=2.1)
    return EpochMetrics(**{**base, **kw})


def test_epoch_line_shows_loss_accuracy_and_time():
    assert format_epoch(_metrics(), 3) == (
        "epoch 1/3  loss 0.4123  acc 87.50%  val loss 0.3810  val acc 88.20%  2.10 s"
    )


def test_epoch_line_leaves_out_what_was_not_measured():
    line = format_epoch(_metrics(epoch=4, train_accuracy=None, val_loss=None, val_accuracy=None), 5)
    assert line == "epoch 5/5  loss 0.4123  2.10 s"


def test_enabled_display_prints_one_line_per_epoch():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    with FitProgress(enabled=True, epochs=2, console=console) as bar:
        for epoch in range(2):
            bar.start_epoch(epoch, 3)
            for _ in range(3):
                bar.advance(0.5)
            bar.end_epoch(_metrics(epoch=epoch))
    lines = out.getvalue().strip().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]


def test_disabled_display_writes_nothing():
    out = io.StringIO()
    with FitProgress(enabled=False, epochs=1, console=Console(file=out)) as bar:
        bar.start_epoch(0, 2)
        bar.advance(1.0)
        bar.end_epoch(_metrics())
    assert out.getvalue() == ""


def _xy():
    return torch.randn(32, 4), torch.randint(0, 2, (32,))


def test_fit_is_silent_by_default(capfd):
    fit(torch.nn.Linear(4, 2), _xy(), _xy(), epochs=2)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_fit_progress_goes_to_stderr_only(capfd):
    fit(torch.nn.Linear(4, 2), _xy(), _xy(), epochs=2, progress=True)
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "epoch 1/2" in captured.err and "epoch 2/2" in captured.err and "val loss" in captured.err
