"""The one sweep: a plan's groups dispatched, resumed and recorded in one results folder, here or on a fleet.

`edgeasr sweep` here (``local_sweep``) and on a Ray fleet (runner/fleet/driver.py) both end in ``run_sweep``: it
takes the folder's lock, removes the stored results on ``--force``, writes the manifest, finds what is still to
run (a finished condition is kept; ``retry_failed`` reruns the failed ones; a corrupt one is redone), hands each
group with work left to a dispatcher, rebuilds the tables after every group, and writes the manifest's end.
Only the dispatcher differs:

- ``LocalDispatcher`` runs the groups in turn on this host's engine (runner/execute.py);
- ``fleet.driver.RayDispatcher`` submits every group to a node of its target, waits for them as they end
  (keeping its ledger and retries), and removes the sweep's containers on every node at the end.

One group's failure never stops the others: the executor records it as that group's conditions failing with
the reason (runner/execute.py), and a rerun skips them like any finished condition (``retry_failed`` reruns
them).

**Planning that adapts** (the seam for live audio's capacity search): groups come from a ``Planner``, not a
fixed list. ``first()`` gives the groups to start with; after each group's records are in the tables,
``after(done)`` may return more groups (the next probe), which are keyed, resumed and dispatched like the
first ones and join the tables and the manifest. A group whose conditions are all stored already is handed to
``after`` at once with its stored records, so a search resumed after an interruption replays its decisions
without running a probe twice. The sweep ends when nothing runs and the planner has nothing more to add.
``FixedPlan`` is the planner of a sweep file: it never adds.

Nothing here draws: a ``SweepView`` is told what happens and the commands render it.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Protocol

from . import tables
from .errors import Interrupted, UserError
from .execute import SWEEP_LABEL, Ahead, Callbacks, execute_group, failed_group, stamp, start_ahead
from .host.clock import SYSTEM_CLOCK, Clock, elapsed_s
from .host.info import device_facts, git_commit, host_facts
from .host.lock import FolderLock
from .launch.engines import Engine, make_engine
from .plan import GroupJob, PlannedCondition, check_host, plan_sweep, stable_hash
from .results import ConditionRecord, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]

#: A group and its conditions still to run.
Todo = tuple[GroupJob, list[PlannedCondition]]


@dataclass(frozen=True)
class GroupDone:
    """A group that ended, or had nothing left to run (``ran`` False): its conditions' stored records.
    ``interrupted``: Ctrl-C or SIGTERM ended it; ``lost``: its conditions lost with their node (a fleet)."""

    job: GroupJob
    records: tuple[ConditionRecord, ...] = ()
    interrupted: Interrupted | None = None
    lost: int = 0
    ran: bool = True


@dataclass(frozen=True)
class SweepStart:
    """What the view shows before the first group: the plan and how much of it is done."""

    name: str
    out: Path
    planned: tuple[GroupJob, ...]
    todo: tuple[Todo, ...]
    changed: dict[str, int] = field(default_factory=dict)  # reason -> conditions rerun for it

    @property
    def n_total(self) -> int:
        return sum(len(job.conditions) for job in self.planned)

    @property
    def n_pending(self) -> int:
        return sum(len(pending) for _, pending in self.todo)


@dataclass(frozen=True)
class SweepOutcome:
    """How a sweep ended: every condition's record (plan order), those lost with their node, the time taken."""

    out: Path
    records: tuple[ConditionRecord, ...]
    lost: int
    elapsed_s: float

    @property
    def failed(self) -> list[ConditionRecord]:
        return [r for r in self.records if r.status != "ok"]

    @property
    def exit_code(self) -> int:
        """0 every condition ok, 1 some condition failed or was lost (each recorded with its reason)."""
        return 1 if self.failed or self.lost else 0


@dataclass(frozen=True)
class SweepOptions:
    force: bool = False  # rerun every condition, finished or not
    retry_failed: bool = False  # rerun the conditions that failed


class Planner(Protocol):
    """Where a sweep's groups come from (see the module doc)."""

    def first(self) -> list[GroupJob]:
        """The groups to start with."""

    def after(self, done: GroupDone) -> list[GroupJob]:
        """More groups, now that ``done`` has its records (stored already, or just run); [] for none."""


@dataclass(frozen=True)
class FixedPlan:
    """The planner of a sweep file: its planned groups, all at once; it never adds."""

    groups: tuple[GroupJob, ...]

    def first(self) -> list[GroupJob]:
        return list(self.groups)

    def after(self, done: GroupDone) -> list[GroupJob]:
        return []


class Dispatcher(Protocol):
    """Runs groups somewhere: submitted, waited for as they end, cancelled or closed at the sweep's end."""

    #: The facts of the host driving the sweep (the manifest's ``host``).
    host: dict[str, Any]

    def start(self) -> list[str]:
        """Before anything: clear what earlier runs left (lines for the view)."""

    def manifest(self) -> dict[str, Any]:
        """Keys the manifest adds for this dispatcher (a fleet's nodes), {} for none."""

    def submit(self, job: GroupJob, pending: list[PlannedCondition]) -> None:
        """Start ``pending`` of ``job`` (or queue it)."""

    def busy(self) -> bool:
        """Whether a submitted group has not been waited for yet."""

    def wait(self) -> list[GroupDone]:
        """Block until one or more submitted groups end; their results are on disk when this returns."""

    def cancel(self, interrupted: bool) -> None:
        """The sweep stops early: stop every group still submitted and what it started."""

    def close(self) -> None:
        """The sweep ended: clean up after every group."""


class SweepView(Protocol):
    """What a sweep tells the person watching it (the commands draw it; tests write it down)."""

    def note(self, text: str, level: str = "info") -> None:
        """A line worth a person's attention; ``level``: info, warning or error."""

    def running(self, start: SweepStart) -> ContextManager:
        """Shows the sweep while its groups run (the header, then live progress)."""

    def added(self, todo: list[Todo]) -> None:
        """The planner added groups while the sweep ran (their conditions still to run)."""


def manifest(exp, planned: Iterable[GroupJob], started: str, finished: str | None, host: dict[str, Any],
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """manifest.json: the experiment as resolved, the images, host and device, the commit, the counts."""
    planned = list(planned)
    images = {pc.image.id: {"tags": pc.image.tags, "labels": pc.image.labels} for pc in planned if pc.image}
    return {
        "schema_version": 1,
        "name": exp.name,
        "title": exp.description or exp.name,
        "experiment": exp.resolved,
        "started_at": started,
        "finished_at": finished,
        "images": images,
        "host": host,
        "device": device_facts(),
        "git_commit": git_commit(ROOT),
        "n_containers": len(planned),
        "n_conditions": sum(len(pc.conditions) for pc in planned),
        "excluded": list(exp.excluded),
        **(extra or {}),
    }


def run_sweep(exp, out: Path, planner: Planner, dispatcher: Dispatcher, view: SweepView,
              options: SweepOptions = SweepOptions(), clock: Clock = SYSTEM_CLOCK) -> SweepOutcome:
    """The sweep of ``exp`` into ``out``, start to end (see the module doc). Raises Interrupted (with the
    hint a person needs to resume) when Ctrl-C or SIGTERM stops it; every finished condition is kept."""
    # One sweep per results folder: a second one is refused before it touches anything of the first's.
    with FolderLock(out, "sweep"):
        return _Sweep(exp, out, planner, dispatcher, view, options, clock).run()


class _Sweep:
    def __init__(self, exp, out: Path, planner: Planner, dispatcher: Dispatcher, view: SweepView,
                 options: SweepOptions, clock: Clock) -> None:
        self.exp, self.out, self.planner, self.dispatcher, self.view = exp, out, planner, dispatcher, view
        self.options, self.clock = options, clock
        self.planned: list[GroupJob] = []
        self.queue: deque[Todo] = deque()
        self.lost = 0

    def _pending(self, jobs: list[GroupJob]) -> list[Todo]:
        return tables.pending(jobs, self.options.retry_failed, lambda problem: self.view.note(
            f"redoing a condition whose stored result is corrupt: {problem}", "warning"))

    def _manifest(self, started: str, finished: str | None) -> None:
        write_json_atomic(self.out / "manifest.json", manifest(self.exp, self.planned, started, finished,
                                                               self.dispatcher.host, self.dispatcher.manifest()))

    def _after(self, done: GroupDone) -> None:
        """The planner's turn: the groups it adds join the plan, resumed like the first ones."""
        new = self.planner.after(done)
        if new:
            self.planned += new
            todo = self._pending(new)
            self.view.added([(job, pending) for job, pending in todo if pending])
            self.queue.extend(todo)

    def _hint(self, records: list[ConditionRecord], in_progress: bool) -> str:
        n_total = sum(len(job.conditions) for job in self.planned)
        return (f"{len(records)} of {n_total} condition(s) are recorded in {self.out}; "
                + ("the one in progress is recorded as interrupted; " if in_progress else "")
                + "rerun the same command to resume")

    def run(self) -> SweepOutcome:
        for line in self.dispatcher.start():
            self.view.note(line)
        if self.options.force:
            shutil.rmtree(self.out / "conditions", ignore_errors=True)
        started = stamp()
        self.planned = list(self.planner.first())
        self._manifest(started, None)
        changed = tables.changed_inputs(self.out, self.planned)
        todo = self._pending(self.planned)
        self.queue.extend(todo)
        t0 = self.clock.monotonic_ns()
        with self.view.running(SweepStart(self.exp.name, self.out, tuple(self.planned), tuple(todo), changed)):
            try:
                self._loop()
            except BaseException as exc:  # Ctrl-C (or a bug here): nothing submitted outlives the sweep
                self.dispatcher.cancel(isinstance(exc, KeyboardInterrupt))
                records = tables.rebuild_tables(self.out, self.planned)
                if isinstance(exc, KeyboardInterrupt):
                    stop = Interrupted.of(exc)
                    raise (stop if stop.hint else stop.with_hint(self._hint(records, False))) from None
                raise
        self.dispatcher.close()
        records = tables.rebuild_tables(self.out, self.planned)
        self._manifest(started, stamp())
        return SweepOutcome(self.out, tuple(records), self.lost, elapsed_s(self.clock, t0))

    def _loop(self) -> None:
        while self.queue or self.dispatcher.busy():
            while self.queue:
                job, pending = self.queue.popleft()
                if pending:
                    self.dispatcher.submit(job, pending)
                else:  # every condition is stored: the planner hears it as if it had just run
                    self._after(GroupDone(job, tuple(tables.collect([job])), ran=False))
            if not self.dispatcher.busy():
                continue
            for done in self.dispatcher.wait():
                records = tables.rebuild_tables(self.out, self.planned)
                if done.interrupted is not None:  # the container is gone; finished conditions are on disk
                    raise done.interrupted.with_hint(self._hint(records, True))
                self.lost += done.lost
                self._after(done)


TIMING_FILE = "sweep-timing.json"


class LocalDispatcher:
    """The groups in turn on this host's engine (runner/execute.py); each container's idle baseline is the
    level the next one cools down to. ``callbacks_for(job)``: the view's progress for one group.

    The next group's container starts while the last one ends (issue 26 item 2): as a container says
    container_end (its measured work is over) the next queued group is started ahead in a thread
    (execute.start_ahead: engine start, interpreter boot and imports), while this one exits, is removed and merged
    and the tables are rebuilt; it is told to go, and loads its model, only when its own turn comes, so nothing
    of the host's runs beside its load, warm-up or inference. Where that cannot be had (a power sensor, an
    operating point, an older image, an engine without ``start``) each container starts in its turn."""

    def __init__(self, engine: Engine, out: Path, callbacks_for: Callable[[GroupJob], Callbacks] | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.out = out
        self.callbacks_for = callbacks_for or (lambda job: Callbacks())
        self.clock = clock
        self.host = host_facts(engine.version())
        self.sweep_id = stable_hash(str(out))
        self._queue: deque[Todo] = deque()
        self._baseline = None
        #: the next group's container being started ahead: (its key, the thread, [Ahead or None] once started)
        self._ahead: tuple[str, threading.Thread, list[Ahead | None]] | None = None
        #: Each group's host-side seconds (execute.GroupResult.timing_s with the container's engine start, boot
        #: and exit), for sweep-timing.json: where a sweep's wall goes (bench/bench_sweep.py, issue 26)
        self.timing: list[dict[str, Any]] = []

    def start(self) -> list[str]:
        return self.engine.reap((str(self.out),))

    def manifest(self) -> dict[str, Any]:
        return {}

    def submit(self, job: GroupJob, pending: list[PlannedCondition]) -> None:
        self._queue.append((job, pending))

    def busy(self) -> bool:
        return bool(self._queue)

    def _start_ahead(self, job: GroupJob, pending: list[PlannedCondition]) -> None:
        """Start ``job``'s container ahead, in a thread (the engine's calls wait on its daemon, not the CPU)."""
        if self._ahead is not None:
            return
        box: list[Ahead | None] = []
        thread = threading.Thread(target=lambda: box.append(start_ahead(
            job, pending, self.engine, owner_folder=self.out, labels={SWEEP_LABEL: self.sweep_id}, clock=self.clock)),
            name=f"edgeasr-ahead-{job.key}", daemon=True)
        self._ahead = (job.key, thread, box)
        thread.start()

    def _take_ahead(self, job: GroupJob | None) -> Ahead | None:
        """The container started ahead for ``job`` (None: none); one started for another group is discarded."""
        if self._ahead is None:
            return None
        key, thread, box = self._ahead
        thread.join()
        self._ahead = None
        ahead = box[0] if box else None
        if ahead is not None and (job is None or key != job.key):
            ahead.held.discard()
            return None
        return ahead

    def wait(self) -> list[GroupDone]:
        job, pending = self._queue.popleft()
        callbacks = self.callbacks_for(job)
        ahead = self._take_ahead(job)
        following = self._queue[0] if self._queue else None
        try:
            result = execute_group(job, pending, self.engine, host=self.host, owner_folder=self.out,
                                   labels={SWEEP_LABEL: self.sweep_id}, callbacks=callbacks,
                                   previous=self._baseline, clock=self.clock, ahead=ahead,
                                   on_container_end=(lambda: self._start_ahead(*following)) if following else None)
        except Exception as exc:  # one group's failure is its conditions' error records; the others still run
            why = f"the group could not run: {exc if isinstance(exc, UserError) else repr(exc)}"
            result = failed_group(job, pending, why, host=self.host, engine=self.engine.name)
            callbacks.on_notice(why)
        self._baseline = result.baseline or self._baseline
        facts = (result.records[0].summary.get("overhead_s") or {}) if result.records else {}
        self.timing.append({"group_dir": str(job.group_dir), "n_conditions": len(pending),
                            **{k: facts[k] for k in ("engine_start_s", "boot_s", "exit_s") if k in facts},
                            **result.timing_s})
        return [GroupDone(job, tuple(result.records), result.interrupted)]

    def cancel(self, interrupted: bool) -> None:
        self._queue.clear()
        self._take_ahead(None)  # a container started ahead never goes: removed

    def close(self) -> None:
        self._take_ahead(None)


class LocalView(SweepView, Protocol):
    """What a sweep here tells its view besides a sweep's own: each group's live progress, and long steps."""

    def callbacks(self, job: GroupJob) -> Callbacks:
        """The executor's callbacks for ``job`` (its progress while its container runs)."""

    def status(self, text: str) -> ContextManager:
        """Wraps a long step, such as an image build (a spinner)."""


@dataclass(frozen=True)
class LocalOptions:
    """How a sweep runs here: the engine, the models folder, whether missing images and models are made, and
    whether a hub model that is not installed is refused (``offline``) rather than downloaded at its pin."""

    engine: str = "docker"
    models_dir: Path = Path("models")
    prepare: bool = True
    offline: bool = False


def local_sweep(exp, out: Path, view: LocalView, local: LocalOptions,
                options: SweepOptions = SweepOptions()) -> SweepOutcome:
    """`edgeasr sweep` here (the experiment's targets are this host's, runner/fleet.local_targets_problem):
    the host preflight first (a device or operating point this host lacks stops here, before anything is built
    or installed); missing images and models made (unless told not); planned against this engine's images; run
    group after group."""
    engine = make_engine(local.engine)
    host = check_host(exp, engine.name)  # before anything is built or installed: a device this host lacks stops here
    if local.prepare:
        from .images.prepare import prepare

        prepare(exp, local.models_dir, engine=engine.name, log=view.note, status=view.status)
    planned = plan_sweep(exp, engine, local.models_dir, out, host=host, offline=local.offline, log=view.note)
    dispatcher = LocalDispatcher(engine, out, view.callbacks)
    t0 = time.perf_counter()
    outcome = run_sweep(exp, out, FixedPlan(tuple(planned)), dispatcher, view, options)
    # Where this invocation's wall went on the host, beside the containers' own events (bench/bench_sweep.py);
    # `edgeasr sweep` adds its report's seconds and its own total
    write_json_atomic(out / TIMING_FILE, {"sweep_s": time.perf_counter() - t0, "groups": dispatcher.timing})
    return outcome
