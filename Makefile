# Two commands for a fresh machine: `make demo` and `make test`. Both are idempotent.
# TORCH_SPEC picks the torch wheel. The default takes a CPU build where the machine's pip
# configuration provides one; elsewhere pass e.g.
#   make test PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.flowmatch-installed

.PHONY: setup demo test lint bench bench-peers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes in first and on its own, so that installing flowmatch never pulls a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/flowmatch demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_flow_matching.py

# installs torchcfm and flow-matching into bench-out/peer-venv, never into $(VENV)
bench-peers: $(STAMP)
	nice -n 10 $(BIN)/python benchmarks/bench_peers.py

clean:
	rm -rf $(VENV) runs
