#!/usr/bin/env bash
# Build a local Debian base image with python3 (debootstrap + docker import).
#
# Why: where no container registry is reachable, no public base (python:3.11-slim-bookworm,
# python:3.13-slim-trixie) can be pulled, so the images are built FROM a local one instead.
# SUITE picks the Debian release and so the Python of the wheels the host-side wheelhouse
# must hold (runner/images/build.py, BASES):
#   bookworm (default): Python 3.11, the backends' base. It carries FFmpeg's shared libraries
#     because torchcodec (pyannote-audio 4, whisperx's VAD) loads them and an offline build
#     cannot apt-get them.
#   trixie: Python 3.13, the base of the Python 3.13 torch stack (espnet 202609 and later need
#     Python >= 3.12). No FFmpeg: nothing on it loads FFmpeg's libraries.
#   bullseye: Python 3.9, glibc 2.31 (Ubuntu 20.04's), the base of the JetPack 5 stand-in
#     (runner/images/standin.py; no Python 3.8 for aarch64 can be had here). Like the jetson-containers r35
#     images it is a system python3 with its own pip (python3-pip: packages go into the system site-packages,
#     no venv; bullseye has no PEP 668 marker, as 20.04 has none). No FFmpeg.
# The mirror is MIRROR, else $DEBIAN_MIRROR, else the host's own (the first Debian archive in its
# apt sources), else the default of debootstrap (or mmdebstrap). Needs root and debootstrap.
# ARCH (environment; Debian's name: amd64, arm64) picks the architecture, default the host's: a foreign one
# (arm64 on an x86 host) is debootstrapped in two stages, the second run in the new root under qemu-user-static
# (binfmt_misc's qemu-aarch64 entry with the F flag, so the chroot needs no interpreter of its own), and
# imported with `docker import --platform linux/ARCH`. mmdebstrap, where installed, makes every base but bullseye:
# twice as fast natively, and for a foreign base only dpkg runs emulated (40 % faster).
#
# usage: [ARCH=arm64] make-base.sh TAG [SUITE [MIRROR]]
set -euo pipefail
tag=${1:?usage: make-base.sh TAG [SUITE [MIRROR]]}
suite=${2:-bookworm}
apt_etc=${EDGEASR_APT_ETC:-/etc/apt}  # where the host's apt sources are (tests point it elsewhere)

case $suite in
  bookworm) include=python3,python3-venv,ca-certificates,libgomp1,libavcodec59,libavformat59,libavutil57,libavdevice59,libavfilter8,libswresample4,libswscale6 ;;
  trixie) include=python3,python3-venv,ca-certificates,libgomp1 ;;
  bullseye) include=python3,python3-venv,python3-pip,ca-certificates,libgomp1 ;;
  *) echo "make-base.sh: unknown suite '$suite'; choose bookworm (Python 3.11), trixie (Python 3.13) or bullseye" \
          "(Python 3.9, the JetPack 5 stand-in's)" >&2; exit 2 ;;
esac

# The host's Debian mirror: the first URI of an enabled Debian archive entry in its apt sources (one-line
# `deb URI suite ...` lists or deb822 `.sources` stanzas), leaving out security archives.
host_mirror() {
  local f
  for f in "$apt_etc"/sources.list "$apt_etc"/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
  done
  for f in "$apt_etc"/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         { types = ""; uris = ""; enabled = "yes"
           for (i = 1; i <= NF; i++) {
             split($i, kv, ":[ \t]*"); key = tolower(kv[1]); value = substr($i, length(kv[1]) + 2)
             sub(/^[ \t]+/, "", value)
             if (key == "types") types = value; else if (key == "uris") uris = value
             else if (key == "enabled") enabled = tolower(value)
           }
           if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" && uris != "") { split(uris, u, /[ \t]+/); print u[1] } }' "$f"
  done
}

if [[ $(id -u) -ne 0 ]]; then
  echo "make-base.sh: debootstrap needs root; run it with sudo or pull a public base image instead" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  # A fresh machine: install it when this root shell has apt, and say so; otherwise one sentence with the command.
  if command -v apt-get >/dev/null; then
    echo "make-base.sh: debootstrap is missing; installing it with apt-get (it builds the local base image)" >&2
    install_debootstrap() {
      command -v debootstrap >/dev/null && return 0  # installed by another make-base.sh while this one waited
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    # Two bases are made side by side (`make test`: bookworm and trixie): two apt-gets at once, and the second
    # fails on apt's lock. One install at a time; the second then finds debootstrap there.
    if command -v flock >/dev/null; then
      (flock 9 && install_debootstrap) 9>"${TMPDIR:-/tmp}/edgeasr-debootstrap-install.lock"
    else
      install_debootstrap
    fi || { echo "make-base.sh: could not install debootstrap; run: apt-get install debootstrap" >&2; exit 2; }
  else
    echo "make-base.sh: debootstrap is not installed; install it with your package manager (e.g. apt-get install debootstrap)" >&2
    exit 2
  fi
fi
if [[ ! -e ${DEBOOTSTRAP_DIR:-/usr/share/debootstrap}/scripts/$suite ]]; then
  echo "make-base.sh: this debootstrap does not know $suite; upgrade it (apt-get install debootstrap)" >&2
  exit 2
fi

host_arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
arch=${ARCH:-$host_arch}
case $arch in
  amd64|arm64) ;;
  *) echo "make-base.sh: unknown architecture '$arch'; choose amd64 or arm64" >&2; exit 2 ;;
esac
if [[ $arch != "$host_arch" ]]; then
  binfmt=/proc/sys/fs/binfmt_misc/qemu-${arch/arm64/aarch64}
  qemu=/usr/bin/qemu-${arch/arm64/aarch64}-static
  if [[ ! -x $qemu ]] || ! grep -qs '^enabled' "$binfmt"; then
    echo "make-base.sh: building a $arch base on this $host_arch host needs qemu-user-static and binfmt-support" \
         "(apt-get install qemu-user-static binfmt-support; then update-binfmts --enable qemu-${arch/arm64/aarch64})" >&2
    exit 2
  fi
fi

if [[ $arch == arm64 ]]; then
  # No arm64 image loads FFmpeg's shared libraries (torchcodec, whisperx's VAD, does; whisperx has no arm64 row), and
  # on an x86 host every package of an arm64 base is configured under emulation: leaving FFmpeg and its dependencies
  # out makes the base a few minutes instead of about 24 (issue 25). Its tag says so (BaseImage.local_for).
  # (FFmpeg is the tail of the bookworm list, from libavcodec59 on.)
  include=${include%%,libav*}
fi

mirror=${3:-${DEBIAN_MIRROR:-$(host_mirror | grep -v -i security | grep -m1 '/debian' || true)}}

rootfs=$(mktemp -d /tmp/edgeasr-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
if [[ $suite != bullseye ]] && command -v mmdebstrap >/dev/null; then
  # mmdebstrap where installed (.ci/run installs it): the host's apt resolves and fetches side by side and dpkg
  # installs in one pass; for a foreign base only that dpkg runs under qemu. debootstrap fetches one package after
  # another and, for a foreign base, runs its whole second-stage script emulated. Measured here (issue 26):
  # bookworm with FFmpeg 77 s with debootstrap, 39 s with mmdebstrap; bookworm arm64 237 s and 142 s (the same 119
  # packages, 180 MB). Its merged-/usr hook (where shipped) merges /usr as debootstrap does and takes
  # usr-is-merged; without it apt picks usrmerge, which pulls in Perl. bullseye, which has no usr-is-merged for that
  # hook, stays with debootstrap, which merges /usr there.
  echo "mmdebstrap $suite ($arch$([[ $arch != "$host_arch" ]] && echo ", configured under emulation")) into $rootfs" \
       "from ${mirror:-the default mirror of mmdebstrap} (a minute or a few)..."
  hooks=/usr/share/mmdebstrap/hooks/maybe-merged-usr
  mmdebstrap --mode=root --variant=minbase --architectures="$arch" --include="$include" \
      $([[ -d $hooks ]] && echo "--hook-dir=$hooks") "$suite" "$rootfs" ${mirror:+"$mirror"} </dev/null >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
elif [[ $arch == "$host_arch" ]]; then
  echo "debootstrap $suite into $rootfs from ${mirror:-the default mirror of debootstrap} (about a minute)..."
  debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" ${mirror:+"$mirror"} >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
else
  # Two stages: the packages are unpacked here, then configured inside the new root, where every binary is
  # an $arch one run by qemu (binfmt's F flag: the interpreter is the host's, opened when registered).
  echo "debootstrap $suite ($arch, emulated second stage) into $rootfs from ${mirror:-the default mirror of debootstrap} (several minutes)..."
  { debootstrap --arch="$arch" --foreign --variant=minbase --include="$include" "$suite" "$rootfs" ${mirror:+"$mirror"} \
      && chroot "$rootfs" /debootstrap/debootstrap --second-stage; } >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
fi
rm -f "$rootfs.log"
# Keep the image small: apt lists and caches are not needed at run time.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
tar -C "$rootfs" -c . | docker import --platform "linux/$arch" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "edgeasr local base: debian $suite ($arch) minbase + python3" - "$tag" >/dev/null
if [[ $arch != "$host_arch" ]]; then
  # A stock engine ignores import's --platform and records the host's architecture: set-arch.py rewrites it.
  python3 "$(dirname "$0")/set-arch.py" "$tag" "$arch" || exit 1
fi
echo "built $tag"
