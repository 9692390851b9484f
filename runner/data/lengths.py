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

Non-speech between the utterances (issue 24): each gap is silence or a noise type of the noise module
(runner/data/nonspeech.py renders it: white, pink, brown, babble from the source's own speech, file from
recordings) at ``gap_dbfs`` RMS over the gap, lasting ``gap_s`` or, with ``gap_max_s``, a duration drawn
uniformly from [gap_s, gap_max_s] by the item's own seed (``condition_seed(item id, "gaps", seed)``: the same
seed gives the same items on any machine). The reference stays the joined speech, so every word a model says
over a gap is an insertion.

The segment map. Every manifest row carries ``"segments"``: where each part of the item lies, in order, with
no gap and no overlap between them (each starts where the one before ends; the first at 0, the last ends at
``duration_s``). Times are seconds from the item's start, at whole samples of 16 kHz rounded to 1 µs (so
``round(start_s * 16000)`` is the sample index). Each segment is an object:

- ``{"kind": "speech", "start_s", "end_s", "source": <utterance id>, "text": <its reference or null>}``
- ``{"kind": "silence" | "white" | "pink" | "brown" | "babble" | "file", "start_s", "end_s",
  "level_dbfs": <RMS level; null for silence>}``

``read_segments`` reads and checks one row's map; the live-audio work takes its utterance boundaries from the
speech segments, and segment-aware scoring its non-speech spans.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from edgeasr_entrypoint.audio import AudioError, load_audio
from edgeasr_entrypoint.contract import SAMPLE_RATE
from edgeasr_entrypoint.noise import condition_seed

from ..errors import UserError
from ..results import write_jsonl_atomic
from .dataset import MANIFEST_NAME, Dataset, Utterance

DEFAULT_GAP_S = 0.3  # silence between joined utterances: a pause a speaker would make, not a cut
DEFAULT_GAP_DBFS = -30.0  # the RMS level of noise gaps (the nonspeech setting's default too)
SPEECH = "speech"


@dataclass(frozen=True)
class LengthItem:
    """One item of the ladder: the utterances it joins, its target and its real duration (seconds)."""

    id: str
    target_s: float
    duration_s: float
    sources: tuple[str, ...]
    text: str | None  # the joined references; None when one of the sources has none (not scorable)
    gaps_s: tuple[float, ...] = ()  # the non-speech between successive sources, seconds (one fewer than sources)


@dataclass(frozen=True)
class Segment:
    """One part of a joined item (the module's docstring: the segment map): speech from ``source`` with its
    reference ``text``, or non-speech of ``kind`` (silence, a noise type) at ``level_dbfs``."""

    kind: str
    start_s: float
    end_s: float
    source: str | None = None
    text: str | None = None
    level_dbfs: float | None = None

    def to_json(self) -> dict[str, Any]:
        if self.kind == SPEECH:
            return {"kind": SPEECH, "start_s": self.start_s, "end_s": self.end_s, "source": self.source,
                    "text": self.text}
        return {"kind": self.kind, "start_s": self.start_s, "end_s": self.end_s, "level_dbfs": self.level_dbfs}


def _seconds(n_samples: int) -> float:
    return round(n_samples / SAMPLE_RATE, 6)


def read_segments(row: Mapping[str, Any]) -> tuple[Segment, ...]:
    """A manifest row's segment map, checked: known kinds, numbers, contiguous from 0 to its ``duration_s``;
    () for a row without one. UserError naming the row and the segment otherwise."""
    from .nonspeech import NONSPEECH_KINDS

    raw = row.get("segments")
    if raw is None:
        return ()
    uid = row.get("id")
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{uid}: \"segments\" must be a non-empty list of segments")
    out: list[Segment] = []
    for i, seg in enumerate(raw):
        if not isinstance(seg, Mapping):
            raise UserError(f"{uid}: segment {i} is not an object")
        kind = seg.get("kind")
        if kind != SPEECH and kind not in NONSPEECH_KINDS:
            raise UserError(f"{uid}: segment {i} has kind {kind!r}; known: {', '.join((SPEECH, *NONSPEECH_KINDS))}")
        start, end = seg.get("start_s"), seg.get("end_s")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (start, end)):
            raise UserError(f"{uid}: segment {i} needs numbers start_s and end_s")
        if end <= start:
            raise UserError(f"{uid}: segment {i} ends at {end:g} s, not after its start ({start:g} s)")
        expected = out[-1].end_s if out else 0.0
        if abs(start - expected) > 1e-6:
            raise UserError(f"{uid}: segment {i} starts at {start:g} s, not where segment {i - 1} ends "
                            f"({expected:g} s)" if out else f"{uid}: segment 0 starts at {start:g} s, not at 0")
        level = seg.get("level_dbfs")
        out.append(Segment(kind, float(start), float(end), seg.get("source") if kind == SPEECH else None,
                           seg.get("text") if kind == SPEECH else None,
                           None if kind == SPEECH or level is None else float(level)))
    duration = row.get("duration_s")
    if isinstance(duration, (int, float)) and abs(out[-1].end_s - duration) > 1e-3:
        raise UserError(f"{uid}: the segments end at {out[-1].end_s:g} s, not at its duration ({duration:g} s)")
    return tuple(out)


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


def item_id(target: float, k: int) -> str:
    return f"len{target:g}s-{k + 1:02d}".replace(".", "p")


def plan_items(durations: Sequence[tuple[str, float, str | None]], targets: Sequence[float], per_length: int,
               gap_s: float = DEFAULT_GAP_S, gap_max_s: float | None = None, seed: int = 0) -> list[LengthItem]:
    """Which utterances make each item, and the gaps between them: a pure function of (id, duration_s,
    reference) in dataset order and the seed.

    Each length's items start at successive utterances (item k of a length starts k places after item k-1's
    start), so the items of one rung are different speech where the dataset allows. An item adds the next
    utterance (after its gap) while that brings its total nearer the target; it never uses one utterance twice.
    Each gap is ``gap_s``, or with ``gap_max_s`` drawn uniformly from [gap_s, gap_max_s] (whole samples) by the
    item's own seed."""
    if not durations:
        raise UserError("the source dataset has no readable utterance to join")
    widest = gap_s if gap_max_s is None else max(gap_s, gap_max_s)  # the longest an item can be: every gap widest
    total = sum(d for _, d, _ in durations) + widest * (len(durations) - 1)
    too_long = [t for t in targets if t > total]
    if too_long:
        gaps = ("" if not widest else f" ({len(durations)} utterances and the {gap_s:g} s gaps between them)"
                if widest == gap_s else f" ({len(durations)} utterances and gaps of up to {widest:g} s between them)")
        raise UserError(f"the source dataset holds {total:.1f} s of audio in all{gaps}, less than "
                        f"{', '.join(f'{t:g}' for t in too_long)} s; use shorter --seconds or a larger --from "
                        f"dataset (an item never repeats an utterance)")
    items = []
    n = len(durations)
    for target in targets:
        for k in range(per_length):
            start = k % n
            uid = item_id(target, k)
            draws = _gaps(uid, n, gap_s, gap_max_s, seed)
            picked: list[int] = []
            gaps: list[float] = []
            length = 0.0
            for step in range(n):
                i = (start + step) % n
                gap = draws[len(picked) - 1] if picked else 0.0
                added = durations[i][1] + gap
                if picked and abs(length + added - target) >= abs(length - target):
                    break
                if picked:
                    gaps.append(gap)
                picked.append(i)
                length += added
            refs = [durations[i][2] for i in picked]
            # "" (a non-speech source) joins as nothing; None (no reference) leaves the item without one
            text = " ".join(r for r in refs if r) if all(r is not None for r in refs) else None
            items.append(LengthItem(id=uid, target_s=target, duration_s=round(length, 3),
                                    sources=tuple(durations[i][0] for i in picked), text=text, gaps_s=tuple(gaps)))
    return items


def _gaps(uid: str, n: int, gap_s: float, gap_max_s: float | None, seed: int) -> list[float]:
    """The n - 1 gaps an item may use, in order: gap_s each, or seeded draws in [gap_s, gap_max_s], at whole
    samples (so the segment map's times are exact)."""
    if gap_max_s is None or gap_max_s == gap_s:
        return [gap_s] * max(n - 1, 0)
    rng = np.random.default_rng(condition_seed(uid, "gaps", seed))
    return [round(float(rng.uniform(gap_s, gap_max_s)) * SAMPLE_RATE) / SAMPLE_RATE for _ in range(max(n - 1, 0))]


def build_ladder(dataset: Dataset, targets: Sequence[float], out: Path, per_length: int = 3,
                 gap_s: float = DEFAULT_GAP_S, gap_max_s: float | None = None, gap_type: str = "silence",
                 gap_dbfs: float = DEFAULT_GAP_DBFS, seed: int = 0, noise_files: str | None = None,
                 babble_talkers: int = 4) -> list[LengthItem]:
    """Decode the source once, write each item as FLAC and the manifest (with its segment map) into ``out``;
    returns the items. The gaps are ``gap_type`` (silence or a noise type) at ``gap_dbfs`` RMS.

    Utterances whose audio cannot be read are left out (and said so in the error if none is left)."""
    from .nonspeech import NONSPEECH_KINDS, SILENCE, babble_pool, noise_recordings, render

    if per_length < 1:
        raise UserError(f"--per-length must be at least 1, got {per_length}")
    if gap_s < 0:
        raise UserError(f"--gap-s must not be negative, got {gap_s:g}")
    if gap_max_s is not None and not gap_max_s >= gap_s:
        raise UserError(f"--gap-max-s {gap_max_s:g} must be at least --gap-s ({gap_s:g})")
    if gap_type not in NONSPEECH_KINDS:
        raise UserError(f"--gap-type {gap_type!r} is not a kind of non-speech; choose one of "
                        f"{', '.join(NONSPEECH_KINDS)}")
    if not gap_dbfs <= 0:
        raise UserError(f"--gap-dbfs must be at most 0 (full scale), got {gap_dbfs:g}")
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
    files = noise_recordings(noise_files, "--noise-files") if gap_type == "file" else []
    pool = [audio[u.id] for u in babble_pool(usable)] if gap_type == "babble" else []
    if gap_type == "babble" and not pool:
        raise UserError("--gap-type babble needs speech to make talkers of, and the source has no utterance with "
                        "a reference")
    durations = [(u.id, len(audio[u.id]) / SAMPLE_RATE, u.reference) for u in usable]
    refs = {u.id: u.reference for u in usable}
    items = plan_items(durations, targets, per_length, gap_s, gap_max_s, seed)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the dataset")
    if (out / MANIFEST_NAME).exists():
        raise UserError(f"{out / MANIFEST_NAME} already exists; pass a new --out folder (nothing was changed)")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    level = None if gap_type == SILENCE else float(gap_dbfs)
    rows = []
    for item in items:
        parts: list[np.ndarray] = []
        segments: list[Segment] = []
        at = 0
        for j, source in enumerate(item.sources):
            n_gap = int(round(item.gaps_s[j - 1] * SAMPLE_RATE)) if j else 0
            if n_gap:
                rng = np.random.default_rng(condition_seed(f"{item.id}/gap{j}", "gap-noise", seed))
                parts.append(render(gap_type, n_gap, gap_dbfs, rng, pool, files, babble_talkers).astype(np.float32))
                segments.append(Segment(gap_type, _seconds(at), _seconds(at + n_gap), level_dbfs=level))
                at += n_gap
            parts.append(audio[source])
            n = len(audio[source])
            segments.append(Segment(SPEECH, _seconds(at), _seconds(at + n), source=source, text=refs[source]))
            at += n
        samples = np.clip(np.concatenate(parts), -1.0, 1.0)
        rel = f"audio/{item.id}.flac"
        sf.write(out / rel, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        rows.append({"id": item.id, "audio": rel, "text": item.text, "target_s": item.target_s,
                     "duration_s": _seconds(len(samples)), "sources": list(item.sources),
                     "segments": [seg.to_json() for seg in segments]})
    write_jsonl_atomic(out / MANIFEST_NAME, rows)
    return items
