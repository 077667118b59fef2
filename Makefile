# Two commands set everything up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install run mongosim test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The embedded default: a mongosim replica set on 127.0.0.1:27017 (Ctrl-C stops it).
run: $(STAMP)
	$(BIN)/mongosim --port $${MONGOSIM_PORT:-27017}

mongosim: run

test: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/bench $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check streamer tests
	$(BIN)/mypy streamer

format: $(STAMP)
	$(BIN)/ruff check --fix streamer tests

bench: $(STAMP)
	$(BIN)/python tests/bench/mongosim_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
