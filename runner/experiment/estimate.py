"""How long a sweep would take, estimated before it starts from what is known then.

Known: each container's fixed windows (its idle baseline and loaded-idle window, from the group's telemetry
settings), how much audio each condition transcribes (the datasets' file headers, each file read once; a
Hugging Face dataset is not downloaded for this and is left out, said so), and, when this results folder
already holds finished conditions, their median RTF and model load time. Without those the RTF is taken as 1
(real time) and model loading is left out, said so. The estimate says how it was made in the same sentence.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from ..data.load import load_dataset
from ..errors import UserError
from ..results import read_jsonl
from ..wording import duration, plural

#: A grid over this many conditions starts only with --yes (README: Running).
CONFIRM_CONDITIONS = 1000
#: Header reads per dataset at most; the mean length of those stands for the rest.
MAX_HEADERS = 2000


@dataclass(frozen=True)
class Estimate:
    seconds: float
    how: str  # the sentence's parenthesis: what the figure is made of


def _measured(out: Path) -> tuple[list[float], list[float]]:
    """RTFs and model load times of the conditions that finished ok in this results folder (none: [])."""
    rtfs, loads = [], []
    for rec in read_jsonl(out / "conditions.jsonl") if (out / "conditions.jsonl").is_file() else []:
        if not isinstance(rec, dict):
            continue
        s: dict[str, Any] = rec.get("summary") or {}
        if rec.get("status") == "ok" and isinstance(s.get("rtf"), (int, float)) and s["rtf"] > 0:
            rtfs.append(float(s["rtf"]))
            if isinstance(s.get("load_s"), (int, float)) and s["load_s"] >= 0:
                loads.append(float(s["load_s"]))
    return rtfs, loads


def _audio_s(dataset: str, roots: tuple[str, ...], limit: int | None, lengths: dict[Path, float]) -> float | None:
    """Seconds of audio a condition transcribes (headers only); None for a Hugging Face dataset or one that
    cannot be read (planning says why)."""
    if dataset.startswith("hf:"):
        return None
    try:
        utts = load_dataset(dataset, roots, limit=limit).readable
    except UserError:
        return None
    known = []
    for u in utts[:MAX_HEADERS]:
        if u.audio not in lengths:
            try:
                lengths[u.audio] = sf.info(str(u.audio)).duration
            except (RuntimeError, OSError):  # a file soundfile cannot read (m4a, corrupt): the mean stands in
                continue
        known.append(lengths[u.audio])
    return statistics.fmean(known) * len(utts) if known else 0.0


def nonspeech_s(ns, noise_type: str) -> float:
    """Seconds of generated non-speech items a condition transcribes besides its dataset (runner/data/nonspeech.py):
    each type's ``count`` items of ``seconds``, digital silence left out of a noise condition (as the plan does)."""
    kinds = [k for k in dict.fromkeys(ns.types) if not (k == "silence" and noise_type != "clean")]
    return len(kinds) * max(ns.count, 0) * ns.seconds


def estimate_sweep(exp, out: Path) -> Estimate:
    """The sweep's duration, with how it was estimated."""
    lengths: dict[Path, float] = {}
    by_data: dict[tuple, float | None] = {}
    audio_s, unknown = 0.0, 0
    fixed_s = live_s = 0.0
    n_live = 0
    for g in exp.groups:
        stream = g.spec_settings.stream
        t = g.spec_settings.telemetry
        fixed_s += (t.baseline_s if t.sampler != "none" else 0.0) + t.loaded_idle_s
        for c in g.conditions:
            key = (c.dataset, tuple(c.audio_roots), c.limit)
            if key not in by_data:
                by_data[key] = _audio_s(*key, lengths)
            if by_data[key] is None:
                unknown += 1
                continue
            data_s = (by_data[key] or 0.0) + nonspeech_s(g.spec_settings.nonspeech, c.noise_type)
            audio_s += data_s  # stream mode's offline pass transcribes it whole as well
            if stream.enabled:  # live audio plays in real time: the data once, and at least sustain_s
                live_s += max(stream.sustain_s, data_s)
                n_live += 1
    rtfs, loads = _measured(out)
    rtf = statistics.median(rtfs) if rtfs else 1.0
    load_s = statistics.median(loads) if loads else 0.0
    n = len(exp.groups)
    parts = [f"{plural(n, 'container')} × {duration(fixed_s / n if n else 0)} of idle baseline and loaded-idle "
             f"window" + (f" and {duration(load_s)} of model loading" if loads else "")]
    if rtfs:
        parts.append(f"{duration(audio_s)} of audio at RTF {rtf:.3g}, the median of the "
                     f"{plural(len(rtfs), 'condition')} already finished in {out}")
    else:
        parts.append(f"{duration(audio_s)} of audio at RTF 1 (real time, assumed: no condition has finished in "
                     f"{out} yet; model loading not counted)")
    if n_live:
        parts.append(f"{duration(live_s)} of live audio played in real time by {plural(n_live, 'streamed condition')} "
                     f"(longer where the backend falls behind)")
    if unknown:
        parts.append(f"{plural(unknown, 'condition')} over Hugging Face or unreadable datasets not counted")
    return Estimate(fixed_s + n * load_s + audio_s * rtf + live_s, "; ".join(parts))


def size_note(exp, out: Path) -> str | None:
    """For a grid over CONFIRM_CONDITIONS conditions: how many, and about how long (with how that is estimated);
    None for a smaller one."""
    if exp.n_conditions <= CONFIRM_CONDITIONS:
        return None
    est = estimate_sweep(exp, out)
    return (f"{exp.path.name}: {plural(exp.n_conditions, 'condition')} in {plural(len(exp.groups), 'container')}, "
            f"more than {CONFIRM_CONDITIONS:,}: about {duration(est.seconds)} (estimated from {est.how})")
