"""The roofline PNG: drawn from a RooflineResult record, with the roof, the ridge and a point per row."""

import pytest

from aicompute.errors import AicomputeError
from aicompute.profile.hardware import get_hardware
from aicompute.profile.records import OpRecord
from aicompute.profile.roofline import roofline
from aicompute.report import roofline as roofline_report
from aicompute.report.roofline import roofline_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rec(op, category, flops, moved, module, dtype="bfloat16"):
    return OpRecord(op=op, module=module, phase="forward", category=category, dtype=dtype, macs=0, flops=flops,
                    act_read=moved, weight_read=0, written=0)


RECORDS = [
    rec("aten.mm", "matmul", 2 * 4096**3, 3 * 2 * 4096**2, "blocks.0.mlp"),  # intensity 1365: compute-bound
    rec("aten.add", "elementwise", 4096**2, 3 * 2 * 4096**2, "blocks.0.mlp"),  # 1/6 FLOP/byte: memory-bound
    rec("aten._softmax", "softmax", 5 * 4096**2, 4 * 4096**2, "blocks.0.attn"),
    rec("aten.view_like", "uncounted", None, 2**20, "blocks.1"),  # no FLOPs: not on a log axis
]


@pytest.fixture
def record():
    return roofline(RECORDS, get_hardware("h100"), depth=2).to_dict()


def test_png_by_op_and_by_module(record):
    for by in ("op", "module"):
        png = roofline_png(record, by=by)
        assert png.startswith(PNG_MAGIC) and len(png) > 5000


def test_points_roof_and_ridge_are_drawn(record, monkeypatch):
    """Intercept the figure before it is rendered and look at what is on its axes."""
    drawn = {}

    def capture(fig, dpi=110):
        drawn["ax"] = fig.axes[0]
        return PNG_MAGIC

    monkeypatch.setattr(roofline_report, "fig_to_png", capture)
    roofline_png(record, by="op")
    ax = drawn["ax"]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    points = ax.collections[0].get_offsets()
    assert len(points) == 3  # the uncounted op has no FLOPs and is left out (the title says so)
    mm = next(r for r in record["by_op"] if r["name"] == "aten.mm")
    assert (mm["intensity_flops_per_byte"], mm["attainable_flops_per_s"]) in [tuple(p) for p in points]
    assert mm["attainable_flops_per_s"] == pytest.approx(989.4e12)  # on the bf16 tensor roof
    sizes = ax.collections[0].get_sizes()
    assert sizes.max() == sizes[[tuple(p) for p in points].index(
        (mm["intensity_flops_per_byte"], mm["attainable_flops_per_s"]))]  # most time, biggest point
    assert "1 ops with no FLOPs not shown" in ax.get_title()
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(label.startswith("memory: 3,350 GB/s") for label in labels)
    assert any(label.startswith("tensor bfloat16: 989 TFLOP/s") for label in labels)
    ridges = [t.get_text() for t in ax.texts if t.get_text().startswith("ridge")]
    assert "ridge 295" in ridges  # 989.4 T / 3.35 TB/s
    assert "mm" in [t.get_text() for t in ax.texts]


def test_bad_grouping_is_an_error(record):
    with pytest.raises(AicomputeError, match="by 'op' or by 'module'"):
        roofline_png(record, by="layer")
