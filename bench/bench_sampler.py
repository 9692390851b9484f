"""Sampler cost benchmark: CPU seconds per minute of sampling, and achieved vs asked interval.

Measures the runner's own cost (its reader/polling thread: parsing, stamping,
appending) while the main thread sleeps, from the process's CPU time. Target:
under 1% of one core at 100 ms. Here no Jetson exists, so tegrastats is the FAKE
in tests/fixtures/fake_bin (real line format); its own CPU is not counted, as
the real tegrastats is NVIDIA's program, not ours. Other samplers run where
their probe says they can.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

from _harness import ROOT

from runner.telemetry.samplers.registry import make_sampler

TARGET_PCT = 1.0


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(name: str, interval_ms: int, seconds: float) -> str:
    sampler = make_sampler(name, interval_ms)
    probe = sampler.probe()
    if not probe.ok:
        return f"{name:10s} unavailable: {probe.reason}"
    with sampler:
        time.sleep(0.5)  # let the child start: its start-up is not the steady cost
        c0, t0 = cpu_s(), time.perf_counter()
        time.sleep(seconds)
        c1, t1 = cpu_s(), time.perf_counter()
    used = c1 - c0
    times = [s.t_ns for s in sampler.samples]
    gaps = [(b - a) / 1e6 for a, b in zip(times, times[1:])]
    pct = 100.0 * used / (t1 - t0)
    return (f"{name:10s} {used * 60 / (t1 - t0):.3f} CPU s per minute = {pct:.2f}% of one core "
            f"(target < {TARGET_PCT}%) {'OK' if pct < TARGET_PCT else 'OVER'}; interval asked {interval_ms} ms, "
            f"achieved mean {statistics.mean(gaps):.1f} ms (p99 {sorted(gaps)[int(0.99 * (len(gaps) - 1))]:.1f} ms, "
            f"{len(times)} samples)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--interval-ms", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="CI's check that the bench still runs: 2 s per sampler")
    args = ap.parse_args()
    if args.quick:
        args.seconds = 2.0
    os.environ["PATH"] = f"{ROOT / 'tests' / 'fixtures' / 'fake_bin'}{os.pathsep}{os.environ['PATH']}"
    print(f"sampler cost over {args.seconds:g} s at {args.interval_ms} ms (tegrastats: the FAKE, runner side only)")
    for name in ("tegrastats", "jtop", "nvml", "rapl"):
        print(measure(name, args.interval_ms, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
