"""Chapters of the foundation: the zoo, a training run, the perceptron lesson, the recurrent cells.

Each function reads result records (``to_dict()`` output) and returns a :class:`Chapter`.
"""

from __future__ import annotations

from typing import Any

from aicompute.report.html import Chapter
from aicompute.report.plots import bar_plot, line_plot

__all__ = ["zoo_chapter", "training_chapter", "perceptron_chapter", "recurrent_chapter"]


def zoo_chapter(zoo: dict[str, Any]) -> Chapter:
    rows = zoo["models"]
    ch = Chapter("Model zoo")
    ch.text(
        "Every zoo model at its reference configuration, built on the meta device (no weight memory). "
        f"Convention: {zoo['convention']}."
    )
    ch.table(
        ["model", "family", "params", "default input", "description"],
        [(r["name"], r["family"], r["params"], r["input_shape"], r["description"]) for r in rows],
    )
    ch.figure(
        bar_plot([r["name"] for r in rows], [max(r["params"], 1) for r in rows],
                 title="Parameters per zoo model", ylabel="parameters (log scale)", logy=True),
        "Parameter counts span eight orders of magnitude, from the perceptron to GPT-3.",
    )
    return ch


def training_chapter(run: dict[str, Any]) -> Chapter:
    """A ``train`` record: history table and accuracy curves (perplexity for language models)."""
    hist = run["history"]
    epochs = list(range(1, len(hist) + 1))
    ch = Chapter(f"Training {run['model']} on {run['data']}")
    if run.get("test_accuracy") is not None:
        outcome = f"test accuracy {100 * run['test_accuracy']:.2f}%"
    else:
        outcome = "test accuracy not measured"
    if run.get("test_perplexity") is not None:
        outcome += f", perplexity {run['test_perplexity']:.3f}"
    ch.text(
        f"{run['model']} ({run['params']:,} parameters) trained for {len(hist)} epoch(s) on the {run['data']} "
        f"training split; {outcome} on the held-out split, measured now."
    )
    ch.table(
        ["epoch", "train loss", "train accuracy", "test loss", "test accuracy", "seconds"],
        [(e, h["train_loss"], h["train_accuracy"], h.get("val_loss"), h.get("val_accuracy"), h["seconds"])
         for e, h in zip(epochs, hist)],
    )
    series = {name: (epochs, [h[key] for h in hist]) for name, key in
              (("train", "train_accuracy"), ("test", "val_accuracy"))
              if hist and all(h.get(key) is not None for h in hist)}
    if series:
        ch.figure(line_plot(series, title="Accuracy per epoch", xlabel="epoch", ylabel="accuracy"))
    return ch


def perceptron_chapter(lesson: dict[str, Any]) -> Chapter:
    ch = Chapter("The perceptron and XOR")
    ch.text(
        "Rosenblatt's mistake-driven rule (w ← w + ηyx, b ← b + ηy on each mistake) converges on any linearly "
        "separable set and never on XOR, which no single line separates."
    )
    ch.table(
        ["problem", "linearly separable", "converged", "epochs run", "mistakes in last epoch", "w", "b"],
        [(p["name"], p["separable"], p["converged"], len(p["mistakes"]), p["mistakes"][-1],
          ", ".join(f"{w:.2f}" for w in p["weights"]), p["bias"]) for p in lesson["problems"]],
    )
    ch.figure(
        line_plot({p["name"]: (range(1, len(p["mistakes"]) + 1), p["mistakes"]) for p in lesson["problems"]},
                  title="Mistakes per epoch", xlabel="epoch", ylabel="mistakes"),
    )
    return ch


def recurrent_chapter(check: dict[str, Any]) -> Chapter:
    ch = Chapter("Recurrent cells from their equations")
    ch.text(
        "RNN, LSTM and GRU layers written from the textbook equations, given the weights of torch's fused "
        f"layers, on a batch of {check['batch']} sequences of {check['steps']} steps "
        f"({check['input_size']} → {check['hidden_size']}). Times are medians of {check['repeats']} runs on "
        f"{check['threads']} thread(s); ours runs one step at a time in Python, torch's layers are fused kernels."
    )
    ch.table(
        ["cell", "max |ours − torch|", "forward ms/step: ours", "torch", "ours ÷ torch",
         "forward + backward ms/step: ours", "torch", "ours ÷ torch"],
        [(c["cell"], c["max_abs_diff"], c["ours_ms_per_step"], c["torch_ms_per_step"], c["ratio"],
          c["ours_train_ms_per_step"], c["torch_train_ms_per_step"], c["train_ratio"]) for c in check["cells"]],
    )
    return ch
