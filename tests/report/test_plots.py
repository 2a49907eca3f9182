from aicompute.report.plots import bar_plot, line_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_line_plot_is_png():
    png = line_plot({"a": ([1, 2, 3], [3, 2, 1]), "b": ([1, 2], [1, 1])}, title="t", xlabel="x",
                    ylabel="y", logy=True)
    assert png.startswith(PNG_MAGIC) and len(png) > 1000


def test_bar_plot_is_png():
    png = bar_plot(["alexnet", "vgg16"], [61e6, 138e6], title="params", ylabel="params", logy=True)
    assert png.startswith(PNG_MAGIC)


def test_plotting_leaves_the_backend_and_pyplot_alone():
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg');"
        "from aicompute.report.plots import line_plot;"
        "line_plot({'a': ([1], [1])}, title='t', xlabel='x', ylabel='y');"
        "import sys; assert matplotlib.get_backend() == 'svg', matplotlib.get_backend();"
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
