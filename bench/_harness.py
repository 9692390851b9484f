"""What the benches share: one harness run through the layers `edgeasr run` itself uses, and the quick mode's
check that a bench printed its ratio lines.

The run goes settings -> spec (runner/spec.build_run_spec) -> plan and execute (runner/run.execute_run: plan_run,
then the one executor), the layer `edgeasr run` itself calls, never the command's own handlers: those are the
CLI's view and move when it does, and a bench that called them broke each time (issue 26, item 1).

Importing this module puts the checkout first on sys.path, its runner and its entrypoint (containers/common, which
the runner imports): `python bench/x.py` must measure the code of this checkout, not whichever copy the venv
installed in editable mode or PYTHONPATH names (a worktree's bench measured /work/main's entrypoint). A command a
bench runs gets the same order through ``checkout_env()``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
#: The checkout's packages, in the order they come first on sys.path: the runner, then the entrypoint.
CHECKOUT_PATHS = (str(ROOT), str(ROOT / "containers" / "common"))
for _path in reversed(CHECKOUT_PATHS):
    while _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)


def checkout_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) for a command a bench runs (`python -m runner.cli ...`): PYTHONPATH
    with the checkout's runner and entrypoint first, as this process has them."""
    env = dict(os.environ if env is None else env)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in CHECKOUT_PATHS]
    env["PYTHONPATH"] = os.pathsep.join([*CHECKOUT_PATHS, *rest])
    return env


from runner.models.resolve import default_models_dir  # noqa: E402
from runner.run import execute_run  # noqa: E402
from runner.settings import Settings  # noqa: E402
from runner.spec import RunSpec, build_run_spec  # noqa: E402

#: Quick mode (`make bench BENCH_QUICK=1`, CI): one interleaved pair, two utterances.
QUICK_REPEATS = 1
QUICK_LIMIT = 2


def make_spec(settings: Settings, out: Path, engine: str = "docker") -> RunSpec:
    """The resolved run, every problem in one UserError, as `edgeasr run` resolves it."""
    return build_run_spec(settings, out=str(out), models_dir=default_models_dir(), engine=engine)


def harness_run(spec: RunSpec) -> dict[str, Any]:
    """One container over the spec's dataset, as `edgeasr run` runs it (runner/run.execute_run: plan one group,
    execute it, write the summary); returns the run's summary (summary.json)."""
    return execute_run(spec)


def missing_lines(output: str, patterns: Iterable[str]) -> list[str]:
    """The patterns (regular expressions) no line of ``output`` matches: a bench that stopped printing a ratio
    has broken, whatever its exit code says."""
    lines = output.splitlines()
    return [p for p in patterns if not any(re.search(p, text) for text in lines)]
