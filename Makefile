# `make demo` and `make test` each build .venv from pyproject.toml when it is missing or stale.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
SRC := reconciler tests bench

.PHONY: demo test lint typecheck unit bench chaos clean lock

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/gitfirm demo

lint: $(BIN)/.installed
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/lint-imports

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest -q

test: lint typecheck unit

bench: $(BIN)/.installed
	# As modules from the project root: the benches share bench/harness.py and bench/gitops.py.
	for b in bench/*_bench.py; do $(BIN)/python -m bench.$$(basename $$b .py) || exit 1; done

# Seeded chaos scenarios through the real `gitfirm run` process; CHAOS_SEED, CHAOS_SCENARIOS
# (default 40), CHAOS_DURATION and CHAOS_KEEP=1 select the run (see tests/chaos/__main__.py).
chaos: $(BIN)/.installed
	$(BIN)/python -m tests.chaos

# requirements.lock: what the container image installs (--require-hashes), for the Python
# of its base image. Run after changing dependencies in pyproject.toml.
LOCK_PYTHON := 3.12
lock: $(BIN)/.installed
	$(BIN)/uv pip compile pyproject.toml --python-version $(LOCK_PYTHON) --generate-hashes \
		--custom-compile-command 'make lock' --quiet -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
