"""One run: a backend container over one dataset, merged into summary.json and utterances.jsonl.

What `edgeasr run` does between parsing its flags and showing the result (runner/commands/run.py): download a hub
model that is not installed at its pinned commit (before the run folder exists; the container stays offline),
take the run folder's lock, remove what an earlier run of this folder left, plan one group (a condition per
repeat), run it through the one executor (runner/execute.py) and write the run's summary. Order matters for
honesty: everything is validated before any container starts; the container's raw outputs are kept whatever
happens; the summary is written even when the run failed, with the reason.

Nothing here draws: a ``RunView`` is told what happens and the command renders it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Protocol

from .execute import Callbacks, execute_group
from .host.clock import SYSTEM_CLOCK, Clock
from .host.info import host_facts
from .host.load import busy_from_record
from .host.lock import FolderLock
from .launch.engines import Engine, make_engine
from .plan import plan_run
from .results import ConditionRecord, write_json_atomic
from .spec import RunSpec, with_hub_models
from .tables import write_tables


class RunView(Protocol):
    def note(self, text: str) -> None:
        """A line worth a person's attention (a download, a leftover container removed)."""

    def started(self, spec: RunSpec) -> None:
        """The run is about to start its container: what runs, on what."""

    def progress(self, total: int) -> ContextManager[Callbacks]:
        """Live progress over ``total`` utterances while the container runs: yields the executor's callbacks."""


def _no_progress(_total: int) -> ContextManager[Callbacks]:
    return contextlib.nullcontext(Callbacks())


def run_benchmark(spec: RunSpec, models_dir: Path, view: RunView, clock: Clock = SYSTEM_CLOCK,
                  engine: Engine | None = None) -> dict[str, Any]:
    """`edgeasr run`, start to end, under the run folder's lock; returns the run's summary (its status says
    whether it went well). Raises Interrupted with the hint a person needs when Ctrl-C or SIGTERM stops it.
    ``engine``: what runs the container (default: the spec's, runner/launch/engines.py; tests pass a recorded
    one, tests/recorded_engine.py)."""
    # a hub name that is not installed: the host downloads it at its pinned commit before the lock, so that a
    # refusal leaves no run folder behind; the container stays offline
    spec = with_hub_models(spec, models_dir, log=view.note)
    with FolderLock(spec.out, "run"):
        engine = engine or make_engine(spec.engine)
        for line in engine.reap((str(spec.out),)):
            view.note(line)
        view.started(spec)
        return execute_run(spec, spec.repeats or 1, spec.limit, view.progress, clock, engine)


def execute_run(spec: RunSpec, repeats: int = 1, limit: int | None = None,
                progress: Callable[[int], ContextManager[Callbacks]] = _no_progress,
                clock: Clock = SYSTEM_CLOCK, engine: Engine | None = None) -> dict[str, Any]:
    """Plan one group (a condition per repeat), run it through the executor; returns the run's summary.
    ``progress(total)``: the view's live progress around the container (yields the executor's callbacks)."""
    engine = engine or make_engine(spec.engine)
    image = engine.image(spec)
    job = plan_run(spec, image, repeats, limit)
    host = host_facts(engine.version())
    with progress(sum(len(c.ids) for c in job.conditions)) as callbacks:
        result = execute_group(job, list(job.conditions), engine, host=host, owner_folder=spec.out,
                               callbacks=callbacks, clock=clock)
    data = run_summary(spec.out, result.records)
    if result.interrupted is not None:
        done = data["n_utterances"] - data["n_failed"] - (data.get("n_not_run") or 0)
        raise result.interrupted.with_hint(
            f"{done} of {data['n_utterances']} utterances finished; summary (status interrupted) in "
            f"{spec.out / 'summary.json'}; a run does not resume: rerun the command with another --out")
    return data


#: The figures a run over several repeats lists for every repeat (its ``repeats`` block).
REPEATED_FIGURES = ("wer", "rtf", "load_s", "inference_s", "peak_rss_mib")


@dataclass(frozen=True)
class Repeats:
    """What a run over several repeats says of all of them, taken once from their summaries: the ``repeats``
    block (each repeat's status and figures, its folder) and the headline that replaces the first repeat's
    (the first repeat that was not ok gives status and error; counts are sums; one busy repeat's host record
    makes every figure suspect, so it is shown at the top)."""

    n: int
    status: tuple[Any, ...]
    figures: tuple[tuple[str, tuple[Any, ...]], ...]  # (name, each repeat's value), REPEATED_FIGURES order
    energy_per_audio_s_j: tuple[Any, ...]
    folders: tuple[str, ...]
    busy_host_load: Mapping[str, Any] | None
    overall_status: str
    error: str | None
    n_failed: int
    n_not_run: int
    n_utterances: int

    @classmethod
    def of(cls, out: Path, records: list[ConditionRecord]) -> Repeats:
        per = [r.summary for r in records]
        busy = [p["host_load"] for p in per if busy_from_record(p.get("host_load"))]
        bad = [p for p in per if p.get("status") != "ok"]
        return cls(n=len(per), status=tuple(p.get("status") for p in per),
                   figures=tuple((name, tuple(p.get(name) for p in per)) for name in REPEATED_FIGURES),
                   energy_per_audio_s_j=tuple((p.get("energy") or {}).get("energy_per_audio_s_j") for p in per),
                   folders=tuple(str(out / "conditions" / r.condition["key"]) for r in records),
                   busy_host_load=busy[0] if busy else None,
                   overall_status=bad[0]["status"] if bad else "ok", error=bad[0].get("error") if bad else None,
                   n_failed=sum(p.get("n_failed") or 0 for p in per),
                   n_not_run=sum(p.get("n_not_run") or 0 for p in per),
                   n_utterances=sum(p.get("n_utterances") or 0 for p in per))

    def to_json(self) -> dict[str, Any]:
        """The ``repeats`` block, as summary.json has always stored it."""
        return {"n": self.n, "status": list(self.status), **{k: list(v) for k, v in self.figures},
                "energy_per_audio_s_j": list(self.energy_per_audio_s_j), "folders": list(self.folders)}

    def headline(self) -> dict[str, Any]:
        """The run summary's fields these repeats decide, in the order they are written."""
        busy = {} if self.busy_host_load is None else {"host_load": self.busy_host_load}
        return {**busy, "status": self.overall_status, "error": self.error, "n_failed": self.n_failed,
                "n_not_run": self.n_not_run, "n_utterances": self.n_utterances}


def run_summary(out: Path, records: list[ConditionRecord]) -> dict[str, Any]:
    """The run folder's summary: the one condition's, or over several repeats the first one's figures with
    every repeat's beside them (``repeats``) and the tables (conditions.jsonl, results.csv). Built in one step
    from the first repeat's stored summary and a frozen Repeats, never edited after."""
    if len(records) == 1:
        return dict(records[0].summary)
    write_tables(out, records)
    repeats = Repeats.of(out, records)
    summary = {**records[0].summary, "repeats": repeats.to_json(), **repeats.headline()}
    write_json_atomic(out / "summary.json", summary)
    return summary
