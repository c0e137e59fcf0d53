# falconet developer commands. Every target creates .venv on first use.
#   make run     start the HTTP function locally, post a sample audit batch, print the alerts
#   make test    the whole test suite
#   make lint    ruff + mypy --strict
#   make bench   the benchmark (figures as ratios to orjson.loads, one process)
#   make validate  offline checks of template.yaml (sam validate, SAM -> CloudFormation -> cfn-lint)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LINT_DIRS := functions tests $(wildcard bench tools)

.PHONY: venv run test lint bench validate clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python tools/run_local.py

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build
