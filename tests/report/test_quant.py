"""The quantization chapter renders a tour record."""

from aicompute.compress.formats import format_table
from aicompute.report.html import render_report
from aicompute.report.quant import quant_chapter

RECEIPT = {"float_bytes": 4000, "quant_bytes": 1000, "size_ratio": 4.0, "ort_float_ms": 2.0, "ort_quant_ms": 1.0,
           "speedup": 2.0, "integer_ops": {"QLinearConv": 2}, "warnings": []}
TOUR = {
    "formats": format_table(), "model": "lenet5", "data": "mnist", "float_accuracy": 0.95,
    "sweep": [{"label": "W8", "bits": 8, "act_bits": None, "accuracy": 0.95, "drop_pt": 0.0},
              {"label": "W2", "bits": 2, "act_bits": None, "accuracy": 0.90, "drop_pt": 5.0},
              {"label": "W4A4", "bits": 4, "act_bits": 4, "accuracy": 0.93, "drop_pt": 2.0}],
    "receipts": [{"model": "lenet5", **RECEIPT}, {"model": "resnet18", **RECEIPT, "warnings": ["not faster"]}],
}


def test_chapter_renders_formats_sweep_plot_and_receipts():
    page = render_report("t", [quant_chapter(TOUR)])
    assert "W4A4" in page and "fp8_e4m3" in page and "QLinearConv 2" in page and "not faster" in page
    assert "65504" in page.replace(",", "").replace("6.55e+04", "65504")
    assert page.count("data:image/png;base64,") == 1
