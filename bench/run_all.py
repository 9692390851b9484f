"""`make bench`: every bench in turn, each one's output checked for the ratio lines it exists to print.

A bench that stops printing its ratio (a refactor broke it, a backend went missing) fails here with the line it
lacks, whatever its own exit code said; the others still run. ``--quick`` (`make bench BENCH_QUICK=1`, and
tests/e2e/test_bench_e2e.py in CI) runs each in its short mode: one interleaved pair, two utterances; its
figures check that the benches run, they are not measurements.

    python bench/run_all.py [--quick] [--only overhead,backends] [--skip fleet] [--model tiny.en] ...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import ROOT, missing_lines

BENCH = Path(__file__).resolve().parent
NUMBER = r"-?\d+(\.\d+)?"


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    ratio_lines: tuple[str, ...]  # regular expressions, each must match a line of its stdout


def benches(args: argparse.Namespace) -> list[tuple[Bench, list[str]]]:
    """Each bench with its arguments; the backends bench must print an RTF for every backend it lists."""
    listed = subprocess.run([sys.executable, str(BENCH / "bench_backends.py"), "--list"], capture_output=True,
                            text=True, check=True).stdout.split()
    quick = ["--quick"] if args.quick else []
    model = ["--model", args.model, "--quant", args.quant]
    first = listed[0] if listed else "faster-whisper"
    table = [
        (Bench("overhead", "bench_overhead.py",
               (rf"^harness/bare \(.*\): median {NUMBER}, of minima {NUMBER}",
                rf"^overhead outside inference .*container start \+ merge {NUMBER} s")),
         [*model, *(["--image", args.image] if args.image else []),
          *(["--repeats", str(args.repeats)] if args.repeats else []), *quick]),
        (Bench("sampler", "bench_sampler.py", (rf"^tegrastats .* = {NUMBER}% of one core",)), quick),
        (Bench("batched", "bench_batched.py", (rf"^faster-whisper .*ratio batched/sequential {NUMBER}",)),
         [*model, *quick]),
        (Bench("backends", "bench_backends.py",
               tuple(rf"^  {name} .* RTF {NUMBER} .*RTF/{first} {NUMBER}" for name in listed)), quick),
        (Bench("sweep", "bench_sweep.py", (rf"^sweep efficiency: \(load \+ warm-up \+ inference\) / wall {NUMBER} %",
                                           r"^  where the wall went: ")), quick),
        (Bench("stream", "bench_stream.py",
               (rf"^stream pacing jitter .* p99 {NUMBER} ms, .* p99/target {NUMBER}",
                rf"^stream machinery CPU share: .* = {NUMBER} %; share/target {NUMBER}")), quick),
        (Bench("fleet", "bench_fleet.py", (rf"speed-up of two nodes over one: {NUMBER}",
                                           rf"bound min\(2, left / one node's container cores\): {NUMBER}")), quick),
    ]
    only = set(args.only.split(",")) if args.only else None
    skip = set(args.skip.split(",")) if args.skip else set()
    return [(b, a) for b, a in table if (only is None or b.name in only) and b.name not in skip]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="each bench's short mode (CI)")
    ap.add_argument("--only", default="", help="comma-separated bench names (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated bench names to leave out")
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--quant", default="int8")
    ap.add_argument("--image", default=None, help="the overhead bench's image (default: its own)")
    ap.add_argument("--repeats", type=int, default=None, help="the overhead bench's interleaved pairs")
    args = ap.parse_args()
    failed: list[str] = []
    times: list[str] = []
    for bench, bench_args in benches(args):
        cmd = [sys.executable, str(BENCH / bench.script), *bench_args]
        print(f"== {bench.name}: {' '.join(Path(c).name if c.startswith('/') else c for c in cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # stderr: the bench's progress
        times.append(f"{bench.name} {time.perf_counter() - t0:.0f} s")
        sys.stdout.write(proc.stdout)
        sys.stdout.flush()
        missing = missing_lines(proc.stdout, bench.ratio_lines)
        if proc.returncode != 0:
            failed.append(f"{bench.name}: exit {proc.returncode}")
        elif missing:
            failed.append(f"{bench.name}: no line matching {', '.join(repr(m) for m in missing)}")
    print(f"benches' wall: {', '.join(times)}")
    for problem in failed:
        print(f"bench failed: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
