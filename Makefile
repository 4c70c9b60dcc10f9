# The two commands a newcomer needs are `make run` and `make test`; the rest
# are their parts.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
B ?=

.PHONY: run test lint deps venv stack-up stack-down bench clean

run: deps venv
	$(BIN)/metering run

test: deps venv
	$(BIN)/pytest

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
	$(BIN)/metering stack up

stack-down: venv
	$(BIN)/metering stack down

bench: deps venv
	$(BIN)/python -m bench $(B)

clean: stack-down
	rm -rf .stack $(VENV)
