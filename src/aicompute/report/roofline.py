"""The roofline figure, drawn from a ``RooflineResult.to_dict()`` record.

Log-log axes: arithmetic intensity (FLOPs per byte) against FLOP/s. The roof is the bandwidth slope
(FLOP/s = intensity × bandwidth) capped by one flat line per peak the ops were priced at (tensor and vector
units, per dtype), with each ridge point marked. Every op (or module) is a point at (its intensity, its
attainable FLOP/s), its area proportional to its share of the estimated time, coloured by its bound; the
ones with the most time are labelled. Rows with no FLOPs (uncounted or pure data movement) have no place
on a log axis; the title says how many were left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from aicompute.errors import AicomputeError
from aicompute.report.plots import fig_to_png, new_figure

__all__ = ["roofline_png"]

_BOUND_COLOURS = {"compute": "#c0504d", "memory": "#4a7ab5"}
_LABEL_OFFSETS = ((6, 6), (6, -11), (-6, 6), (-6, -11))
"""Label positions around a point (in points), taken in turn so neighbouring labels do not overlap."""


def roofline_png(record: Mapping[str, Any], *, by: str = "op", label_top: int = 5) -> bytes:
    """PNG bytes of the roofline of ``record`` (a ``RooflineResult.to_dict()``), one point per op
    (``by="op"``) or per module (``by="module"``); the ``label_top`` points with the most time are named."""
    if by not in ("op", "module"):
        raise AicomputeError(f"a roofline plot is by 'op' or by 'module', got {by!r}")
    rows = record["by_op" if by == "op" else "by_module"]
    bandwidth = float(record["bandwidth_bytes_per_s"])
    roofs = record["roofs"] or _fallback_roofs(record["hardware"], bandwidth)
    points = [r for r in rows if r["intensity_flops_per_byte"] > 0 and r["attainable_flops_per_s"] > 0]

    xs = [r["intensity_flops_per_byte"] for r in points] + [roof["ridge_flops_per_byte"] for roof in roofs]
    x_lo, x_hi = min(xs) / 8, max(xs) * 8
    fig, ax = new_figure(7.0, 4.6)
    _draw_roofs(ax, roofs, bandwidth, x_lo, x_hi)
    if points:
        ax.scatter(
            [r["intensity_flops_per_byte"] for r in points],
            [r["attainable_flops_per_s"] for r in points],
            s=[20 + 600 * r["time_share"] for r in points],
            c=[_BOUND_COLOURS.get(r["bound"], "#777777") for r in points],
            alpha=0.75, edgecolors="black", linewidths=0.5, zorder=3,
        )
        for i, r in enumerate(sorted(points, key=lambda r: -r["time_share"])[:label_top]):
            dx, dy = _LABEL_OFFSETS[i % len(_LABEL_OFFSETS)]
            ax.annotate(_label(r, by), (r["intensity_flops_per_byte"], r["attainable_flops_per_s"]),
                        xytext=(dx, dy), textcoords="offset points", fontsize=7, ha="left" if dx > 0 else "right")
    for bound, colour in _BOUND_COLOURS.items():  # legend entries for the point colours
        ax.scatter([], [], c=colour, s=30, label=f"{bound}-bound {by}s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    left_out = len(rows) - len(points)
    hw = record["hardware"]["name"]
    title = f"Roofline on {hw}: {record['totals']['latency_ms']:.3g} ms estimated"
    if left_out:
        title += f"\n({left_out} {by}s with no FLOPs not shown)"
    ax.set(title=title, xlabel="arithmetic intensity (FLOP/byte)", ylabel="attainable FLOP/s")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    return fig_to_png(fig)


def _draw_roofs(ax: Any, roofs: list[Mapping[str, Any]], bandwidth: float, x_lo: float, x_hi: float) -> None:
    """The bandwidth slope up to the highest ridge, then each peak flat from its own ridge, ridge marked.
    Roofs with the same peak (a GPU's FP32 tensor and vector rates) are drawn once, with both names."""
    top_ridge = max(roof["ridge_flops_per_byte"] for roof in roofs)
    ax.plot([x_lo, top_ridge], [x_lo * bandwidth, top_ridge * bandwidth], color="black", linewidth=1.5,
            label=f"memory: {bandwidth / 1e9:,.0f} GB/s")
    merged: dict[float, list[Mapping[str, Any]]] = {}
    for roof in roofs:
        merged.setdefault(roof["peak_flops_per_s"], []).append(roof)
    for peak, same in merged.items():
        ridge = same[0]["ridge_flops_per_byte"]
        name = " = ".join(f"{roof['unit']} {roof['dtype']}" for roof in same)
        style = "-" if any(roof["unit"] == "tensor" for roof in same) else "--"
        ax.plot([ridge, x_hi], [peak, peak], color="black", linestyle=style, linewidth=1.2,
                label=f"{name}: {_flops(peak)}")
        ax.plot([ridge], [peak], marker="o", markersize=5, markerfacecolor="white", color="black", zorder=4)
        ax.annotate(f"ridge {ridge:.3g}", (ridge, peak), xytext=(-4, 6), textcoords="offset points",
                    fontsize=7, ha="right")


def _fallback_roofs(hw: Mapping[str, Any], bandwidth: float) -> list[dict[str, Any]]:
    """When no op was priced against a peak: the spec's own tensor peaks."""
    return [{"dtype": dtype, "unit": "tensor", "peak_flops_per_s": peak, "ridge_flops_per_byte": peak / bandwidth}
            for dtype, peak in hw["tensor_flops"].items()]


def _label(row: Mapping[str, Any], by: str) -> str:
    name = row["name"] or "(model)"
    if by == "op":
        name = name.removeprefix("aten.")
    return name if len(name) <= 28 else "…" + name[-27:]


def _flops(rate: float) -> str:
    """``9.894e14`` → ``"989 TFLOP/s"``."""
    exponent = min(max(int(math.log10(rate) // 3), 0), 5) if rate > 0 else 0
    prefix = ["", "k", "M", "G", "T", "P"][exponent]
    return f"{rate / 10 ** (3 * exponent):.3g} {prefix}FLOP/s"
