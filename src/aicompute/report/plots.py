"""Plots for the report, drawn with matplotlib's Agg backend and returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: the report embeds PNGs, no display is ever needed
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["fig_to_png", "line_plot", "bar_plot"]


def fig_to_png(fig: "plt.Figure", dpi: int = 110) -> bytes:
    """Render and close ``fig``."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
) -> bytes:
    """One line per ``name -> (xs, ys)``."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker="o", markersize=3, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return fig_to_png(fig)


def bar_plot(
    labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str, logy: bool = False
) -> bytes:
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(labels)), 3.6))
    ax.bar(range(len(labels)), list(values), color="#4a7ab5")
    ax.set_xticks(range(len(labels)), list(labels), rotation=60, ha="right")
    ax.set(title=title, ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, axis="y", alpha=0.3)
    return fig_to_png(fig)
