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
CLIENT := clients/python
STAMP_CLIENT := $(VENV)/.installed-client

.PHONY: run test lint typecheck pytest bench fuzz eval-duplicates sync-faults client-faults durability clean

# pip -qq: errors only (a build's warnings, an index it cannot read), so that the
# first-admin message `make run` prints stays on the first screen.
PIP := $(BIN)/pip install -qq --disable-pip-version-check

$(BIN)/python:
	@echo "casework: creating $(VENV) (once)"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	@echo "casework: installing into $(VENV)"
	@$(PIP) -e .
	@touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	@echo "casework: installing into $(VENV) with the dev extras"
	@$(PIP) -e '.[dev]'
	@touch $@ $(STAMP_RUN)

# The field client (casework-sync) is its own package, installed beside the server for its tests.
$(STAMP_CLIENT): $(CLIENT)/pyproject.toml | $(STAMP_DEV)
	$(PIP) -e $(CLIENT)
	touch $@

# serve --init: migrate and create the first admin, then serve; the first-admin
# message comes last, once the server is ready.
run: $(STAMP_RUN)
	@CASEWORK_HOST=$(HOST) CASEWORK_PORT=$(PORT) $(BIN)/casework serve --init

test: $(STAMP_DEV) lint typecheck pytest

lint: $(STAMP_DEV)
	$(BIN)/ruff check casework tests benchmarks migrations wsgi.py $(CLIENT)
	$(BIN)/ruff format --check casework tests benchmarks migrations wsgi.py $(CLIENT)

typecheck: $(STAMP_DEV) $(STAMP_CLIENT)
	$(BIN)/mypy casework
	$(BIN)/mypy $(CLIENT)/casework_sync

pytest: $(STAMP_DEV) $(STAMP_CLIENT)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m pytest $(CLIENT)/tests $(PYTEST_ARGS)

# The field client's many-seed fault runs (proxy faults and kill -9 of the client).
client-faults: $(STAMP_DEV) $(STAMP_CLIENT)
	CASEWORK_SYNC_FAULT_SEEDS=$${CASEWORK_SYNC_FAULT_SEEDS:-40} $(BIN)/python -m pytest $(CLIENT)/tests -m faults $(PYTEST_ARGS)

bench: $(STAMP_DEV) $(STAMP_CLIENT)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# The access log under load and worker kills, 32 clients x 60 s, on SQLite and PostgreSQL.
durability: $(STAMP_DEV)
	$(BIN)/python -m benchmarks.durability --backend both --clients 32 --seconds 60 --kills 2

fuzz: $(STAMP_DEV)
	CASEWORK_FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

# Duplicate detection: recall per class, false alerts, intake cost at 10k and 100k cases.
# Prints JSON on stdout (the readable lines on stderr). Each office size is seeded once
# into EVAL_SEED_DIR and reused by later runs (~1.3 ms a case through the bulk path).
EVAL_SEED_DIR ?= benchmarks/results/eval-duplicates
eval-duplicates: $(STAMP_DEV)
	$(BIN)/python -m benchmarks.eval_duplicates $(or $(EVAL_ARGS),--later-per-class 100) \
		--seed-dir $(EVAL_SEED_DIR) --json

# Exactly-once under kill -9: 1,000 offline mutations pushed to a real gunicorn that is
# killed before and after commits at random, over several seeds (SQLite unless
# CASEWORK_TEST_DATABASE_URL names PostgreSQL).
SYNC_FAULT_SEEDS ?= 1 2 3
sync-faults: $(STAMP_DEV)
	for seed in $(SYNC_FAULT_SEEDS); do \
		$(BIN)/python -m tests.sync.faults --mutations 1000 --batch 100 --rate 0.2 --seed $$seed || exit 1; \
	done
	SYNC_STATEFUL_EXAMPLES=200 $(BIN)/python -m pytest tests/sync/test_stateful.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
