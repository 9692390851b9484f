#!/usr/bin/env bash
# Build a local Debian bookworm base image with python3 (debootstrap + docker import).
#
# Why: where no container registry is reachable, no public base (python:3.11-slim-bookworm)
# can be pulled, so the backend images are built FROM this one instead. Its python3 (3.11)
# matches the cp311 wheels of the host-side wheelhouse. It carries FFmpeg's shared libraries
# because torchcodec (pyannote-audio 4, whisperx's VAD) loads them and an offline build cannot
# apt-get them. Needs root and debootstrap.
#
# usage: make-base.sh TAG [MIRROR]
set -euo pipefail
tag=${1:?usage: make-base.sh TAG [MIRROR]}
mirror=${2:-${DEBIAN_MIRROR:-http://deb.debian.org/debian}}

if [[ $(id -u) -ne 0 ]]; then
  echo "make-base.sh: debootstrap needs root; run it with sudo or pull a public base image instead" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  # A fresh machine: install it when this root shell has apt, and say so; otherwise one sentence with the command.
  if command -v apt-get >/dev/null; then
    echo "make-base.sh: debootstrap is missing; installing it with apt-get (it builds the local base image)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
      || { echo "make-base.sh: could not install debootstrap; run: apt-get install debootstrap" >&2; exit 2; }
  else
    echo "make-base.sh: debootstrap is not installed; install it with your package manager (e.g. apt-get install debootstrap)" >&2
    exit 2
  fi
fi

rootfs=$(mktemp -d /tmp/edgeasr-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm into $rootfs (about a minute)..."
debootstrap --variant=minbase \
  --include=python3,python3-venv,ca-certificates,libgomp1,libavcodec59,libavformat59,libavutil57,libavdevice59,libavfilter8,libswresample4,libswscale6 \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# Keep the image small: apt lists and caches are not needed at run time.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "edgeasr local base: debian bookworm minbase + python3" - "$tag" >/dev/null
echo "built $tag"
