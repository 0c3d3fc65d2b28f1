# Every target builds what it needs: a fresh clone only needs python3 (3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sync-worker demo

lint: $(STAMP)
	$(BIN)/ruff check sync_worker tests bench
	$(BIN)/ruff format --check sync_worker tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	-[ -x $(BIN)/python ] && $(BIN)/python -m sync_worker.local stop .sync-worker
	rm -rf $(VENV) .sync-worker .mypy_cache .ruff_cache .pytest_cache *.egg-info
