"""Sweep efficiency: where every second of a sweep's wall goes, measured in one run (issue 26, item 2).

Runs `edgeasr sweep` on an experiment (default: experiments/smoke.yaml, into a temporary folder) with the wall
measured around the command, then splits that wall from what the run itself recorded:

- in each container, from its events (one clock, the container's): load, warm-up, loaded idle, inference (the
  conditions' windows, audio preparation and noise mixing taken out and shown beside them), the rest of the
  container's life;
- around each container, from the condition summaries (overhead_s) and the sweep's sweep-timing.json: engine
  start, interpreter boot, exit, the idle baseline (with its cool-down), sampling past the end, the merge;
  then the tables and manifest after each container, the sweep's set-up (experiment, host checks, prepare,
  plan) and the report;
- the command's own start (interpreter, imports) is the wall less what the sweep recorded, and what no phase
  explains is printed as unaccounted.

A container started ahead (a held start, contract 5: the sweep starts the next container as the last one says
container_end and tells it to go in its turn) booted while the one before it exited and was merged: its engine
start, boot, imports and hold (its timing's ``ahead_s``) overlap phases already counted, so they are printed apart
("overlapped") and not in the wall's parts; inside it only what follows hold_end counts, and the seconds from the
go to hold_end (a boot the host's work did not cover) are the engine's.

The efficiency is (load + warm-up + inference) / wall, inference being the conditions' windows as the
summaries' inference_s (preparation included); the line says it with and without the report. The target
(issue 26): >= 97 % without the report on a host without a power sensor, >= 95 % with it. A shared machine
inflates the rest: the figures are one run's, noisy.

    python bench/bench_sweep.py [--experiment experiments/smoke.yaml] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import ROOT, checkout_env

from runner.sweep import TIMING_FILE
from edgeasr_entrypoint.contract import PREPARE_WINDOW, WINDOWS, Event

TARGET_PCT, TARGET_WITH_REPORT_PCT = 97.0, 95.0
WORK = ("load", "warm-up", "inference")
ORDER = ("command start", "set-up", "baseline", "engine start", "boot", "load", "warm-up", "loaded idle",
         "prepare/noise", "inference", "in container, other", "exit", "engine, other", "sampling tail", "merge",
         "tables", "report", "unaccounted")


def quick_experiment(folder: Path) -> Path:
    """One container, two conditions (clean, white noise at 10 dB) over two utterances: the shape of a sweep at
    CI's cost."""
    path = folder / "sweep-bench.yaml"
    path.write_text(f"""name: sweep-bench
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: {ROOT / 'data' / 'default'}
  limit: 2
  decode: {{beam_size: 1, language: en}}
  warmup: 1
  noise: {{types: [white], snr_db: [10], clean: true}}
  telemetry: {{sampler: auto, baseline_s: 2}}
""")
    return path


def events_of(group_dir: Path) -> list[dict]:
    path = group_dir / "raw" / "events.jsonl"
    return [json.loads(text) for text in path.read_text().splitlines() if text.strip()] if path.is_file() else []


def windows_s(events: list[dict], start: str, end: str, key: str | None = None) -> float:
    """Seconds inside every (start, end) pair of events, paired in order (``key``: matched on that field)."""
    total, opened = 0.0, {}
    for e in events:
        k = e.get(key) if key else None
        if e.get("event") == start:
            opened[k] = e["t_ns"]
        elif e.get("event") == end and k in opened:
            total += (e["t_ns"] - opened.pop(k)) / 1e9
    return total


def container_phases(events: list[dict]) -> dict[str, float]:
    """Inside one container, from its events; a held one's (WINDOWS["hold"]) from its hold_end on."""
    span = windows_s(events, *WINDOWS["container"])
    if any(e.get("event") == WINDOWS["hold"][1] for e in events):
        span = windows_s(events, WINDOWS["hold"][1], WINDOWS["container"][1])
    cond = windows_s(events, Event.CONDITION_START, Event.CONDITION_END, key="condition")
    prep = windows_s(events, *PREPARE_WINDOW, key="condition")
    out = {"load": windows_s(events, *WINDOWS["load"]), "warm-up": windows_s(events, *WINDOWS["warmup"]),
           "loaded idle": windows_s(events, *WINDOWS["loaded_idle"]), "prepare/noise": prep,
           "inference": cond - prep}
    out["in container, other"] = max(0.0, span - sum(out.values()))
    out["span"] = span
    return out


def phases(wall_s: float, timing: dict, out: Path) -> dict[str, float]:
    """The wall split into ORDER's phases (seconds)."""
    p = dict.fromkeys(ORDER, 0.0)
    p["command start"] = wall_s - timing["total_s"]
    # the command's own: experiment, host checks, prepare, plan, the outcome's lines
    p["set-up"] = timing["total_s"] - timing["sweep_s"] - timing["report_s"]
    p["tables"] = timing["sweep_s"] - sum(g["total_s"] for g in timing["groups"])  # and the manifest, after each
    for g in timing["groups"]:
        inside = container_phases(events_of(Path(g["group_dir"])))
        for name, seconds in inside.items():
            if name != "span":
                p[name] += seconds
        start, boot, exit_ = g.get("engine_start_s", 0.0), g.get("boot_s", 0.0), g.get("exit_s", 0.0)
        if "ahead_s" in g:  # started ahead: its start and boot overlapped the group before (overlapped_s)
            start = boot = 0.0
        p["engine start"] += start
        p["boot"] += boot
        p["exit"] += exit_
        p["engine, other"] += max(0.0, g["container_s"] - start - boot - inside["span"] - exit_)
        p["baseline"] += g["baseline_s"]
        p["sampling tail"] += g["tail_s"]
        p["merge"] += g["final_s"]
    p["report"] = timing["report_s"]
    p["unaccounted"] = wall_s - sum(v for k, v in p.items() if k != "unaccounted")
    return p


def overlapped_s(timing: dict) -> float:
    """Seconds the containers started ahead spent starting, booting and held while the ones before them ended:
    overlapped with phases already counted, not part of the wall."""
    return sum(g.get("ahead_s", 0.0) for g in timing["groups"])


def sweep_command(exp: Path | str, out: Path | str) -> tuple[list[str], dict[str, str]]:
    """The command the bench times, and its environment: `edgeasr sweep` of this checkout (its runner and its
    entrypoint first on the path, as the bench's own imports)."""
    return [sys.executable, "-m", "runner.cli", "sweep", str(exp), "--out", str(out)], checkout_env()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "smoke.yaml"))
    ap.add_argument("--quick", action="store_true", help="CI's check that the bench still runs: one container, "
                                                         "two conditions, two utterances (not the target's sweep)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-bench-sweep-"))
    try:
        exp = quick_experiment(tmp) if args.quick else Path(args.experiment)
        out = tmp / "out"
        t0 = time.perf_counter()
        cmd, env = sweep_command(exp, out)
        r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"the sweep failed ({r.returncode}):\n{r.stderr[-3000:]}")
        timing = json.loads((out / TIMING_FILE).read_text())
        p = phases(wall, timing, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    work = sum(p[k] for k in WORK) + p["prepare/noise"]  # the summaries' inference_s holds the preparation
    pct, pct_no_report = 100 * work / wall, 100 * work / (wall - p["report"])
    n_cond = sum(g["n_conditions"] for g in timing["groups"])
    print(f"sweep {exp.name}: {len(timing['groups'])} containers, "
          f"{n_cond} conditions, wall {wall:.1f} s around the command (one run; a shared host inflates the rest)")
    print(f"sweep efficiency: (load + warm-up + inference) / wall {pct:.1f} % with the report "
          f"(target >= {TARGET_WITH_REPORT_PCT:g} %: {'OK' if pct >= TARGET_WITH_REPORT_PCT else 'UNDER'}), "
          f"{pct_no_report:.1f} % without it (target >= {TARGET_PCT:g} %: "
          f"{'OK' if pct_no_report >= TARGET_PCT else 'UNDER'})")
    print("  where the wall went: " + ", ".join(f"{name} {100 * p[name] / wall:.1f} % ({p[name]:.1f} s)"
                                                 for name in ORDER if p[name] or name in WORK))
    beside = [g for g in timing["groups"] if "beside_s" in g]
    if beside:
        print(f"  the host's own work beside the containers' inference (each condition merged as it ended): "
              f"{sum(g['beside_s'] for g in beside):.2f} s, {sum(g['beside_cpu_s'] for g in beside):.2f} CPU-s")
    ahead = [g for g in timing["groups"] if "ahead_s" in g]
    if ahead:
        print(f"  overlapped, not in the wall: {len(ahead)} container(s) started ahead, "
              f"{overlapped_s(timing):.1f} s starting, booting and held while the one before ended")
    return 0


if __name__ == "__main__":
    sys.exit(main())
