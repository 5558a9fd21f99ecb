# `make demo` and `make test` work on a fresh Debian/Ubuntu machine with Python 3.11:
# they install what is missing (system packages, .venv, the package in editable mode) first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tfcomp-installed

.PHONY: all setup system-deps demo test bench train-restorers eval-restorers clean

all: test

setup: $(STAMP)

# Re-run the install whenever the dependency pins or setup.py change.
$(STAMP): requirements.txt setup.py
	@bash .ci/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: setup
	$(BIN)/tfcomp demo --out demo_out

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/python benchmarks/bench.py

# Reproduce the README's restorer tables (needs ../shared/data).
eval-restorers: setup
	bash training/eval_restorers.sh

clean:
	rm -rf demo_out build *.egg-info .pytest_cache
