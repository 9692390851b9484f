"""Harness overhead benchmark: edgeasr's inference window vs a bare faster-whisper script, in one process.

Both sides use the same model folder, quant, beam size, threads and utterances,
and both decode audio outside the timed window. The bare side is the shortest
honest loop: WhisperModel, one warm-up, then transcribe + consume the segments.
Sides alternate (bare, harness, bare, harness, ...) so that slow drift of the
machine hits both alike. Prints ratios; asserts nothing (targets are printed).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "containers" / "common"))

from edgeasr_entrypoint.audio import load_audio  # noqa: E402  (path set just above)
from rich.console import Console  # noqa: E402

from runner.commands.run import execute  # noqa: E402
from runner.models import default_models_dir  # noqa: E402
from runner.spec import build_run_spec  # noqa: E402

TARGET_RATIO = 1.05
TARGET_OVERHEAD_S = 3.0


def bare_rtf(model_dir: Path, compute_type: str, beam_size: int, threads: int, audio_files: list[Path]) -> float:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads, num_workers=1)
    audios = [load_audio(str(p)) for p in audio_files]
    segments, _ = model.transcribe(audios[0], beam_size=beam_size, temperature=0.0)
    list(segments)  # warm-up, like the harness's default --warmup 1
    proc = 0.0
    for audio in audios:
        t0 = time.perf_counter()
        segments, _ = model.transcribe(audio, beam_size=beam_size, temperature=0.0)
        "".join(s.text for s in segments)
        proc += time.perf_counter() - t0
    return proc / (sum(len(a) for a in audios) / 16000.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--quant", default="int8", choices=["fp32", "int8"])
    ap.add_argument("--data", default=str(ROOT / "data" / "default"))
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    console = Console(stderr=True)
    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-bench-"))
    harness, bare, overheads = [], [], []
    try:
        for i in range(args.repeats):
            spec = build_run_spec(backend="faster-whisper", model=args.model, quant=args.quant, device="cpu",
                                  data=args.data, out=str(tmp / f"run{i}"), models_dir=default_models_dir(),
                                  beam_size=args.beam_size, threads=args.threads)
            files = [u.audio for u in spec.dataset.utterances]
            bare.append(bare_rtf(spec.model.host_dir, spec.backend_quant, args.beam_size, spec.decode.threads, files))
            console.print(f"repeat {i + 1}: bare RTF {bare[-1]:.4f}")
            summary = execute(spec, console)
            if summary["status"] != "ok":
                console.print(f"harness run failed: {summary['error']}")
                return 1
            harness.append(summary["rtf"])
            overheads.append(summary["overhead_s"])
            console.print(f"repeat {i + 1}: harness RTF {harness[-1]:.4f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = statistics.mean(harness) / statistics.mean(bare)
    o = {k: statistics.mean(d[k] for d in overheads) for k in overheads[0]}
    start_merge = o["engine_start_s"] + o.get("boot_s", 0.0) + o.get("exit_s", 0.0) + o["merge_s"]
    print(f"model {args.model} {args.quant}, {len(files)} utterances, {args.repeats} repeats, "
          f"threads {spec.decode.threads}, beam {args.beam_size}")
    print(f"RTF harness {statistics.mean(harness):.4f}  bare {statistics.mean(bare):.4f}  "
          f"ratio harness/bare {ratio:.3f}  (target <= {TARGET_RATIO})  {'OK' if ratio <= TARGET_RATIO else 'OVER'}")
    print(f"overhead outside inference: engine start {o['engine_start_s']:.2f} s, interpreter boot "
          f"{o.get('boot_s', float('nan')):.2f} s, exit {o.get('exit_s', float('nan')):.2f} s, "
          f"merge {o['merge_s']:.2f} s")
    print(f"container start + merge {start_merge:.2f} s (target <= {TARGET_OVERHEAD_S} s)  "
          f"{'OK' if start_merge <= TARGET_OVERHEAD_S else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
