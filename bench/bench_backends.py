"""RTF of tiny.en int8 across backends, side by side: faster-whisper, transformers, onnxruntime, pocketsphinx.

One process, the same utterances, the same beam (greedy by default, the one setting every backend
shares), threads and warm-up; each backend runs in its own container through the harness, and the
figure is the harness's inference-window RTF (load and warm-up excluded). pocketsphinx has one
precision, fp32 (its model is not quantized): it is printed as such. A backend whose image or model
is missing is reported with the reason and the others still run. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from runner.commands.run import execute
from runner.errors import UserError
from runner.models.resolve import default_models_dir
from runner.spec import build_run_spec

ROOT = Path(__file__).resolve().parents[1]

# backend -> (model, quant): tiny.en int8 where the backend has int8.
ROWS = {"faster-whisper": ("tiny.en", "int8"), "transformers": ("tiny.en", "int8"),
        "onnxruntime": ("tiny.en", "int8"), "pocketsphinx": ("en-us", "fp32")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(ROOT / "data" / "default"))
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--backends", nargs="*", default=list(ROWS))
    args = ap.parse_args()
    console = Console(stderr=True)
    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-bench-backends-"))
    results: dict[str, str] = {}
    try:
        for backend in args.backends:
            model, quant = ROWS[backend]
            try:
                spec = build_run_spec(backend=backend, model=model, quant=quant, device="cpu", data=args.data,
                                      out=str(tmp / backend), models_dir=default_models_dir(),
                                      beam_size=args.beam_size, threads=args.threads, telemetry="none",
                                      baseline_s=0.0)
                s = execute(spec, console)
            except UserError as exc:
                results[backend] = f"unavailable: {exc}"
                continue
            if s["status"] != "ok":
                results[backend] = f"failed: {s['error']}"
                continue
            results[backend] = (f"{model:8s} {quant:5s} RTF {s['rtf']:.4f}  RTFx {s['rtfx']:6.1f}  WER {s['wer']:.4f}  "
                                f"load {s['load_s']:.2f} s  peak RSS {s['peak_rss_mb']:.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"tiny.en int8 across backends (cpu, beam {args.beam_size}, same utterances: {args.data})")
    for backend, line in results.items():
        print(f"  {backend:15s} {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
