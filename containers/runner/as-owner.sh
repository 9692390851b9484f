#!/bin/sh
# as-owner.sh COMMAND [ARG...]: run COMMAND as the owner of the working directory, when started as root.
#
# Compose runs the runner image as root with the project mounted at its own host path as the working directory
# (compose.yaml). Files a root process writes there (results/, build/, models/) would be root's on the host, and
# their owner could not delete them without sudo. So, as root, this switches to the uid and gid that own the
# working directory before exec'ing COMMAND, keeping:
#   - the groups of the mounted sockets (Docker's, and jtop's on a Jetson), so the engine stays reachable;
#   - CAP_DAC_OVERRIDE, as an ambient capability: root-only counters the samplers read (RAPL's energy_uj, root-only
#     since Linux 5.10) stay readable. A file is created with the process's uid whatever its capabilities, so the
#     owner still owns every file; and a process that holds the Docker socket has root's power anyway.
# Root stays root, with COMMAND exec'd unchanged, when:
#   - the process is not root (docker run --user): it already is who it should be;
#   - the working directory is root's (CI, a checkout root owns): root's files are what it expects;
#   - EDGEASR_KEEP_ROOT=1: runs that change the hardware need root (power modes and clocks, locked GPU clocks;
#     compose's jetson and gpu profiles set it by default); their files are root's;
#   - the switch cannot work (no setpriv, or that uid cannot reach the Docker socket, the CA bundle or HOME):
#     one line says why, and the run goes on as root, as before.
# A container started without CAP_DAC_OVERRIDE (cap_drop) switches without it, and one line says what that costs.
# The runner's own confinement of the backend containers follows (runner/launch/hardening.py): as the owner, they
# run as the owner's uid and groups, and their output is the owner's too.

if [ "$(id -u)" != 0 ]; then
  exec "$@"
fi
case "${EDGEASR_KEEP_ROOT:-0}" in
  1 | true | yes) exec "$@" ;;
  0 | false | no) ;;
  *) echo "edgeasr runner: EDGEASR_KEEP_ROOT must be 1 (run as root) or 0 (run as the project's owner)," \
          "not '${EDGEASR_KEEP_ROOT}'" >&2
     exit 2 ;;
esac
uid=$(stat -c %u .) && gid=$(stat -c %g .) || exit 2
if [ "$uid" = 0 ]; then
  exec "$@"
fi

stay_root() {  # $1: why; then the command
  echo "edgeasr runner: running as root, so its files in $PWD will be root's: $1" >&2
  shift
  exec "$@"
}

if ! command -v setpriv >/dev/null 2>&1; then
  stay_root "this image has no setpriv (util-linux) to switch to uid $uid" "$@"
fi
groups=$gid
for sock in /var/run/docker.sock /run/jtop.sock; do
  if [ -S "$sock" ]; then
    groups="$groups,$(stat -c %g "$sock")"
  fi
done
as_owner="setpriv --reuid=$uid --regid=$gid --groups=$groups --inh-caps=+dac_override --ambient-caps=+dac_override --"
if ! $as_owner true 2>/dev/null; then
  # the container was started without CAP_DAC_OVERRIDE (cap_drop): the owner's files matter more than RAPL
  as_owner="setpriv --reuid=$uid --regid=$gid --groups=$groups --"
  if ! err=$($as_owner true 2>&1); then
    stay_root "setpriv cannot switch to uid $uid: $err" "$@"
  fi
  echo "edgeasr runner: running as uid $uid without CAP_DAC_OVERRIDE (the container lacks it):" \
       "root-only energy counters (RAPL) will not be readable" >&2
fi
# test(1) checks with access(2): the uid and groups only, not the capability, so access is not owed to it.
for need in "-w /var/run/docker.sock" "-r /etc/edgeasr/ca-bundle.crt" "-w ${HOME:-/tmp}"; do
  path=${need#* }
  if [ -e "$path" ] && ! $as_owner test $need; then
    stay_root "uid $uid with groups $groups cannot $([ "${need%% *}" = -r ] && echo read || echo write) $path" "$@"
  fi
done
exec $as_owner "$@"
