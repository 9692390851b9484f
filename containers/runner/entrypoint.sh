#!/bin/sh
# The runner image's entrypoint: `python -m runner.cli "$@"`, after completing the runner's packages when the image
# lacks them (complete.sh, beside this file: it trusts the CA bundle compose mounts). The runner runs as the owner
# of the working directory (the mounted project) when started as root, so that its files there are the owner's on
# the host (as-owner.sh, beside this file, says when root stays root).
here=$(dirname "$0")
exec /bin/sh "$here/complete.sh" /bin/sh "$here/as-owner.sh" /opt/venv/bin/python -m runner.cli "$@"
