# Two entry points for a fresh machine: `make demo` and `make test`. While developing: `make test-fast`, `make lint`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

# The napari GUI tests (tests/test_napari.py) need a display: a virtual one when xvfb-run is installed (.ci/run
# installs it); without one they are skipped.
XVFB := $(if $(shell command -v xvfb-run),xvfb-run -a,)

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,distributed,bioimageio,napari,vendor,stackreg]"
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(DEV_STAMP)

demo: $(STAMP)
	$(VENV)/bin/widefield3d demo -o demo-output

test: $(STAMP)
	$(XVFB) $(PY) -m pytest -q

test-fast: $(STAMP)  # leaves out the tests marked slow (they train networks or simulate whole datasets)
	$(XVFB) $(PY) -m pytest -q -m "not slow"

lint: $(DEV_STAMP)  # ruff and mypy, as configured in pyproject.toml
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
