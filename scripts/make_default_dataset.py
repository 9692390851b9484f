#!/usr/bin/env python3
"""Make the embedded default dataset in data/default/ (run once; its output is committed).

Why a script: the dataset must be reproducible from public sources, so that anyone
can check where every file came from. It needs Debian's ``festival``,
``festvox-us-slt-hts`` and ``sox`` (``apt-get install festival festvox-us-slt-hts sox``)
and the pyannote-audio wheel, which it downloads with pip and unzips (it is not
installed). ``make run`` never calls this script: it uses the committed files.

Contents:
- 20 Harvard sentences (IEEE 1969 "Recommended Practice for Speech Quality
  Measurements", lists 1 and 2; public domain), synthesized with festival's
  CMU US SLT HTS voice: natural enough that Whisper tiny.en reaches a WER of a
  few percent, unlike espeak-ng.
- ``sample.wav`` (30 s, two speakers) with its ``sample.stm`` transcript from the
  pyannote-audio wheel (MIT licence), the reference being the STM segments'
  text in time order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HARVARD = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
]
VOICE = "(voice_cmu_us_slt_arctic_hts)"
PYANNOTE = "pyannote-audio==4.0.7"


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True)


def synthesize(text: str, flac: Path, work: Path) -> None:
    """Festival -> WAV -> 16 kHz mono 16-bit FLAC (sox does the resampling)."""
    txt = work / "line.txt"
    wav = work / "line.wav"
    txt.write_text(text + "\n")
    run(["text2wave", "-eval", VOICE, str(txt), "-o", str(wav)])
    run(["sox", str(wav), "-r", "16000", "-c", "1", "-b", "16", str(flac)])


def pyannote_sample(out: Path, work: Path) -> dict:
    run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(work), PYANNOTE])
    wheel = next(work.glob("pyannote_audio-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        wav_bytes = zf.read("pyannote/audio/sample/sample.wav")
        stm = zf.read("pyannote/audio/sample/sample.stm").decode()
    wav = work / "sample.wav"
    wav.write_bytes(wav_bytes)
    run(["sox", str(wav), "-r", "16000", "-c", "1", "-b", "16", str(out / "pyannote-sample.flac")])
    segments = []
    for line in stm.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            segments.append((float(parts[3]), parts[5].strip()))
    text = " ".join(t for _, t in sorted(segments))
    return {"id": "pyannote-sample", "audio": "pyannote-sample.flac", "text": text}


def main() -> int:
    out = Path(__file__).resolve().parent.parent / "data" / "default"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i, sentence in enumerate(HARVARD):
            uid = f"harvard-{i // 10 + 1:02d}-{i % 10 + 1:02d}"
            synthesize(sentence, out / f"{uid}.flac", work)
            rows.append({"id": uid, "audio": f"{uid}.flac", "text": sentence})
        rows.append(pyannote_sample(out, work))
    with open(out / "manifest.jsonl", "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} utterances to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
