"""``aicompute demo`` — the product's tour: compute every chapter's records now, write the report.

Each chapter is a *step*: a function that computes a result record (measured or computed now, never
copied) and a function that turns the record into a report chapter. Later capabilities add their steps
to :func:`default_steps`. Every record is also written as JSON beside ``report.html``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from aicompute.fileio import atomic_write_text
from aicompute.report.html import Chapter, write_report

__all__ = ["Step", "default_steps", "DemoResult", "run_demo"]


@dataclass(frozen=True)
class Step:
    key: str
    """File stem of the record (``<key>.json``) and its key in ``DemoResult.records``."""
    title: str
    compute: Callable[[], Any]
    """Returns a result with ``to_dict()`` or a JSON-safe dict."""
    chapter: Callable[[dict[str, Any]], Chapter]


def _zoo() -> Any:
    from aicompute.models import zoo_table

    return zoo_table()


def _train_lenet5() -> Any:
    from aicompute.train import train_model

    return train_model("lenet5", "mnist", epochs=8, lr=1e-3, batch_size=64, seed=0)


def _perceptron() -> Any:
    from aicompute.demo.foundation import perceptron_lesson

    return perceptron_lesson()


def _recurrent() -> Any:
    from aicompute.demo.foundation import recurrent_check

    return recurrent_check()


def _profile() -> Any:
    from aicompute.demo.profile import profile_tour

    return profile_tour()


def _design() -> Any:
    from aicompute.profile.cnn_table import cnn_table
    from aicompute.profile.design import design_comparisons

    return {"kind": "design", "comparisons": design_comparisons().to_dict(), "cnn": cnn_table().to_dict()}


def _quant() -> Any:
    from aicompute.demo.quant import quant_tour

    return quant_tour()


def _parallel() -> Any:
    from aicompute.demo.parallel import parallel_tour

    return parallel_tour()


def default_steps() -> list[Step]:
    """The tour, chapter by chapter; each capability appends its steps here."""
    from aicompute.report import foundation as ch
    from aicompute.report.profile import design_chapter, profile_chapter
    from aicompute.report.parallel import parallel_chapter
    from aicompute.report.quant import quant_chapter

    return [
        Step("zoo", "model zoo", _zoo, ch.zoo_chapter),
        Step("train_lenet5_mnist", "LeNet-5 on MNIST", _train_lenet5, ch.training_chapter),
        Step("perceptron", "perceptron and XOR", _perceptron, ch.perceptron_chapter),
        Step("recurrent", "recurrent cells", _recurrent, ch.recurrent_chapter),
        Step("profile", "what models compute", _profile, profile_chapter),
        Step("design", "lightweight design and classic CNNs", _design, design_chapter),
        Step("quant", "quantization", _quant, quant_chapter),
        Step("parallel", "distributed", _parallel, parallel_chapter),
    ]


@dataclass
class DemoResult:
    out_dir: Path
    report: Path
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "demo",
            "out_dir": str(self.out_dir),
            "report": str(self.report),
            "seconds": self.seconds,
            "records": sorted(self.records),
        }


def run_demo(
    out: str | Path = "aicompute-demo", *, steps: list[Step] | None = None, progress: bool = False
) -> DemoResult:
    """Run every step, write ``<out>/<key>.json`` for each record and ``<out>/report.html``."""
    out_dir = Path(out)
    steps = default_steps() if steps is None else steps
    result = DemoResult(out_dir=out_dir, report=out_dir / "report.html")
    chapters: list[Chapter] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("demo", total=len(steps))
        for step in steps:
            bar.update(task, description=f"demo: {step.title}")
            t0 = time.perf_counter()
            value = step.compute()
            record = value.to_dict() if hasattr(value, "to_dict") else value
            result.seconds[step.key] = round(time.perf_counter() - t0, 3)
            result.records[step.key] = record
            atomic_write_text(out_dir / f"{step.key}.json", json.dumps(record, indent=2, default=str))
            chapters.append(step.chapter(record))
            bar.advance(task)
    write_report(result.report, "aicompute demo", chapters,
                 steps=", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
    return result
