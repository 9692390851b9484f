#!/bin/sh
# complete.sh COMMAND [ARG...]: complete the runner image's Python packages if it lacks them, then exec COMMAND.
#
# Every compose service of the runner image starts through this script (sweep through entrypoint.sh; the fleet's
# head and node directly). An image whose build could not reach the package index (compose's build behind a
# TLS-intercepting proxy: a build container has not the host's CA bundle) holds no record of an install; one built
# before a pin changed records other pins. The record is /opt/venv/edgeasr-installed.txt: the requirements.txt the
# venv holds (containers/runner/Dockerfile). Where it differs from the requirements.txt beside this script (the
# project's, mounted), pip installs them first, trusting the host's CA bundle that compose mounts at
# /etc/edgeasr/ca-bundle.crt, with its cache in the project's build/ (else /tmp) so that later starts are quick.
# The install is this container's: `make runner-image` rebuilds the image itself complete.
set -e
here=$(dirname "$0")
wanted="$here/requirements.txt"
[ -f "$wanted" ] || wanted=/opt/edgeasr/requirements.txt
record=/opt/venv/edgeasr-installed.txt
if ! cmp -s "$wanted" "$record" 2>/dev/null; then
  echo "edgeasr runner: installing its Python packages (this image was built without them, or with other pins)..." >&2
  bundle=/etc/edgeasr/ca-bundle.crt
  cache=${EDGEASR_PIP_CACHE:-${PWD}/build/pip-cache}
  owned=
  if [ -z "${EDGEASR_PIP_CACHE:-}" ]; then
    if mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then owned=1; else cache=/tmp/edgeasr-pip-cache; fi
  fi
  mkdir -p "$cache"
  /opt/venv/bin/pip install --quiet --disable-pip-version-check --cache-dir "$cache" \
      $([ -r "$bundle" ] && echo "--cert $bundle") -r "$wanted" >&2 \
    || { echo "edgeasr runner: could not install its packages from the package index (see pip's message" \
              "above); if a proxy intercepts TLS, set EDGEASR_CA_BUNDLE to the host's CA bundle" \
              "(mounted at $bundle), or build the image complete with \`make runner-image\`" >&2; exit 2; }
  cp "$wanted" "$record" 2>/dev/null || true  # a container not started as root still runs; it reinstalls next time
  # pip ran as root (the venv is root's): the project's cache goes to the project's owner
  if [ -n "$owned" ] && [ "$(id -u)" = 0 ]; then
    chown --reference=. "${PWD}/build" && chown -R --reference=. "$cache"
  fi
fi
exec "$@"
