#!/bin/sh
# The runner image's entrypoint: `python -m runner.cli "$@"`, after installing the runner's packages when the
# image was built without them (see the Dockerfile). pip trusts the CA bundle compose mounts (PIP_CERT).
# The runner runs as the owner of the working directory (the mounted project) when started as root, so that its
# files there are the owner's on the host (as-owner.sh, beside this file, says when root stays root).
set -e
here=$(dirname "$0")
if [ -e /opt/venv/.install-at-start ]; then
  echo "edgeasr runner: installing its Python packages (not installable when the image was built)..." >&2
  cache=${EDGEASR_PIP_CACHE:-${PWD}/build/pip-cache}
  mkdir -p "$cache"
  /opt/venv/bin/pip install --quiet --cache-dir "$cache" -r /opt/edgeasr/requirements.txt >&2 \
    || { echo "edgeasr runner: could not install its packages from the package index (see pip's message" \
              "above); if a proxy intercepts TLS, set EDGEASR_CA_BUNDLE to the host's CA bundle" >&2; exit 2; }
  rm -f /opt/venv/.install-at-start
  # pip ran as root (the venv is root's): the project's cache goes to the project's owner
  if [ -z "${EDGEASR_PIP_CACHE:-}" ]; then
    chown --reference=. "${PWD}/build" && chown -R --reference=. "$cache"
  fi
fi
exec /bin/sh "$here/as-owner.sh" /opt/venv/bin/python -m runner.cli "$@"
