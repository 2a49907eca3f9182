"""The HTML report: chapters built from result records, plots, one self-contained page."""
