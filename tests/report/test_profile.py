from aicompute.demo.profile import profile_tour
from aicompute.report.html import render_report
from aicompute.report.profile import profile_chapter


def test_profile_chapter_renders_tables_and_roofline():
    tour = profile_tour(models=("lenet5",), study="lenet5", llm="transformer", kv_len=16, probe=False)
    page = render_report("t", [profile_chapter(tour)])
    assert "61,706" in page and "decode" in page and "prefill" in page
    assert page.count("data:image/png;base64,") == len(tour["study"]["rooflines"]) == 1
    assert "H100" in page


def test_design_chapter_shows_comparisons_and_the_cnn_table():
    from aicompute.profile.cnn_table import cnn_table
    from aicompute.profile.design import design_comparisons
    from aicompute.report.profile import design_chapter

    record = {"comparisons": design_comparisons(channels=8, size=8).to_dict(), "cnn": cnn_table().to_dict()}
    page = render_report("t", [design_chapter(record)])
    assert "819,200" in page and "208,896" in page  # the seed's 1×1-reduction example, profiled
    assert "25,557,032" in page and "3.9G" in page
    assert page.count("<td>✓</td>") == sum(len(c["rows"]) for c in record["comparisons"]["comparisons"])
