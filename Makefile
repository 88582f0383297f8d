# One-command set-up: `make demo` (main job) and `make test` (the test suite) work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export CSDI_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: venv demo test lint format clean

$(BIN)/csdi: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, the CPU wheel on this disk; a bare `torch` requirement would pull a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/csdi

venv: $(BIN)/csdi

demo: venv
	$(BIN)/csdi demo

test: venv
	$(BIN)/python -m pytest -n 2 -q

lint: venv
	$(BIN)/ruff check csdi tests pipelines
	$(BIN)/ruff format --check csdi tests pipelines
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format csdi tests pipelines
	$(BIN)/ruff check --fix csdi tests pipelines

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
