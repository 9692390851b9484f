"""The bare side of `make bench`: the shortest honest faster-whisper loop, run in a venv that holds exactly the
library versions being compared (bench_overhead.py makes it). Prints one JSON line.

Same work as the adapter (containers/faster-whisper/edgeasr_backend_faster_whisper.py): WhisperModel with
cpu_threads and num_workers=1, the same decoding options, one untimed warm-up pass, audio decoded before
the clock starts, and the lazy segments consumed inside the timed window.
"""

import argparse
import json
import sys
import time
from importlib.metadata import version

# edgeasr_entrypoint: the image's copy (PYTHONPATH=/opt/edgeasr) or, in the host's bench venv, the checkout's
# (bench_overhead.py sets PYTHONPATH to containers/common for this process)
from edgeasr_entrypoint.audio import load_audio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--compute-type", required=True)
    ap.add_argument("--beam-size", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--language", default=None)
    ap.add_argument("audio", nargs="+")
    args = ap.parse_args()
    from faster_whisper import WhisperModel

    model = WhisperModel(args.model_dir, device="cpu", compute_type=args.compute_type, cpu_threads=args.threads,
                         num_workers=1)
    audios = [load_audio(p) for p in args.audio]
    kwargs = dict(beam_size=args.beam_size, temperature=0.0, language=args.language)
    segments, _ = model.transcribe(audios[0], **kwargs)
    "".join(s.text for s in segments)  # warm-up, like the harness's default --warmup 1
    proc_s = 0.0
    for audio in audios:
        t0 = time.perf_counter()
        segments, _ = model.transcribe(audio, **kwargs)
        "".join(s.text for s in segments)
        proc_s += time.perf_counter() - t0
    audio_s = sum(len(a) for a in audios) / 16000.0
    print(json.dumps({"rtf": proc_s / audio_s, "audio_s": audio_s, "threads": args.threads,
                      "versions": {n: version(n) for n in ("faster-whisper", "ctranslate2")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
