# Every target creates .venv and installs what it needs by itself (fresh machine friendly).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench lint tryton prometheus services clean

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip 2> >(grep -v 'is ignored' >&2)
	@$(BIN)/python -m pip install -q -e '.[dev]' 2> >(grep -v 'is ignored: it is neither' >&2)
	@touch $(STAMP)

install: $(STAMP)

prometheus:
	@bash scripts/install_prometheus.sh

tryton:
	@bash scripts/tryton/install.sh
	@.venv-tryton/bin/python scripts/tryton/build_template.py

services:
	@bash scripts/ensure_services.sh

demo: $(STAMP)
	@$(BIN)/erphub demo

test: $(STAMP) lint prometheus tryton services
	@bash scripts/promtool_check.sh
	@$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: $(STAMP)
	@$(BIN)/python -m pytest -q -p no:cacheprovider -m "not tryton and not prefect and not prometheus" $(PYTEST_ARGS)

# The bench extra (dlt, the PostgreSQL baseline) is installed here only, not by `make install`.
# ERPHUB_BENCH_SCALE=10000,100000 picks the sizes of the scale bench (default up to 1,000,000; README).
bench: $(STAMP)
	@$(BIN)/python -c 'import dlt' 2>/dev/null || $(BIN)/python -m pip install -q -e '.[dev,bench]' 2> >(grep -v 'is ignored' >&2)
	@bash scripts/ensure_services.sh > /dev/null
	@$(BIN)/python bench/run_all.py

# mypy and import-linter read the package as it installs (erphub.config from config/, ...): a symlink tree.
lint: $(STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/python scripts/package_tree.py build/package-tree > /dev/null
	@$(BIN)/mypy -p erphub
	@cd build/package-tree && ../../$(BIN)/lint-imports ../../pyproject.toml

clean:
	rm -rf $(VENV) .erphub build .pytest_cache .mypy_cache .ruff_cache
