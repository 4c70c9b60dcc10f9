# The two commands a newcomer needs are `make run` and `make test`; the rest
# are their parts.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
B ?=

.PHONY: run test unit lint deps venv stack-up stack-down bench clean

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

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

stack-up: deps venv
	$(DEV) stack up

stack-down: venv
	$(DEV) stack down

bench: deps venv
	$(BIN)/python -m bench $(B)

clean: stack-down
	rm -rf .stack $(VENV)
