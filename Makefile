# The two commands a fresh clone needs (see README):
#   make demo   - install the trainer, then run the whole pipeline end to end (offline: built-in source)
#   make test   - install what the tests need, lint, and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned: the CPU build on these machines; a looser pin would pull GBs of CUDA wheels.
TORCH := torch==2.13.0

.PHONY: install install-train install-test test demo bench tables lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# One stamp per install, so `make demo` does not pull the test tools and `make test` adds only what it lacks.
$(VENV)/.base: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.train: pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[train]'
	touch $@

$(VENV)/.test: pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[train,png,test]'
	touch $@

install: $(VENV)/.base
install-train: $(VENV)/.train
install-test: $(VENV)/.test

lint: $(VENV)/.test
	$(PY) -m ruff check arcforge tests benchmarks experiments
	$(PY) -m ruff format --check arcforge tests benchmarks experiments

test: $(VENV)/.test lint
	$(PY) -m pytest -q

demo: $(VENV)/.train
	$(VENV)/bin/arcforge demo

bench: $(VENV)/.test
	$(PY) benchmarks/run_all.py

tables:
	$(PY) benchmarks/tables.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
