# Gravity SMS — the two README commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck unit bench stress wrk install clean migration

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/gravity-sms demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench stress
	$(BIN)/ruff format --check src tests bench stress
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 4 --dist loadfile --cov=gravity_sms --cov-branch --cov-report=term:skip-covered

test: lint typecheck unit

# wrk is the load generator of the HTTP benchmarks; without it they fall back to the
# multi-process Python generator (slower, and reported as such).
wrk:
	@command -v wrk >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 \
	  || echo "wrk could not be installed: the benchmarks use the Python load generator"; }

bench: $(STAMP) wrk
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.run $(ARGS)

stress: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m stress.run $(ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
