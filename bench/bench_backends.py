"""RTF of tiny.en across inference libraries, side by side: one backend per library of the backend table.

The backends are the table's (runner/backends.py): the first row of each inference library that runs on the
CPU of an x86 host (today faster-whisper, transformers, onnxruntime, pocketsphinx; whisperx is a second
CTranslate2 backend, so it is left out), each with tiny.en in int8 where its library has int8 on the CPU and
with its own defaults otherwise (pocketsphinx: its bundled en-us, in its one precision, fp32). A new backend
of a new library is benchmarked without an edit here; `--list` prints the names (the Makefile builds their
images from it).

One process, the same utterances, the same beam (greedy by default, the one setting every backend
shares), threads and warm-up; each backend runs in its own container through the harness, and the
figure is the harness's inference-window RTF (load and warm-up excluded). A backend whose image or model
is missing is reported with the reason and the others still run. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _harness import QUICK_LIMIT, ROOT, harness_run, make_spec

from runner.backends import BACKENDS, DEFAULT_MODEL
from runner.errors import UserError
from runner.settings import DecodeSettings, Settings, TelemetrySettings
QUANT = "int8"


def bench_rows() -> dict[str, tuple[str, str]]:
    """backend -> (model, quant): the first CPU backend of each library in the table, as the docstring says."""
    rows: dict[str, tuple[str, str]] = {}
    libraries: set[str] = set()
    for be in BACKENDS.values():
        if "cpu" not in be.devices or be.platform_problem("x86") or be.library in libraries:
            continue
        libraries.add(be.library)
        model = be.default_model if be.model_format == "bundled" else DEFAULT_MODEL
        rows[be.name] = (model, QUANT if QUANT in be.quants("cpu") else be.default_quant)
    return rows


def main() -> int:
    rows = bench_rows()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(ROOT / "data" / "default"))
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--backends", nargs="*", default=list(rows), choices=list(rows))
    ap.add_argument("--list", action="store_true", help="print the backends benchmarked, one per line, and stop")
    ap.add_argument("--limit", type=int, default=None, help="first N utterances (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help=f"CI's check that the bench still runs: {QUICK_LIMIT} utterances")
    args = ap.parse_args()
    if args.list:
        print("\n".join(rows))
        return 0
    if args.quick:
        args.limit = QUICK_LIMIT
    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-bench-backends-"))
    results: dict[str, str] = {}
    rtf: dict[str, float] = {}
    try:
        for backend in args.backends:
            model, quant = rows[backend]
            settings = Settings(backend=backend, model=model, quant=quant, device="cpu", dataset=args.data,
                                limit=args.limit,
                                decode=DecodeSettings(beam_size=args.beam_size, threads=args.threads),
                                telemetry=TelemetrySettings(sampler="none", baseline_s=0.0))
            try:
                s = harness_run(make_spec(settings, tmp / backend))
            except UserError as exc:
                results[backend] = f"unavailable: {exc}"
                continue
            if s["status"] != "ok":
                results[backend] = f"failed: {s['error']}"
                continue
            rtf[backend] = s["rtf"]
            results[backend] = (f"{model:8s} {quant:5s} RTF {s['rtf']:.4f}  RTFx {s['rtfx']:6.1f}  WER {s['wer']:.4f}  "
                                f"load {s['load_s']:.2f} s  peak RSS {s['peak_rss_mib']:.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"tiny.en across inference libraries (cpu, beam {args.beam_size}, same utterances: {args.data})")
    first = next(iter(rtf), None)  # the table's first library that ran: the others' RTF as a ratio of its
    for backend, line in results.items():
        ratio = f"  RTF/{first} {rtf[backend] / rtf[first]:.2f}" if backend in rtf and rtf[first] else ""
        print(f"  {backend:15s} {line}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
