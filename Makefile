# Gravity SMS — the two README commands are `make run` and `make test`.
#
# Everything installs from the committed lock (uv.lock) into .venv, bootstrapped from a bare
# `python3`: a venv, then uv (pinned below) inside it, then `uv sync --frozen`. A fresh clone
# therefore installs exactly the versions the lock was tested with, on any day.
# `make lock` refreshes the lock to the newest versions pyproject.toml's ranges allow.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := $(BIN)/uv
STAMP := $(VENV)/.synced-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)
# uv syncs into .venv with the interpreter it was created with, and never downloads a Python.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(BIN)/python
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint typecheck unit bench stress wrk install lock lock-check clean migration

$(UV):
	@echo "==> creating $(VENV) with $(PYTHON) and installing uv $(UV_VERSION)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# One environment for every target (runtime, test and bench extras), synced exactly to the lock.
$(STAMP): pyproject.toml uv.lock | $(UV)
	@echo "==> installing the locked dependencies into $(VENV) (uv sync --frozen)"
	$(UV) sync --frozen --all-extras
	rm -f $(VENV)/.synced-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/gravity-sms demo

# Refresh the lock to the newest versions the ranges allow; commit uv.lock alone after `make test`.
lock: | $(UV)
	$(UV) lock --upgrade

# Fails when pyproject.toml and uv.lock disagree (a range changed without `uv lock`).
lock-check: | $(UV)
	$(UV) lock --check

lint: $(STAMP) lock-check
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
	$(BIN)/python -m bench.run $(ARGS)

stress: $(STAMP)
	$(BIN)/python -m stress.run $(ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
