"""Jetson power and state from a ``tegrastats`` child process.

``TegrastatsSampler`` runs ``tegrastats --interval MS`` (found on PATH), reads
its lines on a thread, stamps each line with the host's monotonic and wall
clocks and parses it with ``tegrastats_parse.parse_line``. tegrastats' own
timestamp (when printed) has one-second resolution and the Jetson's clock, so
only the arrival time is used for windows; the line's own stamp is kept in
``extras`` for reference.

Arrival is only a good clock if lines arrive when they are written. tegrastats
writes through C stdio, which buffers a pipe in blocks: lines would arrive
seconds late and together, and their power would be placed at the wrong time.
So its stdout is a pseudo-terminal (line-buffered, like a terminal); a pipe is
the fallback only where no pty can be opened (``health.stdout``). Lines that
still arrive together (a burst) are stamped by tegrastats' own cadence
(``CadenceStamper``): the last at its arrival, the earlier ones one interval
apart before it. Each such sample says so (``extras["stamp"] == "cadence"``,
its arrival kept beside it), and every window a burst touches is flagged
(``integrate``), never silently integrated as if its stamps were exact.

The child is always stopped: ``stop()`` (and so the context manager, also on
exceptions and Ctrl-C) sends SIGTERM to its process group, then SIGKILL after
a timeout, and an ``atexit`` hook stops any sampler left running when the
interpreter exits. The child runs in its own process group (new session) so
that a terminal Ctrl-C does not kill it behind the sampler's back, and so that
killing the group also kills anything tegrastats started. (A ``kill -9`` of
this Python process cannot be caught; nothing here can clean up after that.)

A line that arrives without its newline (tegrastats killed mid-write) is
dropped, not parsed: its last value may be cut short.
"""

from __future__ import annotations

import atexit
import logging
import os
import pty
import shutil
import signal
import subprocess
import threading
import tty
from dataclasses import replace
from typing import IO, Any

from runner.host.clock import SYSTEM_CLOCK, Clock
from runner.telemetry.samplers.base import (ARRIVAL_MONO_NS, DEFAULT_INTERVAL_MS, LOST_BEFORE, STAMP, STAMP_CADENCE,
                                            Availability, Sample, Sampler, now_ns)
from runner.telemetry.samplers.tegrastats_parse import TegrastatsRecord, parse_line

_LOG = logging.getLogger(__name__)
_STDERR_KEPT_BYTES = 4096
# Strong references on purpose: a running sampler must not be garbage
# collected (and its child forgotten) before it is stopped.
_LIVE: set[TegrastatsSampler] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_live() -> None:
    with _LIVE_LOCK:
        running = list(_LIVE)
    for sampler in running:
        try:
            sampler.stop()
        except Exception:  # noqa: BLE001 - the interpreter is exiting: best effort
            _LOG.debug("could not stop %s at exit", sampler.name, exc_info=True)


atexit.register(_stop_all_live)


def record_to_sample(t_ns: int, record: TegrastatsRecord, mono_ns: int | None = None) -> Sample:
    """The ``Sample`` for one parsed line that arrived at ``t_ns`` (wall) / ``mono_ns`` (monotonic)."""
    total_w, total_kind = record.total_power_w()
    return Sample(
        t_ns=t_ns,
        mono_ns=mono_ns,
        power_w=record.power_w(),
        total_w=total_w,
        total_kind=total_kind,
        mem_used_mib=None if record.ram_used_mib is None else float(record.ram_used_mib),
        extras={
            "gpu_load_pct": record.gpu_load_pct,
            "gpu_freq_mhz": record.gpu_freq_mhz,
            "ram_total_mib": record.ram_total_mib,
            "temps_c": record.temps_c,
            "tegrastats_timestamp": record.timestamp,
        },
    )


#: Lines arriving closer than this share of the interval after the previous one came in a burst.
BURST_FRACTION = 0.25
_READ_BYTES = 65536


class CadenceStamper:
    """Stamps lines by when they arrive, unless they arrive in a burst: then by tegrastats' own cadence.

    ``stamp(n, wall_ns, mono_ns)`` is called once per read with the number of complete lines it brought and the
    arrival time; it returns one (wall_ns, mono_ns, how) per line, ``how`` being ``"arrival"`` or ``"cadence"``.
    A read that brings one line, a full quarter-interval or more after the previous, is stamped at its arrival.
    Several lines in one read, or a line hard on the heels of the previous (a buffer flushed in two reads), are a
    burst: the last line was written at most at its arrival, the earlier ones one interval apart before it, never
    at or before the previous line's stamp (crowded lines share the time since it evenly).
    """

    def __init__(self, interval_ms: float) -> None:
        self.interval_ns = int(interval_ms * 1e6)
        self._prev_mono: int | None = None  # the last stamp given (monotonic)
        self._prev_arrival: int | None = None

    def stamp(self, n: int, wall_ns: int, mono_ns: int) -> list[tuple[int, int, str]]:
        if n <= 0:
            return []
        burst = n > 1 or (self._prev_arrival is not None
                          and mono_ns - self._prev_arrival < BURST_FRACTION * self.interval_ns)
        self._prev_arrival = mono_ns
        if not burst:
            self._prev_mono = mono_ns
            return [(wall_ns, mono_ns, "arrival")]
        monos = [mono_ns - (n - 1 - j) * self.interval_ns for j in range(n)]
        if self._prev_mono is not None and monos[0] <= self._prev_mono:
            step = (mono_ns - self._prev_mono) / n
            monos = [self._prev_mono + round((j + 1) * step) for j in range(n)]
        self._prev_mono = monos[-1]
        return [(wall_ns - (mono_ns - m), m, STAMP_CADENCE) for m in monos]


class TegrastatsSampler(Sampler):
    """Follows ``tegrastats --interval MS`` for the duration of a run."""

    name = "tegrastats"

    def __init__(
        self,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        executable: str = "tegrastats",
        terminate_timeout_s: float = 2.0,
        stdout: str = "pty",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(clock)
        if stdout not in ("pty", "pipe"):
            raise ValueError(f"stdout must be 'pty' or 'pipe', got {stdout!r}")
        #: How tegrastats' output reaches us: ``pty`` (line-buffered) where one can be opened, else ``pipe``.
        self.stdout = stdout
        self._stamper = CadenceStamper(interval_ms)
        self._lost: list[str] = []  # why lines were lost since the last sample
        self.n_cadence_stamped = 0  # lines that arrived in a burst and were stamped by the cadence
        if interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {interval_ms}")
        self.interval_ms = interval_ms
        self.executable = executable
        self.terminate_timeout_s = terminate_timeout_s
        #: Every complete line as received, with its arrival time: the raw log
        #: for artifacts (re-parse with ``parse_line``). Strings, not records,
        #: to keep hour-long runs small.
        self.raw_lines: list[tuple[int, str]] = []
        self.lines_unparsed = 0
        self.lines_cut_off = 0
        #: Why tegrastats ended on its own (exit code and stderr), else None.
        self.exit_reason: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stderr_reader: threading.Thread | None = None
        self._stderr_tail = bytearray()
        self._stopping = threading.Event()

    # -- availability ---------------------------------------------------------

    def _resolve(self) -> str | None:
        if os.sep in self.executable:
            return self.executable if os.access(self.executable, os.X_OK) else None
        return shutil.which(self.executable)

    def probe(self) -> Availability:
        if self._resolve() is None:
            return Availability.no(
                f"'{self.executable}' was not found on PATH (tegrastats ships with JetPack on NVIDIA Jetson boards only)"
            )
        return Availability.yes()

    def health(self) -> dict[str, Any]:
        """Adds why tegrastats ended on its own (if it did) and the lines it lost."""
        return {**super().health(), "ok": self.exit_reason is None, "interval_ms": self.interval_ms,
                "exit_reason": self.exit_reason, "lines_unparsed": self.lines_unparsed,
                "lines_cut_off": self.lines_cut_off, "n_lines": len(self.raw_lines), "stdout": self.stdout,
                "n_cadence_stamped": self.n_cadence_stamped}

    @property
    def pid(self) -> int | None:
        """The tegrastats process id while it runs (for tests and logs)."""
        return None if self._proc is None else self._proc.pid

    # -- Sampler hooks --------------------------------------------------------

    def _open_stdout(self) -> tuple[int | None, int | None]:
        """(our end, tegrastats' end) of a pseudo-terminal in raw mode (no echo, no CR added), or (None, None)
        for a pipe: where asked for, or where no pty can be opened (the fallback is recorded in ``stdout``)."""
        if self.stdout != "pty":
            return None, None
        try:
            ours, theirs = pty.openpty()
        except OSError as exc:
            _LOG.debug("no pty for tegrastats (%s): reading a pipe", exc)
            self.stdout = "pipe"
            return None, None
        tty.setraw(theirs)
        return ours, theirs

    def _start(self) -> None:
        path = self._resolve()
        assert path is not None  # start() probed first
        ours, theirs = self._open_stdout()
        try:
            self._proc = subprocess.Popen(
                [path, "--interval", str(self.interval_ms)],
                stdin=subprocess.DEVNULL,
                stdout=theirs if theirs is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except BaseException:
            for fd in (ours, theirs):
                if fd is not None:
                    os.close(fd)
            raise
        if theirs is not None:
            os.close(theirs)  # the child holds it: our end reads EOF (EIO) once the child is gone
        stdout = os.fdopen(ours, "rb", buffering=0) if ours is not None else self._proc.stdout
        self._stdout_stream = stdout
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            assert stdout is not None and self._proc.stderr is not None
            self._reader = threading.Thread(
                target=self._read_lines, args=(stdout,), name="tegrastats-reader", daemon=True
            )
            self._stderr_reader = threading.Thread(
                target=self._drain_stderr, args=(self._proc.stderr,), name="tegrastats-stderr", daemon=True
            )
            self._reader.start()
            self._stderr_reader.start()
        except BaseException:
            self._stop()  # never leave the child running when start fails
            raise

    def _stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        try:
            if proc is not None:
                _terminate_group(proc, self.terminate_timeout_s)
        finally:
            for thread in (self._reader, self._stderr_reader):
                if thread is not None:
                    thread.join(timeout=self.terminate_timeout_s)
            if proc is not None:
                for stream in (proc.stdout, proc.stderr, getattr(self, "_stdout_stream", None)):
                    if stream is not None:
                        stream.close()
            with _LIVE_LOCK:
                _LIVE.discard(self)

    # -- threads --------------------------------------------------------------

    def _read_lines(self, stream: IO[bytes]) -> None:
        """Read whatever has arrived (one read: what came together arrives together), stamp its complete lines
        (``CadenceStamper``) and append them; a last line without its newline is dropped."""
        pending = b""
        while True:
            try:
                chunk = stream.read(_READ_BYTES)
            except OSError:  # a pty's reader gets EIO once the child has closed it
                break
            if not chunk:
                break
            wall_ns, mono_ns = now_ns(self.clock)
            *complete, pending = (pending + chunk).split(b"\n")
            for (t_ns, m_ns, how), raw in zip(self._stamper.stamp(len(complete), wall_ns, mono_ns), complete):
                self._take(raw.decode("utf-8", "replace").rstrip("\r"), t_ns, m_ns, how, mono_ns)
        if pending:
            self.lines_cut_off += 1
        proc = self._proc
        if proc is not None and not self._stopping.is_set():
            # tegrastats ended by itself: say why, for the report.
            code = proc.wait()
            if self._stderr_reader is not None:
                self._stderr_reader.join(timeout=1.0)
            err = bytes(self._stderr_tail).decode("utf-8", "replace").strip()
            self.exit_reason = f"tegrastats exited with code {code}" + (f": {err}" if err else "")

    def _take(self, line: str, t_ns: int, mono_ns: int, how: str, arrival_mono_ns: int) -> None:
        self.raw_lines.append((t_ns, line))
        record = parse_line(line)
        if record is None:
            self.lines_unparsed += 1
            self._lost.append(f"a line that did not parse as tegrastats output: {line[:60]!r}")
            return
        sample = record_to_sample(t_ns, record, mono_ns)
        extras = dict(sample.extras)
        if how == STAMP_CADENCE:
            self.n_cadence_stamped += 1
            extras.update({STAMP: STAMP_CADENCE, ARRIVAL_MONO_NS: arrival_mono_ns})
        if self._lost:  # the readings lost since the previous sample: the windows over them are named
            extras[LOST_BEFORE] = list(self._lost)
            self._lost.clear()
        self._append(replace(sample, extras=extras))

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        fd = stream.fileno()
        for chunk in iter(lambda: os.read(fd, 1024), b""):
            self._stderr_tail.extend(chunk)
            del self._stderr_tail[:-_STDERR_KEPT_BYTES]


def _terminate_group(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``timeout_s``,
    and reap the child. Never raises for a group that is already gone."""
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    if proc.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)
    # The leader is gone; anything it started in its group goes too.
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
