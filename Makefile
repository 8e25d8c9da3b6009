# casework: two commands on a fresh machine.
#   make run   - virtualenv, install, migrate, keys and first admin, serve on 127.0.0.1
#   make test  - dev extras, ruff, mypy, the whole pytest suite
#   make durability - the access log under 32 clients for 60 s with worker kills (both backends)
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
HOST ?= 127.0.0.1
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test lint typecheck pytest bench fuzz durability clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/casework init
	CASEWORK_HOST=$(HOST) CASEWORK_PORT=$(PORT) $(BIN)/casework serve

test: $(STAMP_DEV) lint typecheck pytest

lint: $(STAMP_DEV)
	$(BIN)/ruff check casework tests benchmarks migrations wsgi.py
	$(BIN)/ruff format --check casework tests benchmarks migrations wsgi.py

typecheck: $(STAMP_DEV)
	$(BIN)/mypy casework

pytest: $(STAMP_DEV)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP_DEV)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# The access log under load and worker kills, 32 clients x 60 s, on SQLite and PostgreSQL.
durability: $(STAMP_DEV)
	$(BIN)/python -m benchmarks.durability --backend both --clients 32 --seconds 60 --kills 2

fuzz: $(STAMP_DEV)
	CASEWORK_FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
