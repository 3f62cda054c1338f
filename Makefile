# Two commands set up a fresh machine: `make run` and `make test` (see README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP    := $(VENV)/.installed-test

.PHONY: run test test-image lint typecheck pytest system-deps services bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mediamesh needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The smb-fast extra (libsmbclient reads) is built where Debian's libsmbclient-dev is there.
RUN_EXTRAS := $(shell pkg-config --exists smbclient 2>/dev/null && echo "[smb-fast]")

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.$(RUN_EXTRAS)' || $(BIN)/pip install -q -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | system-deps $(BIN)/python
	$(BIN)/pip install -q -e '.[test,smb-fast]'
	@touch $@ $(RUNTIME_STAMP)

## Start the server on the embedded default (SQLite under ./data).
run: $(RUNTIME_STAMP)
	$(BIN)/mediamesh serve

## Install everything the tests need, start the servers they use, run lint, types and the whole suite.
test: system-deps $(TEST_STAMP) services lint typecheck pytest

system-deps:
	@scripts/install-system-deps.sh

services:
	@scripts/ensure-services.sh

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench scripts docker
	$(BIN)/ruff format --check src tests bench scripts docker

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

## Build the container image with podman (no daemon, no registry: a debootstrap base) and smoke-test it
## by starting its root file system with chroot. Needs root and the network to Debian and PyPI; ~2 min.
test-image: $(TEST_STAMP)
	scripts/image.sh all

## Benchmarks print a table against reference tools; they are not part of `make test`.
bench: $(TEST_STAMP)
	@scripts/install-system-deps.sh bench
	$(BIN)/python bench/scan_local.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
