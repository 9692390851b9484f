"""Run the uniform entrypoint as a host subprocess instead of a container (`--engine local`).

For machines without Docker (a bare Jetson, a lent GPU server): the same
entrypoint, the same job spec (with host paths), the same raw outputs, so the
merge and the results are identical. The backend's library must be installed in
the host's Python. The process gets its own process group and is always ended:
on success, error, timeout, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..backends import CONTAINERS_DIR, Backend
from ..errors import UserError
from ..settings import LimitsSettings
from .bounds import Stop
from .docker_engine import ContainerRun, open_log, watch_output


def check_host_backend(backend: Backend) -> None:
    """The backend's library must be importable on the host; say how to get it if not."""
    if importlib.util.find_spec(backend.host_module) is None:
        raise UserError(f"--engine local needs the {backend.name} library on the host "
                        f"(python module {backend.host_module!r} is missing): pip install -e '.[bench]'")


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_local(backend: Backend, job_path: Path, *, env: dict[str, str], log_path: Path,
              on_event: Callable[[dict[str, Any]], None] = lambda e: None,
              timeout_s: float | None = None, limits: LimitsSettings | None = None) -> ContainerRun:
    """Run `python -m edgeasr_entrypoint JOB` with the backend's adapter on the path; its outputs (beside the
    job) are bounded as a container's are (launch/bounds.py)."""
    limits = limits or LimitsSettings()
    log = open_log(log_path, limits)
    paths = [str(CONTAINERS_DIR / "common"), str(CONTAINERS_DIR / backend.build_dir)]
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "EDGEASR_BACKEND": backend.name,
                "EDGEASR_ADAPTER": backend.adapter,
                "PYTHONPATH": os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    t0 = time.perf_counter()
    try:
        return _run(full_env, job_path, log_path, log, on_event, timeout_s, limits, t0)
    finally:
        log.close()


def _run(full_env: dict[str, str], job_path: Path, log_path: Path, log, on_event, timeout_s: float | None,
         limits: LimitsSettings, t0: float) -> ContainerRun:
    proc = subprocess.Popen([sys.executable, "-m", "edgeasr_entrypoint", str(job_path)], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.perf_counter() - t0
    started_ns = time.time_ns()
    timed_out = threading.Event()
    watchdog = None
    if timeout_s:
        def _expire() -> None:
            timed_out.set()
            _kill_group(proc)
        watchdog = threading.Timer(timeout_s, _expire)
        watchdog.daemon = True
        watchdog.start()
    stop = Stop(lambda: _kill_group(proc))
    try:
        code = watch_output(iter(lambda: proc.stdout.read1(65536), b""), log, on_event, limits, stop,
                            job_path.parent, proc.wait)
        exited_ns = time.time_ns()
    finally:
        if watchdog:
            watchdog.cancel()
        stop.join(timeout=30)
        _kill_group(proc)
    return ContainerRun(exit_code=code,
                        oom_killed=code == -signal.SIGKILL and not timed_out.is_set() and stop.reason is None,
                        timed_out=timed_out.is_set(), log_path=log_path, create_to_start_s=started,
                        wall_s=time.perf_counter() - t0, started_ns=started_ns, exited_ns=exited_ns,
                        session_id=proc.pid,  # start_new_session: the child leads its session
                        limit_exceeded=stop.reason)
