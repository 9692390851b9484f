"""Join the container's raw outputs with the dataset's references into results (pure: files in, records out).

Timing comes from the container's own events (monotonic clock): model load and
warm-up are separate windows and never enter RTF, which covers transcription
only. Utterances the container never reached (it died) are failures with a reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataclasses import replace

from edgeasr_entrypoint.contract import STREAM_EVENTS, WINDOWS, Event, EventRecord

from .scoring import metrics
from .trust import validate
from .data.dataset import Dataset
from .results import Summary, UtteranceResult
from .trust.safe_io import IMAGE, Unsafe, read_bytes, read_jsonl, size_text
from .settings import LimitsSettings, limit_name
from .scoring.stream_metrics import stream_block, stream_metrics
from .telemetry.energy import accounting
from .telemetry.samplers import registry

#: What the container writes into its output folder (the contract); the runner reads nothing else there.
RAW_NAMES = ("events.jsonl", "transcripts.jsonl", "status.json")


@dataclass(frozen=True)
class RawOutputs:
    events: list[dict[str, Any]]
    transcripts: list[dict[str, Any]]
    status: dict[str, Any] | None
    #: Why some of the container's outputs were not read (a link, a FIFO, a file or a line over its limit),
    #: in sentences; the conditions fail with it. None: everything there was read.
    problem: str | None = None
    status_refused: bool = False  # status.json was there, and was refused (the problem says why)
    #: The records (or fields of the status record) that broke the contract, each naming its condition and
    #: utterance; they are not in ``events``/``transcripts``/``status``, and the conditions they name fail.
    rejected: tuple[validate.Rejected, ...] = ()

    def rejected_for(self, condition: str | None) -> list[validate.Rejected]:
        """What was rejected of this condition's records or of the whole container's."""
        return [r for r in self.rejected if r.condition is None or r.condition == condition]


def read_raw(raw_dir: Path, limits: LimitsSettings | None = None) -> RawOutputs:
    """The container's outputs, read by runner/trust/safe_io.py's rules (nothing followed, opened only when regular,
    never waited on, each line and file capped by ``limits``). A file that is not there is no rows (or no
    status); a refused file or an over-long line is a ``problem`` and is not read, while the rest still is.
    Every record is then checked against the contract (runner/trust/validate.py): what reaches the merge is
    validated, and what broke the contract is in ``rejected``."""
    limits = limits or LimitsSettings()
    problems: list[str] = []
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, line_limit, setting in (("events.jsonl", limits.event_line_bytes, "event_line_mib"),
                                      ("transcripts.jsonl", limits.transcript_line_bytes, "hypothesis_mib")):
        try:
            got = read_jsonl(raw_dir, name, label=f"{raw_dir.name}/{name}", origin=IMAGE, line_limit=line_limit,
                             limit_name=limit_name(setting), file_limit=limits.output_bytes,
                             file_limit_name=limit_name("output_mib"))
        except Unsafe as exc:
            problems.append(str(exc))
            got = None
        rows[name] = got.rows if got is not None else []
        if got is not None:
            problems += got.over_limit
    status, refused = None, False
    try:
        data = read_bytes(raw_dir, "status.json", label=f"{raw_dir.name}/status.json", origin=IMAGE,
                          limit=limits.event_line_bytes, limit_name=limit_name("event_line_mib"))
    except Unsafe as exc:
        problems.append(str(exc))
        data, refused = None, True
    if data is not None:
        try:
            status = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            status = None
        status = status if isinstance(status, dict) else None
    events, bad_events = validate.check_events(rows["events.jsonl"])
    transcripts, bad_results = validate.check_transcripts(rows["transcripts.jsonl"])
    transcripts, bad_times = validate.cross_check(events, transcripts)
    status, bad_status = validate.check_status(status)
    return RawOutputs([e.as_dict() for e in events], [t.as_dict() for t in transcripts], status,
                      "; ".join(problems) or None, refused, (*bad_events, *bad_results, *bad_times, *bad_status))


def window_s(events: list[dict[str, Any]], start: str, end: str) -> float | None:
    """Seconds between the first `start` and the last `end` event, on the container's monotonic clock."""
    t0 = next((e["mono_ns"] for e in events if e.get("event") == start), None)
    t1 = next((e["mono_ns"] for e in reversed(events) if e.get("event") == end), None)
    if t0 is None or t1 is None:
        return None
    return (t1 - t0) / 1e9


def host_paths(message: str | None, paths: dict[str, str]) -> str | None:
    """The message with container paths (/data/0/x.flac, /models/tiny.en) replaced by the host's own, so
    that a person can find the file. ``paths`` maps container prefixes to host paths, longest first."""
    if not message or not paths:
        return message
    import re

    pattern = re.compile("|".join(re.escape(k) + r"(?=/|\b|$)" for k in paths))
    return pattern.sub(lambda m: paths[m.group(0)], message)


def hypothesis_problem(hyp: Any, max_bytes: int | None) -> str | None:
    """Why a hypothesis is not kept: longer than its limit (UTF-8 bytes); None when it is kept."""
    if max_bytes is None or not isinstance(hyp, str) or len(hyp) <= max_bytes // 4:
        return None  # a str of n characters is at most 4n UTF-8 bytes: no need to encode the short ones
    n = len(hyp.encode("utf-8", "surrogatepass"))
    if n <= max_bytes:
        return None
    return f"the hypothesis is {size_text(n)}, over the limit of {size_text(max_bytes)} ({limit_name('hypothesis_mib')})"


def merge_utterances(dataset: Dataset, transcripts: list[dict[str, Any]], missing_reason: str,
                     paths: dict[str, str] | None = None, max_hypothesis_bytes: int | None = None,
                     rejected: dict[str, str] | None = None) -> list[UtteranceResult]:
    """One result per dataset utterance: the container's record, the host's refusal, or the missing reason.
    A hypothesis longer than ``max_hypothesis_bytes`` makes its utterance an error that says so; an utterance
    whose result broke the contract (``rejected``: id -> why, runner/trust/validate.py) is an error that says why.
    ``transcripts`` are validated records (read_raw)."""
    by_id = {t["id"]: t for t in transcripts if isinstance(t.get("id"), str)}
    rejected = rejected or {}
    out = []
    for utt in dataset.utterances:
        t = by_id.get(utt.id)
        ref_norm = metrics.normalize(utt.reference) if utt.reference is not None else None
        if t is None or utt.problem is not None or utt.id in rejected:
            why = utt.problem or (f"its result broke the contract: {rejected[utt.id]}" if utt.id in rejected
                                  else missing_reason)
            out.append(UtteranceResult(utt.id, "error", why, utt.reference, None,
                                       ref_norm, None, None, None, None, None))
            continue
        too_long = hypothesis_problem(t.get("hypothesis"), max_hypothesis_bytes)
        if too_long:
            t = {"id": utt.id, "status": "error", "error": too_long}
        ok = t.get("status") == "ok"
        hyp = t.get("hypothesis") if ok else None
        hyp_norm = metrics.normalize(hyp) if hyp is not None else None
        wer = metrics.utterance_wer(ref_norm, hyp_norm) if ok and ref_norm else None
        gaps = gap_figures(utt, hyp_norm) if ok else (None, None)
        out.append(UtteranceResult(
            id=utt.id, status="ok" if ok else "error", error=None if ok else host_paths(t.get("error"), paths or {}),
            reference=utt.reference, hypothesis=hyp, reference_norm=ref_norm, hypothesis_norm=hyp_norm,
            duration_s=t.get("duration_s"),
            latency_s=(t["latency_s"] if t.get("latency_s") is not None else t.get("processing_s")) if ok else None,
            wer=wer, processing_s=t.get("processing_s") if ok else None,
            gap_insertions=gaps[0], gap_s=gaps[1],
        ))
    return out


#: The figures of what a model said (issue 24) beside its error rates: meaningless for a model whose
#: transcripts mean nothing (not_a_result), like WER.
TRANSCRIPT_FIGURES = ("ins_rate", "repeated_ngram_rate", "compression_over_share", "nonspeech_words",
                      "nonspeech_wpm", "nonspeech_output_share", "gap_ins", "gap_ins_per_min")


def score(summary: Summary, utts: list[UtteranceResult]) -> Summary:
    """The summary with its accuracy, speed and count fields from utterance results (a new one: it is frozen)."""
    ok = [u for u in utts if u.status == "ok"]
    scored = [u for u in ok if u.reference_norm]
    got: dict[str, Any] = {"n_utterances": len(utts), "n_failed": len(utts) - len(ok), "n_scored": len(scored),
                           "n_unreferenced": sum(1 for u in utts if u.reference_norm is None),
                           "n_nonspeech": sum(1 for u in utts if is_nonspeech(u))}
    why: dict[str, str] = {}
    got_ns, why_ns = nonspeech_figures(ok, got["n_nonspeech"])
    got.update(got_ns)
    why.update(why_ns)
    if scored:
        c = metrics.error_counts([u.reference_norm for u in scored], [u.hypothesis_norm or "" for u in scored])
        got.update(wer=c.wer, cer=c.cer, sub=c.substitutions, deletions=c.deletions, ins=c.insertions,
                   ref_words=c.ref_words, ins_rate=c.insertion_rate)
    else:
        n_ns = sum(1 for u in ok if is_nonspeech(u))
        reason = ("no utterance was transcribed" if not ok else
                  f"none of the {len(ok)} transcribed utterances has a reference" if not n_ns else
                  f"none of the {len(ok)} transcribed utterances is speech with a reference ({n_ns} non-speech, "
                  f"scored apart from WER)")
        why.update(dict.fromkeys(("wer", "cer", "sub", "del", "ins", "ins_rate"), reason))
    mapped = [u for u in ok if u.gap_insertions is not None and u.gap_s]
    if mapped:
        got["gap_ins"] = sum(u.gap_insertions for u in mapped)
        got["gap_ins_per_min"] = got["gap_ins"] / (sum(u.gap_s for u in mapped) / 60.0)
    else:
        why.update(dict.fromkeys(("gap_ins", "gap_ins_per_min"), "no transcribed item has a segment map with "
                                 "non-speech in it (edgeasr data lengths --gap-type)"))
    got_rep, why_rep = repetition_figures(ok)
    got.update(got_rep)
    why.update(why_rep)
    if ok:
        rtf = metrics.rtf([u.processing_s for u in ok], [u.duration_s for u in ok])
        got.update(audio_s=sum(u.duration_s for u in ok), rtf=rtf, rtfx=1.0 / rtf if rtf > 0 else None,
                   latency_ms=metrics.latency_percentiles_ms([u.latency_s for u in ok]))
        if got["rtfx"] is None:
            why["rtfx"] = ("RTF is 0 (the processing times sum to 0 s below the clock's resolution): its inverse "
                           "is not a number")
    else:
        why.update(dict.fromkeys(("audio_s", "rtf", "rtfx", "latency_ms"), "no utterance was transcribed"))
    return summary.unavailable_because(why, **got)


#: Why a streamed summary's latency_ms (each utterance's own backend call) is not given: a streamed utterance has
#: no call of its own; what a listener waits for is in the stream block (each utterance's own: stream_utterances).
STREAM_LATENCY = ("stream mode: an utterance is heard chunk by chunk, not called whole; its wait is the stream "
                  "block's finalization latency")


def streamed(events: list[dict[str, Any]], condition: str | None) -> bool:
    """Whether ``condition`` ran in stream mode: its events hold a stream_start."""
    return any(e.get("event") == Event.STREAM_START and e.get("condition") == condition for e in events)


#: A stream job answered utterance by utterance: an image whose entrypoint reads job.stream but does not stream
#: (built between contract 4 and stream mode's entrypoint, or one of your own). Its figures are offline ones.
NOT_STREAMED = ("the job asked for stream mode and the container answered utterance by utterance (no stream "
                "events): its entrypoint does not stream, so its figures are not a stream's; rebuild the image")


def stream_error(asked: bool, events: list[dict[str, Any]], transcripts: list[dict[str, Any]],
                 condition: str | None) -> str | None:
    """Why a condition of a stream job is not a stream's result (NOT_STREAMED), or None: it streamed, it was not
    asked to, or it transcribed nothing (its own error says why)."""
    if not asked or streamed(events, condition):
        return None
    return NOT_STREAMED if any(t.get("status") == "ok" for t in transcripts) else None


def offline_block(utts: list[UtteranceResult], transcripts: list[dict[str, Any]],
                  max_hypothesis_bytes: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Stream mode's offline WER: each utterance's whole-utterance text (its result's ``offline_hypothesis``)
    scored with the same normalizer and code as the WER (metrics.error_counts), over the scored utterances that
    have one, and the streamed text's WER over exactly the same utterances beside it (``stream_wer``), so that
    ``wer_cost`` (stream_wer - wer, in WER points of 1) is the cost of streaming and nothing else. Returns
    (the block, None) or (None, why there is none)."""
    offline = {t["id"]: t.get("offline_hypothesis") for t in transcripts if isinstance(t.get("id"), str)}
    pairs = [(u, offline.get(u.id)) for u in utts if u.status == "ok" and u.reference_norm]
    pairs = [(u, h) for u, h in pairs if isinstance(h, str) and hypothesis_problem(h, max_hypothesis_bytes) is None]
    if not pairs:
        scored = sum(1 for u in utts if u.status == "ok" and u.reference_norm)
        return None, ("no utterance was transcribed with a reference" if not scored else
                      f"none of the {scored} scored utterances has an offline hypothesis (job.stream.offline was off, "
                      f"or the image did not write offline_hypothesis)")
    refs = [u.reference_norm for u, _ in pairs]
    off = metrics.error_counts(refs, [metrics.normalize(h) for _, h in pairs])
    live = metrics.error_counts(refs, [u.hypothesis_norm or "" for u, _ in pairs])
    return {"wer": off.wer, "cer": off.cer, "sub": off.substitutions, "del": off.deletions, "ins": off.insertions,
            "ref_words": off.ref_words, "n_scored": len(pairs), "stream_wer": live.wer, "stream_cer": live.cer,
            "wer_cost": live.wer - off.wer}, None


def apply_stream(summary: Summary, events: list[dict[str, Any]], utts: list[UtteranceResult],
                 transcripts: list[dict[str, Any]], condition: str | None,
                 max_hypothesis_bytes: int | None = None, unscored: str | None = None) -> Summary:
    """A streamed condition's summary (a new one: it is frozen): its stream figures (runner/scoring/stream_metrics.py, over
    the condition's validated stream events, with energy per audio second and power per stream from the
    summary's energy block: call it after the energy is accounted) in ``stream``, the offline WER of the same
    utterances beside the streamed text's in ``offline`` (offline_block; unavailable with ``unscored``, the
    reason the WER is no result, where there is one), and latency_ms unavailable (STREAM_LATENCY). The WER,
    RTF and counts stay score()'s, of the final texts. A condition that did not stream is returned as it is."""
    if not streamed(events, condition):
        return summary
    rows = [EventRecord.from_json(e) for e in events if e.get("event") in STREAM_EVENTS]
    got = stream_metrics(rows, condition)
    why: dict[str, str] = {"latency_ms": STREAM_LATENCY}
    if got is None:
        why["stream"] = "the condition streamed no chunk (it stopped early, or no utterance could be read)"
    block, no_offline = (None, unscored) if unscored else offline_block(utts, transcripts, max_hypothesis_bytes)
    if no_offline:
        why["offline"] = no_offline
    return summary.unavailable_because(why, latency_ms=None, offline=block,
                                       stream=stream_block(got, summary.energy) if got is not None else None)


def stream_utterances(utts: list[UtteranceResult], events: list[dict[str, Any]], condition: str | None
                      ) -> list[UtteranceResult]:
    """A streamed condition's utterances with ``latency_s`` as a listener waited for each: the finalization
    latency of its first play on stream 0 (the play its result is from: final mono_ns - last_delivered_ns), not
    its processing time (a streamed utterance is no one call); None where it had no final. A condition that did
    not stream: the utterances as they are."""
    if not streamed(events, condition):
        return utts
    waited = {e["id"]: (e["mono_ns"] - e["last_delivered_ns"]) / 1e9 for e in events
              if e.get("event") == Event.FINAL and e.get("condition") == condition and e.get("stream") == 0
              and e.get("play") in (0, None) and isinstance(e.get("id"), str)}
    return [replace(u, latency_s=waited.get(u.id)) if u.status == "ok" else u for u in utts]
def gap_figures(utt, hyp_norm: str | None) -> tuple[int | None, float | None]:
    """(words inserted where the item's non-speech lies, seconds of that non-speech) for an item whose segment
    map holds non-speech and whose speech has references; (None, None) otherwise."""
    gap_s = sum(s.end_s - s.start_s for s in utt.segments if s.kind != "speech")
    if not gap_s or hyp_norm is None or utt.reference is None:
        return None, None
    if any(s.kind == "speech" and s.text is None for s in utt.segments):
        return None, None
    parts = [metrics.normalize(s.text) if s.kind == "speech" else None for s in utt.segments]
    return metrics.gap_insertions(parts, hyp_norm), round(gap_s, 6)


def is_nonspeech(u: UtteranceResult) -> bool:
    """An item whose reference is there and holds no word once normalized (issue 24): silence, noise, music, or
    a reference of fillers alone ("hmm"); every word said over it is an insertion, counted apart from WER."""
    return u.reference_norm == ""


def nonspeech_figures(ok: list[UtteranceResult], n_nonspeech: int) -> tuple[dict[str, Any], dict[str, str]]:
    """What the transcribed non-speech items made a model say: words (after Whisper's normalizer, so a
    "[BLANK_AUDIO]" tag or a "♪" is no word), words per minute of non-speech audio, and the share of items with
    any word; each unavailable with its reason where there is no transcribed non-speech item."""
    items = [u for u in ok if is_nonspeech(u)]
    if not items:
        reason = ("no non-speech item (an empty reference) in the data" if not n_nonspeech else
                  "no non-speech item was transcribed")
        return ({"nonspeech_words": None, "nonspeech_wpm": None, "nonspeech_output_share": None},
                dict.fromkeys(("nonspeech_words", "nonspeech_wpm", "nonspeech_output_share"), reason))
    words = [len((u.hypothesis_norm or "").split()) for u in items]
    minutes = sum(u.duration_s or 0.0 for u in items) / 60.0
    got: dict[str, Any] = {"nonspeech_words": sum(words),
                           "nonspeech_output_share": sum(w > 0 for w in words) / len(words),
                           "nonspeech_wpm": sum(words) / minutes if minutes > 0 else None}
    why = {} if minutes > 0 else {"nonspeech_wpm": "the non-speech items' durations sum to 0 s"}
    return got, why


def repetition_figures(ok: list[UtteranceResult]) -> tuple[dict[str, Any], dict[str, str]]:
    """Issue 24's repetition figures of the transcribed utterances (runner/scoring/metrics.py defines each), and the
    reason for each one that cannot be given: repeats beyond the reference over the pairs with a reference
    (an unreferenced one has no "reference's own" to subtract), the compression share over every hypothesis."""
    got: dict[str, Any] = {"compression_over_share": metrics.compression_over_share([u.hypothesis or "" for u in ok])}
    why: dict[str, str] = {}
    if got["compression_over_share"] is None:
        why["compression_over_share"] = "no utterance was transcribed"
    pairs = [u for u in ok if u.reference_norm is not None]
    rep = metrics.repetition([u.reference_norm or "" for u in pairs], [u.hypothesis_norm or "" for u in pairs])
    got["repeated_ngram_rate"] = rep.rate
    if not ok:
        why["repeated_ngram_rate"] = "no utterance was transcribed"
    elif not pairs:
        why["repeated_ngram_rate"] = f"none of the {len(ok)} transcribed utterances has a reference"
    elif rep.rate is None:
        why["repeated_ngram_rate"] = (f"no hypothesis has {rep.ngram_n} words (a repeated n-gram is "
                                      f"{rep.ngram_n} words)")
    return got, why


def not_a_result(summary: Summary, utts: list[UtteranceResult],
                 reason: str) -> tuple[Summary, list[UtteranceResult]]:
    """The error rates of a model whose transcripts mean nothing (random weights) are not a result: unavailable,
    with the reason, in place of a number a reader would take for an accuracy, in the summary and for each
    utterance (whose hypothesis stays). Timings and memory stay. The summary so (a new one: it is frozen), and
    the utterances without their WER."""
    gone = dict.fromkeys(("wer", "cer", "sub", "deletions", "ins", *TRANSCRIPT_FIGURES))
    return (summary.unavailable_because(dict.fromkeys(("wer", "cer", "sub", "del", "ins", *TRANSCRIPT_FIGURES),
                                                      reason), **gone),
            [replace(u, wer=None) for u in utts])


#: The container contract's memory figures (status.json, the model_info and inference_end events) that hold MiB
#: (ru_maxrss / 1024, VmHWM / 1024, bytes / 2^20) under ``_mb`` names, and the summary field each becomes (schema
#: 4, issue 28 item 6). The contract keeps its names: every image built so far writes them, and the host reads
#: every contract version from MIN_CONTRACT_VERSION; renaming them would need a contract version and both names
#: read here. So the one conversion is here. ``model_size_mb`` is MB (bytes / 1e6) and keeps its name.
CONTRACT_MIB: dict[str, str] = {
    "peak_rss_mb": "peak_rss_mib", "rss_after_load_mb": "rss_after_load_mib", "audio_cache_mb": "audio_cache_mib",
    "peak_rss_excl_audio_mb": "peak_rss_excl_audio_mib", "peak_vram_mb": "peak_vram_torch_mib",
}


def apply_container_facts(summary: Summary, raw: RawOutputs) -> Summary:
    """The summary with the load/warm-up/inference windows, memory and versions from the container's own
    records (a new one: it is frozen)."""
    ev = raw.events
    got: dict[str, Any] = {name: window_s(ev, *WINDOWS[window]) for name, window in (
        ("load_s", "load"), ("warmup_s", "warmup"), ("inference_s", "inference"), ("container_s", "container"))}
    why: dict[str, str] = {}
    for name in ("load_s", "inference_s"):
        if got[name] is None:
            why[name] = "the container did not record this window (it stopped early)"
    if got["warmup_s"] is None:
        why["warmup_s"] = "no warm-up ran" if summary.warmup == 0 else "the container did not record the warm-up"
    st = raw.status or {}
    # the container's status says peak_vram_mb (contract); on the host it is torch's figure. The contract's
    # memory figures are MiB under _mb names: the summary names them _mib (CONTRACT_MIB)
    for key in ("peak_rss_mb", "rss_after_load_mb", "model_size_mb", "n_params", "peak_vram_mb"):
        name = CONTRACT_MIB.get(key, key)
        value = got[name] = st.get(key)
        if value is None:
            reason = ("not reported by the backend" if raw.status else "the container wrote no status record")
            if name == "model_size_mb" and summary.model_source == "hub":
                reason = "hub model: size on disk not known inside the container"
            if name == "peak_vram_torch_mib":
                reason = ("no GPU: the run was on the CPU" if summary.device == "cpu" else
                          "the backend's memory is invisible to torch (CTranslate2)")
            why[name] = reason
    peak, cache = got["peak_rss_mib"], st.get("audio_cache_mb")
    got.update(audio_cache_mib=cache, peak_rss_scope=st.get("peak_rss_scope") or (
        "process (since start, includes model load)" if peak is not None else None))
    if st.get("peak_rss_excl_audio_mb") is not None:  # taken in the container at the same instant as its audio
        got.update(peak_rss_excl_audio_mib=st["peak_rss_excl_audio_mb"],
                   peak_rss_excl_audio_method=st.get("peak_rss_excl_audio_method"))
    elif peak is not None and cache is not None:
        got.update(peak_rss_excl_audio_mib=peak - cache, peak_rss_excl_audio_method=OLD_EXCL_AUDIO)
    else:
        why["peak_rss_excl_audio_mib"] = ("the container does not report the harness's audio cache (an image "
                                          "built before issue 9)" if peak is not None
                                          else why.get("peak_rss_mib", summary.unavailable.get("peak_rss_mib",
                                                                                               "no peak RSS")))
    if summary.peak_vram_nvml_mib is None:
        why["peak_vram_nvml_mib"] = ("no GPU: the run was on the CPU" if summary.device == "cpu"
                                     else "no NVML sampler ran")
    got.update(versions=dict(st.get("versions") or {}), quant_method=st.get("quant_method"),
               device_used=st.get("device_used"))
    if got["device_used"] is None:
        why["device_used"] = ("the backend did not report the device it ran on (an image built before edgeasr "
                              "recorded it, or one of your own)" if raw.status or st else
                              "the container wrote no status record")
    return summary.unavailable_because(why, **got)


def device_error(summary: Summary) -> str | None:
    """Why a run's figures are not figures of the device it asked for: its backend reported another one (a CUDA
    run that ended on the CPU), or None."""
    used = summary.device_used
    if used is None or used == summary.device:
        return None
    return (f"the backend ran on {used}, not on the {summary.device} asked for; its figures are not "
            f"{summary.device} figures (see `edgeasr doctor`: is the GPU visible inside the image?)")


def apply_nvml_vram(summary: Summary, energy: accounting.EnergyBlock) -> Summary:
    """The summary with NVML's peak memory of the run's own processes, beside (never instead of) torch's
    allocator peak; only for a sampler that lists the run's processes (the sampler table's ``process_memory``)."""
    row = registry.find_row(energy.source)
    if row is None or not row.process_memory or summary.device == "cpu":
        return summary
    peak = energy.memory.process_peak_mib if energy.memory is not None else None
    if peak is not None:
        return summary.available("peak_vram_nvml_mib", peak_vram_nvml_mib=peak)
    return summary.unavailable_because({"peak_vram_nvml_mib": energy.unavailable.get(
        "gpu_process_mem_peak_mib", "NVML reported no per-process GPU memory")}, peak_vram_nvml_mib=None)


#: What an older image's peak_rss_excl_audio_mb (contract) includes (it splits no peak at its backend calls).
OLD_EXCL_AUDIO = ("the resident peak less the audio the harness held at the end (an image built before issue 22: "
                  "under-reported when the peak came before the audio was cached)")


def container_error(run, status: dict[str, Any] | None, timeout_s: float | None, mem_limit: str | None,
                    status_refused: bool = False) -> str | None:
    """Why a container (or local process) run failed, in one sentence, or None when it finished.

    `run` is what the engine reported (launch.docker_engine.ContainerRun); `status` the container's record.
    ``status_refused``: there was a status record, and it was not read (RawOutputs.problem says why, so this
    does not claim that none was written).
    """
    exceeded = getattr(run, "limit_exceeded", None)
    if exceeded:
        return f"{exceeded}; the container was stopped"
    if run.timed_out:
        return f"timed out after {timeout_s:g} s; the container was killed"
    if run.oom_killed:
        limit = f" (mem_limit {mem_limit})" if mem_limit else ""
        return f"out of memory: the kernel killed the container{limit}"
    if status and status.get("status") != "ok":
        return status.get("error") or "the backend reported an error"
    if run.exit_code != 0:
        return f"the container exited with code {run.exit_code}" + (
            "" if status or status_refused else " without a status record")
    if status is None and not status_refused:
        return "the container wrote no status record"
    return None


def failed_itself(run, status: dict[str, Any] | None) -> bool:
    """Whether the container itself said that it failed (its status record says error, or it exited non-zero on
    its own), as opposed to being stopped by the host (time-out, out of memory, a bound passed): then not even
    the conditions it reported finished are taken as ok (issue 20, item 4)."""
    if getattr(run, "limit_exceeded", None) or run.timed_out or run.oom_killed:
        return False
    return (status is not None and status.get("status") != "ok") or run.exit_code != 0


def _account_companions(block: accounting.EnergyBlock, companions, events: list[dict[str, Any]], base,
                        audio_s: float | None, n_ok: int, interval_ms: int) -> accounting.EnergyBlock:
    """``block`` with each companion's energy block (same windows, its own idle baseline over the same idle
    window), and their sum where the sampler table names one (GPU + CPU)."""
    if not companions:
        return block
    blocks = {}
    for comp in companions:
        if base is not None and base.source == "measured" and base.start_ns is not None:
            cbase = accounting.measured_baseline(comp.samples, base.start_ns, base.end_ns, base.clock)
        else:
            cbase = accounting.Baseline(None, "unavailable", reason="no idle window was measured for this sampler")
        blocks[comp.name] = accounting.energy_block(comp.name, comp.samples, events, cbase, audio_s, n_ok,
                                                    interval_ms)
    return accounting.with_companions(block, blocks)


ENERGY_NOTE = "see unavailable.energy"


def short_energy_reason(reason: str) -> str:
    """The reason energy is unavailable as each energy field repeats it: short, pointing at the one place
    that holds it whole (``summary.unavailable["energy"]``: every sensor tried, and why each failed)."""
    head = reason.split(" (", 1)[0]
    return reason if len(reason) <= 60 else f"{head} ({ENERGY_NOTE})"


def energy_work(summary: Summary, events: list[dict[str, Any]]) -> tuple[float | None, int]:
    """What the condition's energy is shared over: offline, one pass of the transcribed audio and its utterances;
    in stream mode every stream's delivered audio (stream_end's audio_s) and every final (each play of an
    utterance), since N streams over sustain_s deliver several times the dataset's audio (None: a stream did not
    end, so the audio delivered is not known)."""
    starts = [e for e in events if e.get("event") == Event.STREAM_START]
    if not starts:
        return summary.audio_s, summary.n_utterances - summary.n_failed
    ends = [e.get("audio_s") for e in events if e.get("event") == Event.STREAM_END]
    known = [a for a in ends if isinstance(a, (int, float)) and not isinstance(a, bool)]
    finals = sum(1 for e in events if e.get("event") == Event.FINAL)
    return (float(sum(known)) if len(known) == len(starts) else None), finals


def account_energy(summary: Summary, utts: list[UtteranceResult], source: str, samples, events: list[dict[str, Any]],
                   base, energy_reason: str | None, interval_ms: int,
                   owner: accounting.ProcessOwner | None = None,
                   health: dict[str, Any] | None = None,
                   companions=()) -> tuple[Summary, list[UtteranceResult]]:
    """The summary with its energy block (or its reason), and the utterances each with its energy.

    ``owner`` marks the run's own processes (its container or session), for per-process GPU memory;
    ``health`` (``registry.health(sampler)``) goes to ``summary.telemetry["health"]`` with the arrival statistics
    and the windows its readings failed in (``accounting.health_of_windows``: ``windows_affected``, ``ok`` false);
    ``companions`` (``Sampler.companions``: RAPL beside NVML) get their own blocks, of their own scope.
    The block is built whole (``accounting.EnergyBlock``) and the new summary keeps its JSON."""
    audio_s, n_ok = energy_work(summary, events)
    if energy_reason is None:
        block = accounting.energy_block(source, samples, events, base, audio_s, n_ok, interval_ms, owner)
        block = _account_companions(block, companions, events, base, audio_s, n_ok, interval_ms)
        per_utt = accounting.utterance_energy(samples, events, base)
        utts = [replace(u, **per_utt[u.id]) if u.id in per_utt else u for u in utts]
        if block.memory is not None:  # each utterance's memory peak, on the sampler's clock (issue 22, item 1)
            mem = accounting.utterance_memory(samples, events)
            utts = [replace(u, mem_peak_mib=mem[u.id]) if u.id in mem else u for u in utts]
    else:  # the full reason (each sensor's, for auto) once, in unavailable.energy; the block points there
        block = accounting.unavailable_block(None, short_energy_reason(energy_reason))
    telemetry = summary.telemetry
    if health is not None:
        arrival = dict(block.arrival) if block.arrival is not None else None
        # the windows that lost readings, had failed queries or a long gap are named, and then health is not ok
        health = accounting.health_of_windows(health, block)
        telemetry = {**telemetry, "health": {**health, "arrival": arrival}}
    summary = summary.unavailable_because({"energy": energy_reason} if energy_reason is not None else {},
                                          energy=block.to_json(), telemetry=telemetry)
    return apply_nvml_vram(summary, block), utts
