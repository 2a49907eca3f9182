import base64
import re

from aicompute.report.html import Chapter, fmt, render_report, table_html, write_report


def test_fmt_units():
    assert fmt(61100840) == "61,100,840"
    assert fmt(0.97123456) == "0.9712"
    assert fmt(None) == "—"
    assert fmt((1, 28, 28)) == "1×28×28"
    assert fmt(True) == "True"


def test_table_escapes_cells():
    html = table_html(["a", "b"], [("<script>", 1)], caption="t&c")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html and "t&amp;c" in html
    assert html.count("<tr>") == 2
    assert '<td>&lt;script&gt;</td><td class=num>1</td>' in html  # text left, numbers right


def test_report_is_self_contained_with_toc(tmp_path):
    png = b"\x89PNG\r\n\x1a\nfake"
    ch = Chapter("Model zoo").table(["model", "params"], [("alexnet", 61100840)]).figure(png, "plot")
    ch2 = Chapter("Training").text("LeNet-5 on mnist")
    path = write_report(tmp_path / "r.html", "aicompute demo", [ch, ch2], host="x")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert 'href="#model-zoo"' in page and 'id="model-zoo"' in page
    assert "61,100,840" in page
    src = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(src) == png
    assert "http" not in page  # nothing fetched from outside
    assert render_report("t", []).count("<section") == 0
