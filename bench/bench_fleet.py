"""Fleet benchmark: Ray's scheduling overhead per group, and the speed-up of two nodes over one on one plan.

A local fleet on 127.0.0.1 (runner/fleet/local.py, the node agent's own commands): first one node of target
``bench``, then two nodes of the same target, each running the same plan (GROUPS equal groups of faster-whisper
tiny.en int8, one thread each, no power sampling, so that nothing but the groups' own work differs). Printed:

- overhead per group, median over the groups of both runs: driver submit (or, for a group that waited for its
  node, the end of the group before it there) -> task start on the node, task start -> the container's first
  event (data from the object store or cache, engine start), and the task's end -> its files written in the
  results folder;
- the wall time of each run and the speed-up (ideal 2.0 for equal groups; on a machine with fewer free cores
  than nodes times threads, the containers compete and it is less).

    python bench/bench_fleet.py [--groups 4] [--limit 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.fleet.local import LocalFleet  # noqa: E402  (the project root first, as in a checkout)

PORT, CLIENT_PORT = 6395, 20041  # not the demo's nor the tests'


def experiment(folder: Path, groups: int, limit: int) -> Path:
    # timeout_s values differ only to make GROUPS distinct containers of equal work
    timeouts = ", ".join(str(600 + i) for i in range(groups))
    path = folder / "fleet-bench.yaml"
    path.write_text(f"""name: fleet-bench
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: {ROOT / 'data' / 'default'}
  limit: {limit}
  decode: {{beam_size: 1, language: en, threads: 1}}
  warmup: 1
  telemetry: {{sampler: none}}
  target: bench
grid:
  timeout_s: [{timeouts}]
""")
    return path


def run(targets: tuple[str, ...], exp: Path, out: Path) -> tuple[float, list[dict]]:
    fleet = LocalFleet(targets, PORT, CLIENT_PORT, token_file=exp.parent / "fleet-token")  # not the user's token
    fleet.down()
    fleet.up()
    try:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "runner.cli", "sweep", str(exp), "--out", str(out), "--cluster",
                            fleet.address], cwd=ROOT, env=fleet.env(), capture_output=True, text=True)
        wall = time.perf_counter() - t0
    finally:
        fleet.down()
    if r.returncode != 0:
        raise SystemExit(f"the sweep failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return wall, json.loads((out / "fleet-timing.json").read_text())


def dispatch(timings: list[dict]) -> list[dict]:
    """Each group with ``ready``: when Ray could first start it, its submit or the end of the previous group on
    the node that ran it (groups wait for their node by design; that wait is not overhead)."""
    out, last_end = [], {}
    for t in sorted(timings, key=lambda t: t["task_start"]):
        out.append({**t, "ready": max(t["submitted"], last_end.get(t["node_id"], 0.0))})
        last_end[t["node_id"]] = t["task_end"]
    return out


def makespan(timings: list[dict]) -> float:
    """Seconds from the first group submitted to the last group's files written."""
    return max(t["written"] for t in timings) - min(t["submitted"] for t in timings)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", type=int, default=4)
    p.add_argument("--limit", type=int, default=8, help="utterances per group")
    p.add_argument("--quick", action="store_true", help="CI's check that the bench still runs: 2 groups of 2 "
                                                        "utterances (the speed-up is then mostly start-up)")
    args = p.parse_args()
    if args.quick:
        args.groups, args.limit = 2, 2
    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-bench-fleet-"))
    try:
        exp = experiment(tmp, args.groups, args.limit)
        one_wall, one = run(("bench",), exp, tmp / "one")
        two_wall, two = run(("bench", "bench"), exp, tmp / "two")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    timings = dispatch(one) + dispatch(two)
    med = {name: statistics.median(t[b] - t[a] for t in timings if t.get(a) is not None and t.get(b) is not None)
           for name, (a, b) in {"submit (or its node free) -> task start": ("ready", "task_start"),
                                "task start -> container's first event": ("task_start", "container_first_event"),
                                "task end -> written": ("task_end", "written")}.items()}
    print(f"fleet: {args.groups} equal groups (faster-whisper tiny.en int8, {args.limit} utterances, 1 thread), "
          f"Ray on 127.0.0.1")
    for name, seconds in med.items():
        print(f"  overhead per group, {name}: {seconds * 1000:.0f} ms (median of {len(timings)})")
    span_one, span_two = makespan(one), makespan(two)
    print(f"  one node:  {span_one:.1f} s from the first submit to the last group written ({one_wall:.1f} s wall, "
          f"with connecting and preflight)")
    print(f"  two nodes: {span_two:.1f} s ({two_wall:.1f} s wall) on {len({t['node_id'] for t in two})} node(s)")
    print(f"  speed-up of two nodes over one: {span_one / span_two:.2f} (ideal 2.0 for equal groups); "
          f"wall to wall {one_wall / two_wall:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
