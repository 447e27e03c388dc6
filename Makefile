# PUGC: `make run` (the whole pipeline on the sample data, tiny models, CPU) and `make test`.
# Setup is idempotent: the virtualenv is (re)built only when requirements.txt or pyproject.toml change.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PUGC := $(VENV)/bin/pugc
STAMP := $(VENV)/.pugc-installed
RECIPE ?= recipes/tiny.yaml
INPUT ?= data/sample_ugc.jsonl
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export TRL_EXPERIMENTAL_SILENCE := 1

.PHONY: setup run test test-fast bench compile models clean help

help:
	@echo "make run      run the PUGC pipeline locally ($(RECIPE) on $(INPUT)) -> runs/latest/"
	@echo "make test     run the test suite"
	@echo "make bench    CPU benchmarks (figures as JSON, bench/results/cpu.json, docs/scaling.png)"
	@echo "make compile  compile the paper recipe to pugc.yaml for Kubeflow Pipelines"

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

setup: $(STAMP)

models: setup
	$(PUGC) models

run: setup
	$(PUGC) run --recipe $(RECIPE) --input $(INPUT)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

bench: setup
	$(PY) -c "import matplotlib" 2>/dev/null || $(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(PY) bench/cpu_bench.py

compile: setup
	$(PUGC) compile --recipe recipes/paper.yaml -o pugc.yaml

clean:
	rm -rf runs pugc.yaml .pytest_cache
