# The two commands a newcomer needs are `make run` and `make test`; the rest
# are their parts.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
B ?=
# Every package the venv holds, with its hashes (pip, setuptools and wheel too): `make lock`.
LOCK := requirements.lock
# Extra pip-compile options for `make lock`, e.g. LOCK_ARGS='-P httpx' or LOCK_ARGS=--upgrade.
LOCK_ARGS ?=
# Vulnerabilities waived by id, each with its reason beside it (a fix not yet released).
AUDIT_IGNORE :=
# --strict: a package the audit cannot look up fails it, as a vulnerability does.
AUDIT_FLAGS ?= --strict

.PHONY: run test unit lint audit lock deps venv stack-up stack-down bench bench-clean clean

# The local stack and the demo are dev tooling, run from the checkout.
DEV := $(BIN)/python -m deploy

run: deps venv
	$(DEV) run

test: deps venv
	$(BIN)/pytest

# The tests that need no server (no PostgreSQL, no Kafka), in seconds: the
# contract agreement test draws 50 documents per schema instead of 500.
unit: venv
	METERING_CONTRACT_EXAMPLES=50 $(BIN)/pytest -m "not servers" -p no:cacheprovider

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

deps:
	@deploy/install-system-deps.sh

venv: $(VENV)/.installed

# Nothing unhashed is installed: every package comes from the lock, checked against its
# hashes, then the project itself, without dependencies and built with the locked
# setuptools (no isolated build environment fetched from the index).
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Re-resolves pyproject.toml's dependencies (runtime, the dev extra and the build
# requirements) into the lock, keeping the pins it already has where they still fit.
lock: venv
	CUSTOM_COMPILE_COMMAND='make lock' $(BIN)/pip-compile -q --generate-hashes --allow-unsafe \
		--strip-extras --extra dev --all-build-deps --no-emit-find-links $(LOCK_ARGS) \
		-o $(LOCK) pyproject.toml
	CUSTOM_COMPILE_COMMAND='make lock' $(BIN)/pip-compile -q --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-find-links -c $(LOCK) -o requirements-runtime.lock pyproject.toml

# Known vulnerabilities (PyPI's advisory data) in any locked package fail it.
audit: venv
	$(BIN)/pip-audit -r $(LOCK) --require-hashes --disable-pip --progress-spinner off \
		$(AUDIT_FLAGS) $(addprefix --ignore-vuln=,$(AUDIT_IGNORE))

stack-up: deps venv
	$(DEV) stack up

stack-down: venv
	$(DEV) stack down

bench: deps venv
	$(BIN)/python -m bench $(B)

# Drops every database a bench left in the local stack (or kept: BENCH_QUERY_DATABASE).
bench-clean: venv
	$(BIN)/python -m bench --clean

clean: stack-down
	rm -rf .stack $(VENV)
