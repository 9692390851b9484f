"""Batched vs sequential throughput, per backend, on the same utterances in one process.

Sequential: each utterance decoded alone (batch size 1). Batched: the backend's
batched pipeline (faster-whisper: BatchedInferencePipeline over VAD segments),
which pays off on long audio; short single-segment utterances gain little.
Prints RTFx (audio seconds per processing second) of each and their ratio.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _harness import QUICK_LIMIT, ROOT, harness_run, make_spec

from runner.backends import BACKENDS
from runner.errors import UserError
from runner.launch import docker_engine
from runner.settings import DecodeSettings, Settings, TelemetrySettings


def rtfx(backend: str, model: str, quant: str, data: str, batch_size: int, out: Path, limit: int | None) -> float:
    settings = Settings(backend=backend, model=model, quant=quant, device="cpu", dataset=data, limit=limit,
                        decode=DecodeSettings(batch_size=batch_size), telemetry=TelemetrySettings(sampler="none"))
    summary = harness_run(make_spec(settings, out))
    if summary["status"] != "ok":
        raise UserError(f"{backend} batch {batch_size} failed: {summary['error']}")
    return summary["rtfx"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--quant", default="int8")
    ap.add_argument("--data", default=str(ROOT / "data" / "default"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None, help="first N utterances (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help=f"CI's check that the bench still runs: {QUICK_LIMIT} utterances, faster-whisper only")
    args = ap.parse_args()
    if args.quick:
        args.limit = QUICK_LIMIT
    names = ("faster-whisper",) if args.quick else ("faster-whisper", "whisperx")
    client = docker_engine.connect()
    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-bench-batched-"))
    try:
        for name in names:
            backend = BACKENDS.get(name)
            if backend is None:
                print(f"{name:15s} not available: no such backend in this build")
                continue
            try:
                docker_engine.image_info(client, backend.image)
            except UserError as exc:
                print(f"{name:15s} not available: {exc}")
                continue
            seq = rtfx(name, args.model, args.quant, args.data, 1, tmp / f"{name}-seq", args.limit)
            bat = rtfx(name, args.model, args.quant, args.data, args.batch_size, tmp / f"{name}-bat", args.limit)
            print(f"{name:15s} RTFx sequential {seq:.1f}, batched (batch {args.batch_size}) {bat:.1f}, "
                  f"throughput ratio batched/sequential {bat / seq:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
