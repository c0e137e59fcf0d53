# falconet developer commands. Every target creates .venv on first use.
#   make run     start the HTTP function locally, post a sample audit batch, print the alerts
#   make test    the whole test suite (what CI runs; installs the SAM tools first)
#   make quick   the unit tests only: the edit-test loop (no SAM tools)
#   make lint    ruff + mypy --strict
#   make bench   the benchmark (figures as ratios to orjson.loads, one process)
#   make fuzz    every fuzz target in tests/fuzz for FUZZ_SECONDS each (coverage-guided with atheris)
#   make validate  offline checks of template.yaml (sam validate, SAM -> CloudFormation -> cfn-lint)
#   make tools   the separate tools venv .venv-tools (aws-sam-cli, cfn-lint), never imported by code
#   make build   sam build: Lambda zips with vendored deps, bundled rules/ and hash-based .pyc
#                (the artifact is built once and copied into each function's zip)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LINT_DIRS := functions tests $(wildcard bench tools)

TOOLS       := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed-stamp

.PHONY: venv tools run test quick lint bench fuzz validate build lambda-artifact clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# SAM CLI pins boto3/click and brings awscrt: it lives in its own venv, away from the runtime deps.
$(TOOLS_STAMP): tools/requirements.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	@touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

run: $(STAMP)
	$(BIN)/python tools/run_local.py

# The tools venv is a prerequisite: tests/functional/test_template.py runs the template checks.
test: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m pytest

# The edit-test loop: tests/unit alone (~35 s here against ~3 min for the suite), no SAM tools.
# Not parallel: pytest-xdist -n auto took 48 s against 34 s serial on two cores (each worker
# re-imports and recompiles the rules). `make test` stays the whole suite, for CI.
quick: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench.py

FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/python tools/fuzz.py --seconds $(FUZZ_SECONDS)

validate: $(TOOLS_STAMP)
	$(TOOLS)/bin/python tools/check_template.py template.yaml

# Every function's zip is the same artifact, and `sam build` runs build-<Function> once per function,
# each in its own copy of the repository. So the artifact is built once, here, into LAMBDA_ARTIFACT
# (under .aws-sam/, which SAM neither copies nor cleans), and LAMBDA_PREBUILT (SAM passes the
# environment to make) tells each build-<Function> to copy it. Rebuilt from scratch on every run.
LAMBDA_ARTIFACT := $(CURDIR)/.aws-sam/falconet-artifact

build: $(TOOLS_STAMP)
	rm -rf "$(LAMBDA_ARTIFACT)" && mkdir -p "$(LAMBDA_ARTIFACT)"
	$(MAKE) --no-print-directory lambda-artifact ARTIFACTS_DIR="$(LAMBDA_ARTIFACT)"
	LAMBDA_PREBUILT="$(LAMBDA_ARTIFACT)" SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam build --template template.yaml

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis build .aws-sam .fuzz

# ---- Lambda artifacts. `sam build` (Metadata: BuildMethod: makefile) runs `make build-<LogicalId>`
# with ARTIFACTS_DIR set, in a copy of CodeUri (the repository root). Each zip gets the runtime deps
# for the Lambda platform, the falconet package, lambda_handlers.py and the bundled rules/ beside
# them (FALCONET_RULES=/var/task/rules), then hash-based .pyc: SAM zips carry 1980 timestamps, so
# ordinary .pyc never validate and /var/task is read-only; unchecked-hash .pyc cut a cold
# `import boto3, yaml` from ~1 s to ~0.34 s.
# LAMBDA_PY must be the runtime's minor version (template.yaml: Runtime python3.11), .pyc are per
# version. The zip installs functions/requirements-lambda.txt only: never functions-framework, Flask
# or the Google Cloud / Azure clients (functions/requirements.txt, the deployable directory's).
LAMBDA_PY             ?= python3.11
LAMBDA_PYTHON_VERSION ?= 3.11
LAMBDA_PLATFORM       ?= manylinux2014_aarch64

define lambda_artifacts
	$(LAMBDA_PY) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; assert v == "$(LAMBDA_PYTHON_VERSION)", "LAMBDA_PY is Python " + v + ", the runtime is $(LAMBDA_PYTHON_VERSION)"'
	$(LAMBDA_PY) -m pip install --quiet --disable-pip-version-check --no-compile \
	    --platform $(LAMBDA_PLATFORM) --implementation cp --python-version $(LAMBDA_PYTHON_VERSION) \
	    --only-binary=:all: -r functions/requirements-lambda.txt -t "$(ARTIFACTS_DIR)"
	cp -R functions/falconet functions/lambda_handlers.py "$(ARTIFACTS_DIR)/"
	mkdir -p "$(ARTIFACTS_DIR)/rules" && cp functions/rules/*.yaml "$(ARTIFACTS_DIR)/rules/"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -type d -prune -exec rm -rf {} +
	$(LAMBDA_PY) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)"
	$(warm_rule_cache)
endef

# The compiled rule code, like .pyc for rules (FALCONET_CODE_CACHE=/var/task/rules-cache): a cold
# start then skips compiling the generated evaluation code. It is keyed by the generated source and
# the bytecode magic number, so it is built with LAMBDA_PY and this checkout's falconet, with host
# wheels of pyyaml/orjson in a scratch directory (the artifact's wheels are for the Lambda platform).
define warm_rule_cache
	rm -rf "$(ARTIFACTS_DIR)/.warm" && $(LAMBDA_PY) -m pip install --quiet --disable-pip-version-check \
	    --no-compile -r functions/requirements-lambda.txt -t "$(ARTIFACTS_DIR)/.warm"
	PYTHONPATH="$(ARTIFACTS_DIR)/.warm:functions" $(LAMBDA_PY) -c 'from falconet.engine import Engine; \
	    Engine.from_paths(["$(ARTIFACTS_DIR)/rules"], code_cache="$(ARTIFACTS_DIR)/rules-cache")'
	rm -rf "$(ARTIFACTS_DIR)/.warm"
endef

lambda-artifact:
	$(lambda_artifacts)

# One target per function of template.yaml (tests/functional/test_lambda_package.py checks it).
# Without LAMBDA_PREBUILT (`sam build` run directly, the tests) each builds the artifact itself.
LAMBDA_FUNCTIONS := S3DetectorFunction HttpDetectorFunction CloudWatchDetectorFunction SweepFunction \
                    NotifyFunction BacktestFunction

$(addprefix build-,$(LAMBDA_FUNCTIONS)):
ifdef LAMBDA_PREBUILT
	cp -R "$(LAMBDA_PREBUILT)/." "$(ARTIFACTS_DIR)/"
else
	$(lambda_artifacts)
endif
