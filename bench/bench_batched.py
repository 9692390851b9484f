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


from runner.backends import BACKENDS
from runner.run import execute_run
from runner.errors import UserError
from runner.launch import docker_engine
from runner.models.resolve import default_models_dir
from runner.spec import build_run_spec

ROOT = Path(__file__).resolve().parents[1]


def rtfx(backend: str, model: str, quant: str, data: str, batch_size: int, out: Path) -> float:
    spec = build_run_spec(backend=backend, model=model, quant=quant, device="cpu", data=data, out=str(out),
                          models_dir=default_models_dir(), batch_size=batch_size, telemetry="none")
    summary = execute_run(spec)
    if summary["status"] != "ok":
        raise UserError(f"{backend} batch {batch_size} failed: {summary['error']}")
    return summary["rtfx"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--quant", default="int8")
    ap.add_argument("--data", default=str(ROOT / "data" / "default"))
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    client = docker_engine.connect()
    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-bench-batched-"))
    try:
        for name in ("faster-whisper", "whisperx"):
            backend = BACKENDS.get(name)
            if backend is None:
                print(f"{name:15s} not available: no such backend in this build")
                continue
            try:
                docker_engine.image_info(client, backend.image)
            except UserError as exc:
                print(f"{name:15s} not available: {exc}")
                continue
            seq = rtfx(name, args.model, args.quant, args.data, 1, tmp / f"{name}-seq")
            bat = rtfx(name, args.model, args.quant, args.data, args.batch_size, tmp / f"{name}-bat")
            print(f"{name:15s} RTFx sequential {seq:.1f}, batched (batch {args.batch_size}) {bat:.1f}, "
                  f"throughput ratio batched/sequential {bat / seq:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
