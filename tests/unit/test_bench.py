"""make bench's arithmetic and data handling (the measuring itself needs the engine: `make bench`)."""

import importlib.util
import json
import os
import sys
from pathlib import Path

from helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))  # the benches import their shared module (_harness) as scripts do

spec = importlib.util.spec_from_file_location("bench_overhead", ROOT / "bench" / "bench_overhead.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_ratios_line_gives_median_minima_and_spread():
    line = bench.ratios_line("(same versions)", harness=[1.10, 1.00, 1.02], bare=[1.00, 1.00, 0.98], target=True)
    # per pair 1.100, 1.000, 1.041 -> median 1.041; minima 1.00 / 0.98 = 1.020
    assert "median 1.041" in line and "of minima 1.020" in line and "spread 1.000..1.100" in line
    assert "over 3 pairs" in line and "OK" in line
    assert "OVER" in bench.ratios_line("x", [1.2, 1.2], [1.0, 1.0], target=True)
    assert "target" not in bench.ratios_line("x", [1.2], [1.0], target=False)


def test_subset_keeps_audio_under_its_own_manifest(tmp_path):
    manifest = bench.subset(ROOT / "data" / "default", 3, tmp_path / "d")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) == 3 and all((manifest.parent / r["audio"]).is_file() for r in rows)
    assert all("/" not in r["audio"] for r in rows)


def _bench_backends():
    spec = importlib.util.spec_from_file_location("bench_backends", ROOT / "bench" / "bench_backends.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_backends_reads_its_rows_from_the_table(monkeypatch):
    """One backend per inference library, from the table: today's four with tiny.en int8 (pocketsphinx: its
    bundled en-us in fp32), and a CPU backend of a new library joins without an edit of the script."""
    import dataclasses

    from runner import backends

    module = _bench_backends()
    assert module.bench_rows() == {"faster-whisper": ("tiny.en", "int8"), "transformers": ("tiny.en", "int8"),
                                   "onnxruntime": ("tiny.en", "int8"), "pocketsphinx": ("en-us", "fp32")}
    new = dataclasses.replace(backends.BACKENDS["pocketsphinx"], name="newlib", library="newlib",
                              quant_map=backends.quant_map(cpu={"fp32": "float32", "int8": "int8"}))
    monkeypatch.setitem(backends.BACKENDS, "newlib", new)
    assert module.bench_rows()["newlib"] == ("en-us", "int8")


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_bench_that_stops_printing_its_ratio_is_named():
    """Issue 26 item 1: make bench (and CI's quick mode) fails a bench whose ratio line is gone, whatever its
    exit code: the check is each bench's own patterns against its stdout."""
    from _harness import missing_lines

    run_all = _module("run_all")
    args = type("A", (), {"quick": True, "model": "tiny.en", "quant": "int8", "image": None, "repeats": None,
                          "only": "", "skip": ""})()
    table = {b.name: b for b, _ in run_all.benches(args)}
    assert set(table) == {"overhead", "sampler", "batched", "backends", "sweep", "stream", "fleet"}
    good = ("harness/bare (bare in a container of the image): median 1.020, of minima 1.020, spread 1.020..1.020 "
            "over 1 pairs\noverhead outside inference (median): engine start 0.20 s, interpreter boot 0.90 s, "
            "exit 0.10 s, merge 0.05 s; container start + merge 1.25 s (target <= 3.0 s)  OK\n")
    assert missing_lines(good, table["overhead"].ratio_lines) == []
    assert len(missing_lines(good.splitlines()[1], table["overhead"].ratio_lines)) == 1
    backends = "\n".join(f"  {name:15s} tiny.en  int8  RTF 0.0500  RTFx 20.0  RTF/faster-whisper 1.00"
                          for name in ("faster-whisper", "transformers", "onnxruntime", "pocketsphinx"))
    assert missing_lines(backends, table["backends"].ratio_lines) == []
    assert missing_lines(backends.replace("  pocketsphinx", "  unavailable"), table["backends"].ratio_lines)


def test_the_sweep_bench_splits_a_containers_life_from_its_events():
    """The sweep-efficiency line's parts: inside the container from its events (preparation taken out of the
    conditions' windows), the rest from what the sweep recorded; what no phase explains is left unaccounted."""
    bench_sweep = _module("bench_sweep")

    def ev(name, t_s, **kw):
        return {"event": name, "t_ns": int(t_s * 1e9), **kw}

    events = [ev("container_start", 0), ev("load_start", 0.5), ev("load_end", 2.5), ev("warmup_start", 2.5),
              ev("warmup_end", 3.0), ev("inference_start", 3.0), ev("condition_start", 3.0, condition="a"),
              ev("prepare_start", 3.0, condition="a"), ev("prepare_end", 3.2, condition="a"),
              ev("condition_end", 5.0, condition="a"), ev("inference_end", 5.0), ev("container_end", 5.5)]
    inside = bench_sweep.container_phases(events)
    assert inside["load"] == 2.0 and inside["warm-up"] == 0.5 and inside["loaded idle"] == 0.0
    assert round(inside["prepare/noise"], 6) == 0.2 and round(inside["inference"], 6) == 1.8
    assert round(inside["in container, other"], 6) == 1.0 and inside["span"] == 5.5


def test_the_sweep_bench_counts_a_container_started_ahead_only_from_its_go(tmp_path):
    """Issue 26 item 2: a container started ahead (a held start) booted while the one before it exited and was
    merged: its engine start, boot and hold are overlapped time (``ahead_s``), shown apart and not in the wall's
    parts; inside it only what follows hold_end counts; the parts still sum to the wall."""
    bench_sweep = _module("bench_sweep")

    def ev(name, t_s, **kw):
        return {"event": name, "t_ns": int(round(t_s * 1e9)), **kw}

    def work(t0):  # load 2 s, warm-up 0.5 s, one condition of 2 s (0.2 s of it preparing its audio)
        return [ev("load_start", t0), ev("load_end", t0 + 2), ev("warmup_start", t0 + 2), ev("warmup_end", t0 + 2.5),
                ev("inference_start", t0 + 2.5), ev("condition_start", t0 + 2.5, condition="a"),
                ev("prepare_start", t0 + 2.5, condition="a"), ev("prepare_end", t0 + 2.7, condition="a"),
                ev("condition_end", t0 + 4.5, condition="a"), ev("inference_end", t0 + 4.5)]

    groups = []
    for name, events, timing in (
            ("g1", [ev("container_start", 0), *work(0.5), ev("container_end", 5.5)],
             {"engine_start_s": 0.4, "boot_s": 0.6, "exit_s": 0.3, "container_s": 7.0, "total_s": 7.5}),
            ("g2", [ev("container_start", 100), ev("hold_start", 100.3), ev("hold_end", 101), *work(101),
                    ev("container_end", 106)],
             {"engine_start_s": 0.4, "boot_s": 0.6, "exit_s": 0.3, "container_s": 5.4, "total_s": 5.9,
              "ahead_s": 1.8})):
        raw = tmp_path / name / "raw"
        raw.mkdir(parents=True)
        (raw / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        groups.append({"group_dir": str(raw.parent), "n_conditions": 1, "baseline_s": 0.0, "tail_s": 0.0,
                       "final_s": 0.5, **timing})
    timing = {"groups": groups, "sweep_s": 13.6, "report_s": 1.0, "total_s": 15.1}
    p = bench_sweep.phases(16.1, timing, tmp_path)
    want = {"command start": 1.0, "set-up": 0.5, "tables": 0.2, "load": 4.0, "warm-up": 1.0, "prepare/noise": 0.4,
            "inference": 3.6, "in container, other": 1.5, "engine start": 0.4, "boot": 0.6, "exit": 0.6,
            "engine, other": 0.3, "merge": 1.0, "report": 1.0, "unaccounted": 0.0}
    assert {k: round(v, 6) for k, v in p.items() if v} == {k: v for k, v in want.items() if v}
    assert round(bench_sweep.overlapped_s(timing), 6) == 1.8


def test_the_sweep_bench_measures_this_checkouts_runner_and_entrypoint(tmp_path):
    """Run from a checkout (a worktree), the sweep bench measures that checkout's code, not the copy the
    interpreter would find first (here, a copy of both packages on PYTHONPATH, as an installed one): the runner
    and the entrypoint it imports, and those of the `edgeasr sweep` it runs and times."""
    import shutil
    import subprocess

    installed = tmp_path / "installed"
    shutil.copytree(ROOT / "runner", installed / "runner")
    shutil.copytree(ROOT / "containers" / "common" / "edgeasr_entrypoint", installed / "edgeasr_entrypoint")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)
    where = "import runner, edgeasr_entrypoint; print(runner.__file__); print(edgeasr_entrypoint.__file__)"
    # the bench's own imports, as `python bench/bench_sweep.py` makes them (its folder first on sys.path)
    bench = (f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import bench_sweep; {where}; "
             f"cmd, env = bench_sweep.sweep_command('x.yaml', 'out'); print(repr(cmd)); print(repr(env))")
    lines = subprocess.run([sys.executable, "-c", bench], cwd=tmp_path, env=env, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert [Path(p).resolve().is_relative_to(ROOT) for p in lines[:2]] == [True, True], lines[:2]
    cmd, child_env = eval(lines[2]), eval(lines[3])
    assert cmd[1:4] == ["-m", "runner.cli", "sweep"]
    # the sweep it times: its runner and its entrypoint under the same environment and folder as the bench's
    child = subprocess.run([sys.executable, "-c", where], cwd=ROOT, env=child_env, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert [Path(p).resolve().is_relative_to(ROOT) for p in child] == [True, True], child
