from aicompute.report.html import render_report
from aicompute.report.parallel import parallel_chapter

ROW = {"nbytes": 4096, "time_ms": 0.5, "busbw_gbps": 0.01, "model_ms": 0.4, "bytes_sent": 4096}
TOUR = {
    "nbytes": 1 << 20,
    "traffic": [{"devices": 4, "ring_bytes_per_rank": 1.5 * 2**20, "ring_steps": 6, "ring_total_bytes": 6 * 2**20,
                 "ps_server_bytes": 6 * 2**20}],
    "comm": {"world_size": 2, "backend": "gloo", "config": {"repeats": 3},
             "rows": [{"algorithm": "ring", **ROW}, {"algorithm": "backend", **ROW, "model_ms": None}]},
    "training": [{"mode": "ddp", "world_size": 2, "steps": 20, "final_loss": 0.5, "max_loss_diff": 1e-7,
                  "bytes_sent": 4000, "bytes_measured": False, "test_accuracy": 0.9, "wall_s": 3.0}],
}


def test_chapter_renders_traffic_and_measurements():
    page = render_report("t", [parallel_chapter(TOUR)])
    assert "parameter server" in page and "ring" in page and "gloo" in page
    assert "4,000 (modelled)" in page and "single process" in page
    assert page.count("data:image/png;base64,") == 1
