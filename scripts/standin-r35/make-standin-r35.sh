#!/usr/bin/env bash
# Build edgeasr/standin:r35-fw, a local stand-in for a JetPack 5 jetson-containers base, and check
# containers/faster-whisper/Dockerfile.jetson-r35 on it (containers/PLATFORMS.md, "JetPack 5"). NOT an r35
# image: x86-64 bookworm (the local edgeasr/base:bookworm-ffmpeg) with CPython 3.8 and faster-whisper 0.10.1
# on CTranslate2 3.24.0 from PyPI. Needs: a Python 3.8 on the host (make venv-py38 finds one), pip access to
# PyPI, and the local base (edgeasr images base). Usage: scripts/standin-r35/make-standin-r35.sh [--check]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/scripts/standin-r35"
py38="$root/.venv-py38/bin/python"
[ -x "$py38" ] || make -C "$root" venv-py38
[ -x "$py38" ] || { echo "no Python 3.8 here (make venv-py38 found none)"; exit 2; }
prefix="$("$py38" -c 'import sys; print(sys.base_prefix)')"
ctx="$(mktemp -d)"; trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
cp -a "$prefix" "$ctx/python3.8"
rm -rf "$ctx/python3.8/lib/python3.8/test" "$ctx/python3.8/lib/python3.8/site-packages/"*
# faster-whisper 0.10 asks for av==10.*, which has no cp38 wheel: it goes in --no-deps, with av 12.
"$py38" -m pip download -q --only-binary :all: --no-deps -d "$ctx/wheels" faster-whisper==0.10.1
"$py38" -m pip download -q --only-binary :all: -d "$ctx/wheels" ctranslate2==3.24.0 "av>=11,<13" \
  "tokenizers>=0.13,<0.16" "huggingface_hub>=0.13" "onnxruntime>=1.14,<2" soundfile soxr
# The interpreter goes to the same path in the image (its libpython is found by that absolute path).
docker build --network none --build-arg PY_PREFIX="$prefix" -t edgeasr/standin:r35-fw "$ctx"
if [ "${1:-}" = --check ]; then
  "$root/.venv/bin/edgeasr" images build faster-whisper --platform jetson-r35 --base edgeasr/standin:r35-fw \
    --tag edgeasr/faster-whisper:jetson-r35-standin
  "$root/.venv/bin/edgeasr" check-image edgeasr/faster-whisper:jetson-r35-standin
fi
