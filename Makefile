# Two entry points for a new machine: `make demo` and `make test`.
# Both create .venv/ at the repo root and install the project into it; re-running is quick
# (the install step re-runs only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch lies on disk on these machines; a bare `torch` would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -q -n 2

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install -q --disable-pip-version-check -e ".[test]"
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/aicompute demo

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) aicompute-demo .pytest_cache
