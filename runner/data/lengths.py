"""An input-length ladder of real speech: whole utterances of a dataset joined to reach each target length.

For latency-against-length studies: a model's latency grows with its input, and
synthetic audio (silence, tones, noise) does not load a decoder as speech does. So
each item is made of WHOLE utterances (never cut mid-word, so its reference is exact:
the references joined with spaces), taken in the dataset's order, wrapping around,
with a short silence between them. An item stops at the utterance count whose total
duration is nearest the target (at least one utterance), so a 1 s rung built from
2.4 s sentences is 2.4 s: the manifest records the real ``duration_s`` beside
``target_s`` and the report plots against the real length.

The output is an ordinary manifest dataset (``manifest.jsonl`` + ``audio/*.flac``,
16 kHz mono PCM16), so ``edgeasr run --data DIR`` and sweeps read it like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from edgeasr_entrypoint.audio import AudioError, load_audio
from edgeasr_entrypoint.contract import SAMPLE_RATE

from ..errors import UserError
from ..results import write_jsonl_atomic
from .dataset import MANIFEST_NAME, Dataset, Utterance

DEFAULT_GAP_S = 0.3  # silence between joined utterances: a pause a speaker would make, not a cut


@dataclass(frozen=True)
class LengthItem:
    """One item of the ladder: the utterances it joins, its target and its real duration (seconds)."""

    id: str
    target_s: float
    duration_s: float
    sources: tuple[str, ...]
    text: str | None  # the joined references; None when one of the sources has none (not scorable)


def parse_seconds(text: str) -> tuple[float, ...]:
    """"1,2,5,10" as (1.0, 2.0, 5.0, 10.0): positive, distinct, ascending; UserError naming a bad value."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        try:
            value = float(part)
        except ValueError:
            raise UserError(f"--seconds {text!r}: {part!r} is not a number; give lengths in seconds, e.g. "
                            f"1,2,5,10,20,30") from None
        if not value > 0 or value != value or value == float("inf"):
            raise UserError(f"--seconds {text!r}: {part!r} must be a positive number of seconds")
        values.append(value)
    if not values:
        raise UserError("--seconds is empty; give lengths in seconds, e.g. 1,2,5,10,20,30")
    return tuple(sorted(set(values)))


def plan_items(durations: Sequence[tuple[str, float, str | None]], targets: Sequence[float], per_length: int,
               gap_s: float = DEFAULT_GAP_S) -> list[LengthItem]:
    """Which utterances make each item: a pure function of (id, duration_s, reference) in dataset order.

    Each length's items start at successive utterances (item k of a length starts k places after item k-1's
    start), so the items of one rung are different speech where the dataset allows. An item adds the next
    utterance while that brings its total nearer the target; it never uses one utterance twice."""
    if not durations:
        raise UserError("the source dataset has no readable utterance to join")
    total = sum(d for _, d, _ in durations) + gap_s * (len(durations) - 1)
    too_long = [t for t in targets if t > total]
    if too_long:
        gaps = f" ({len(durations)} utterances and the {gap_s:g} s gaps between them)" if gap_s else ""
        raise UserError(f"the source dataset holds {total:.1f} s of audio in all{gaps}, less than "
                        f"{', '.join(f'{t:g}' for t in too_long)} s; use shorter --seconds or a larger --from "
                        f"dataset (an item never repeats an utterance)")
    items = []
    n = len(durations)
    for target in targets:
        for k in range(per_length):
            start = k % n
            picked: list[int] = []
            length = 0.0
            for step in range(n):
                i = (start + step) % n
                added = durations[i][1] + (gap_s if picked else 0.0)
                if picked and abs(length + added - target) >= abs(length - target):
                    break
                picked.append(i)
                length += added
            refs = [durations[i][2] for i in picked]
            text = " ".join(r for r in refs if r) if all(refs) else None
            items.append(LengthItem(id=f"len{target:g}s-{k + 1:02d}".replace(".", "p"), target_s=target,
                                    duration_s=round(length, 3), sources=tuple(durations[i][0] for i in picked),
                                    text=text))
    return items


def build_ladder(dataset: Dataset, targets: Sequence[float], out: Path, per_length: int = 3,
                 gap_s: float = DEFAULT_GAP_S) -> list[LengthItem]:
    """Decode the source once, write each item as FLAC and the manifest into ``out``; returns the items.

    Utterances whose audio cannot be read are left out (and said so in the error if none is left)."""
    if per_length < 1:
        raise UserError(f"--per-length must be at least 1, got {per_length}")
    if gap_s < 0:
        raise UserError(f"--gap-s must not be negative, got {gap_s:g}")
    audio: dict[str, np.ndarray] = {}
    usable: list[Utterance] = []
    problems = []
    for utt in dataset.utterances:
        if utt.problem is not None:
            problems.append(f"{utt.id}: {utt.problem}")
            continue
        try:
            audio[utt.id] = load_audio(str(utt.audio))
        except AudioError as exc:
            problems.append(f"{utt.id}: {exc}")
            continue
        usable.append(utt)
    if not usable:
        raise UserError(f"no readable utterance in {dataset.path}" + (f" ({problems[0]})" if problems else ""))
    durations = [(u.id, len(audio[u.id]) / SAMPLE_RATE, u.reference) for u in usable]
    items = plan_items(durations, targets, per_length, gap_s)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the dataset")
    if (out / MANIFEST_NAME).exists():
        raise UserError(f"{out / MANIFEST_NAME} already exists; pass a new --out folder (nothing was changed)")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    gap = np.zeros(int(round(gap_s * SAMPLE_RATE)), dtype=np.float32)
    rows = []
    for item in items:
        parts: list[np.ndarray] = []
        for j, source in enumerate(item.sources):
            if j:
                parts.append(gap)
            parts.append(audio[source])
        samples = np.clip(np.concatenate(parts), -1.0, 1.0)
        rel = f"audio/{item.id}.flac"
        sf.write(out / rel, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        rows.append({"id": item.id, "audio": rel, "text": item.text, "target_s": item.target_s,
                     "duration_s": round(len(samples) / SAMPLE_RATE, 3), "sources": list(item.sources)})
    write_jsonl_atomic(out / MANIFEST_NAME, rows)
    return items
