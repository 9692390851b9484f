"""The worst utterances of a run or a sweep: the few with the highest WER and the highest latency, and the
non-speech items a model said the most words over (issue 24: an empty reference, scored apart from WER).

One hallucination loop can make a model's WER five times worse; a mean never shows it, the utterance does.
Reads utterances.jsonl only (the merged per-utterance records), and shows each with its reference and
hypothesis, shortened to a line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..results import read_jsonl

#: How many utterances each list shows by default.
TOP_N = 3
TEXT_CHARS = 80  # a reference or hypothesis longer than this is cut, with "…"


@dataclass(frozen=True)
class WorstUtterance:
    """One utterance worth a look, with where it came from (``where``: the condition's label, "" in a run)."""

    id: str
    where: str
    wer: float | None
    latency_s: float | None
    duration_s: float | None
    reference: str | None
    hypothesis: str | None
    repeat: int | None = None  # the repeat it was at its worst in, counted from 1 as progress counts them
    n_repeats: int = 1  # the repeats it was read from (one line for all of them)
    words: int | None = None  # a non-speech item's: the words said over it (after normalizing); None: speech


@dataclass(frozen=True)
class Worst:
    by_wer: tuple[WorstUtterance, ...]
    by_latency: tuple[WorstUtterance, ...]
    by_nonspeech: tuple[WorstUtterance, ...] = ()  # non-speech items with any word said, most words first

    def __bool__(self) -> bool:
        return bool(self.by_wer or self.by_latency or self.by_nonspeech)


def read_utterances(folder: Path | None) -> list[dict[str, Any]]:
    """The merged utterances of one run or condition folder ([] where there is none)."""
    if folder is None:
        return []
    return read_jsonl(Path(folder) / "utterances.jsonl")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


Source = tuple  # (label, utterances) or (label, utterances, repeat counted from 1)


def worst(sources: Iterable[Source], n: int = TOP_N) -> Worst:
    """The ``n`` utterances with the highest WER (above 0) and the ``n`` slowest, over (label, utterances)
    or (label, utterances, repeat) sources. One utterance of one condition (label) appears once per list, at its
    worst, saying which of its repeats that was: repeats are never n entries of one utterance."""
    best: dict[tuple[str, str], WorstUtterance] = {}
    slow: dict[tuple[str, str], WorstUtterance] = {}
    said: dict[tuple[str, str], WorstUtterance] = {}
    repeats: dict[str, set[int]] = {}
    for source in sources:
        where, utts, repeat = (*source, None)[:3]
        if repeat is not None:
            repeats.setdefault(where, set()).add(repeat)
        for u in utts:
            if u.get("status") != "ok":
                continue
            item = WorstUtterance(id=str(u.get("id")), where=where, wer=_number(u.get("wer")),
                                  latency_s=_number(u.get("latency_s")), duration_s=_number(u.get("duration_s")),
                                  reference=u.get("reference"), hypothesis=u.get("hypothesis"), repeat=repeat)
            key = (where, item.id)
            if item.wer is not None and item.wer > 0 and (key not in best or item.wer > (best[key].wer or 0)):
                best[key] = item
            if item.latency_s is not None and (key not in slow or item.latency_s > (slow[key].latency_s or 0)):
                slow[key] = item
            words = _nonspeech_words(u)
            if words and (key not in said or words > (said[key].words or 0)):
                said[key] = replace(item, words=words)

    def counted(items: Iterable[WorstUtterance]) -> list[WorstUtterance]:
        return [replace(u, n_repeats=len(repeats.get(u.where, ())) or 1) for u in items]

    by_wer = sorted(counted(best.values()), key=lambda u: (-(u.wer or 0), u.where, u.id))[:n]
    by_latency = sorted(counted(slow.values()), key=lambda u: (-(u.latency_s or 0), u.where, u.id))[:n]
    by_nonspeech = sorted(counted(said.values()), key=lambda u: (-(u.words or 0), u.where, u.id))[:n]
    return Worst(tuple(by_wer), tuple(by_latency), tuple(by_nonspeech))


def _nonspeech_words(u: Mapping[str, Any]) -> int | None:
    """The words said over a non-speech item (its normalized reference is ""); None for speech, or a record
    from before issue 24 (whose empty references were read as none)."""
    if u.get("reference_norm") != "" or not isinstance(u.get("hypothesis_norm"), str):
        return None
    return len(u["hypothesis_norm"].split())


def _short(text: str | None) -> str:
    if text is None:
        return "(none)"
    text = " ".join(str(text).split())
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 1] + "…"


def describe(u: WorstUtterance, by: str) -> str:
    """One line: the figure it is worst by, where, its id, then reference and hypothesis."""
    if by == "nonspeech":
        figure = (f"{u.words} word{'s' if u.words != 1 else ''}" + (f" in {u.duration_s:.1f} s"
                                                                     if u.duration_s is not None else "")
                  + " of non-speech")
    else:
        figure = (f"WER {u.wer:.0%}" if by == "wer" else
                  f"latency {u.latency_s * 1000:.0f} ms" + (f" for {u.duration_s:.1f} s of audio"
                                                           if u.duration_s is not None else ""))
    where = " ".join(x for x in (u.where, f"repeat {u.repeat} of {u.n_repeats}" if u.n_repeats > 1 else "") if x)
    where = f"{where} · " if where else ""
    ref = "" if by == "nonspeech" else f'ref "{_short(u.reference)}" · '  # its reference is "": nothing to show
    return f'{figure} · {where}{u.id} · {ref}hyp "{_short(u.hypothesis)}"'


def lines(w: Worst) -> list[str]:
    """The two lists as text lines, each headed ("worst by WER:", "slowest:")."""
    out = []
    if w.by_wer:
        out.append("worst by WER:")
        out += [f"  {describe(u, 'wer')}" for u in w.by_wer]
    if w.by_latency:
        out.append("slowest:")
        out += [f"  {describe(u, 'latency')}" for u in w.by_latency]
    if w.by_nonspeech:
        out.append("said over non-speech:")
        out += [f"  {describe(u, 'nonspeech')}" for u in w.by_nonspeech]
    return out
