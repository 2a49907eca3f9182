"""Plots for the report as PNG bytes.

Figures are drawn on matplotlib's Agg canvas directly (``matplotlib.figure.Figure``), never through
``pyplot``: importing aicompute does not switch the process's matplotlib backend, so notebooks and GUIs
keep theirs, and no global figure registry fills up.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["new_figure", "fig_to_png", "line_plot", "bar_plot"]


def new_figure(width: float = 6.0, height: float = 3.6) -> tuple[Figure, "matplotlib.axes.Axes"]:  # noqa: F821
    """A figure with one axes, on an Agg canvas."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def fig_to_png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
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
    fig, ax = new_figure()
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
    fig, ax = new_figure(max(6.0, 0.45 * len(labels)))
    ax.bar(range(len(labels)), list(values), color="#4a7ab5")
    ax.set_xticks(range(len(labels)), list(labels), rotation=60, ha="right")
    ax.set(title=title, ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, axis="y", alpha=0.3)
    return fig_to_png(fig)
