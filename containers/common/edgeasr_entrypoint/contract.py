"""The entrypoint contract, the one place both sides read it from: the host runner and every backend image.

What a job says, what the container answers and how: the contract version, the event names and the
prefix of their stdout lines, the windows the host integrates energy and time over, the noise types,
the sample rate and the job's record types. It imports nothing outside the standard library and runs
on Python 3.8 (the JetPack 5 images), so that the host (``pip install -e .`` installs this package
beside ``runner``) and each image (``COPY common/edgeasr_entrypoint``) share one copy of each fact.
containers/README.md describes the contract in words.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple

CONTRACT_VERSION = 5
"""The newest contract this copy speaks; bumped whenever a job field or an event is added or changes meaning.
2: a job runs several conditions in one container (``conditions``). 3: a condition may carry ``decode``
overrides (IN_CONTAINER_DECODE); ``condition_start`` carries the condition's effective decode settings.
4: stream mode (``job.stream``, StreamJob): live audio fed at real-time pace, with the stream events
(STREAM_EVENTS); the joint CTC/attention weight ``decode.ctc_weight`` (DECODE_FEATURES: a job names it only where
it is set, so a job that does not use it is what contract 3 wrote, and images before it read it).
5: a held start (``job.hold_s``): the container boots, then waits before its model loads until the host writes
GO_FILE into its output folder (``hold_start``/``hold_end``), so that a sweep starts the next container while it
still finishes the last one, and loads it only once nothing of the host's runs beside it (issue 26)."""

MIN_CONTRACT_VERSION = 2
"""The oldest contract a job may be written in: the host always runs conditions (2). An image speaks every
version from this one up to its own ``org.edgeasr.contract``; a job is written in the version both sides speak
and refused only where it needs a feature newer than that (FEATURES), not for every run."""

LONG_FORM_DECODE = ("vad", "vad_threshold", "vad_min_silence_ms", "condition_on_previous_text", "timestamps",
                    "chunk_s")
"""The long-form decode fields (issue 24): fixed when the model loads (each value is its own container), written
only where set (DECODE_FEATURES), so every job that does not use them is as before."""

FEATURES: Dict[str, int] = {
    "conditions in one container (job.conditions)": 2,
    "per-condition decode overrides (job.conditions[].decode)": 3,
    "stream mode (job.stream)": 4,
    "speech segments of a long recording (job.utterances[].segments)": 4,
    "joint CTC/attention weight (job.decode.ctc_weight)": 4,
    "a held start (job.hold_s)": 5,
    **{"long-form decode settings (job.decode.{})".format(name): 4 for name in LONG_FORM_DECODE},
}
"""The contract version that introduced each feature a job may use (``Job.needs``). A new event or field gets
its row here and a new CONTRACT_VERSION; older images still run every job that does not use it."""


def features_after(version: int) -> List[str]:
    """The FEATURES an image of contract ``version`` lacks (introduced after it), oldest first: what a job may not
    use with it, and what a rebuild would bring."""
    return [name for name, need in sorted(FEATURES.items(), key=lambda kv: kv[1]) if need > version]


CUDA_LIBS_LABEL = "org.edgeasr.cuda-libs"
"""The image label naming the NVIDIA CUDA libraries a CUDA image holds and their versions (``name=version,...``,
edgeasr_entrypoint/cuda_libs.py): its Dockerfile.cuda sets it from the EDGEASR_CUDA_LIBS build argument, which
`edgeasr images build` reads from CUDA_LIBS_FILE, written by the build itself."""

CUDA_LIBS_FILE = "/opt/edgeasr/cuda-libs.txt"
"""Where a CUDA image's build writes ``python -m edgeasr_entrypoint.cuda_libs`` (what its base and installs hold)."""

VERSIONS_FILE = "/opt/edgeasr/versions.txt"
"""Where a Jetson image's build writes the versions it holds (``name=version,...``: JetPack 5's of what its base
carries, JetPack 6's ``python -m edgeasr_entrypoint.held_versions``): `edgeasr images build` reads it back into the
org.edgeasr.versions label (runner/host/platforms.py ``versions_file``)."""


class JobError(ValueError):
    """A job record is malformed, or needs a contract version the reader does not speak: one sentence naming the
    field. The container reports it in status.json and exits 2; the host fails that group with it."""

EVENT_PREFIX = "EDGEASR_EVENT "
"""Each event is also printed to stdout as this prefix + one JSON object, for live progress on the host."""

GO_FILE = "go"
"""A held start's go (contract 5): the file the host creates in the container's output folder once nothing of its
own runs any more; the container, waiting between ``hold_start`` and ``hold_end``, then loads its model."""

SAMPLE_RATE = 16000
"""Hz: every utterance is decoded to 16 kHz mono float32 before the backend sees it."""

NOISE_TYPES = ("white", "pink", "brown", "babble", "file")
"""The noise a condition can mix in (besides "clean", no noise); edgeasr_entrypoint/noise.py makes each."""

CLEAN = "clean"
"""The noise type of the no-noise baseline condition."""


class Event:
    """The event names the entrypoint writes (events.jsonl and stdout), in the order a run emits them."""

    CONTAINER_START = "container_start"
    HOLD_START = "hold_start"  # a held start (contract 5): booted, waiting for the host's go before the load
    HOLD_END = "hold_end"  # the go seen (or not, within hold_s: the error follows)
    LOAD_START = "load_start"
    LOAD_END = "load_end"
    MODEL_INFO = "model_info"
    WARMUP_START = "warmup_start"
    WARMUP_END = "warmup_end"
    WARMUP_SKIPPED = "warmup_skipped"
    LOADED_IDLE_START = "loaded_idle_start"
    LOADED_IDLE_END = "loaded_idle_end"
    INFERENCE_START = "inference_start"
    CONDITION_START = "condition_start"
    PREPARE_START = "prepare_start"
    PREPARE_END = "prepare_end"
    UTTERANCE_START = "utterance_start"
    UTTERANCE_END = "utterance_end"
    UTTERANCE_ERROR = "utterance_error"
    # stream mode (contract 4): inside a condition window, in place of the utterance windows
    STREAM_START = "stream_start"  # one paced stream begins (condition, stream, its settings)
    CHUNK = "chunk"  # one chunk of a stream processed (delivered_ns, start_ns; mono_ns is when it was done)
    PARTIAL = "partial"  # a partial (not yet final) text of the utterance being heard
    FINAL = "final"  # an utterance's final text
    STREAM_END = "stream_end"  # the stream's last chunk processed (its totals)
    CONDITION_END = "condition_end"
    INFERENCE_END = "inference_end"
    ERROR = "error"
    CONTAINER_END = "container_end"


ALL_EVENTS = tuple(v for k, v in vars(Event).items() if k.isupper())
"""Every event name, in emission order."""

WINDOWS: Dict[str, Tuple[str, str]] = {
    "load": (Event.LOAD_START, Event.LOAD_END),
    "warmup": (Event.WARMUP_START, Event.WARMUP_END),
    "inference": (Event.INFERENCE_START, Event.INFERENCE_END),
    "container": (Event.CONTAINER_START, Event.CONTAINER_END),
    # container up, model loaded and warmed up, doing nothing: the loaded model's idle cost
    "loaded_idle": (Event.LOADED_IDLE_START, Event.LOADED_IDLE_END),
    # a held start (contract 5): booted, waiting before the load for the host to finish the previous container
    "hold": (Event.HOLD_START, Event.HOLD_END),
}
"""The named windows the host measures, each from its first start event to its last end event."""

PREPARE_WINDOW = (Event.PREPARE_START, Event.PREPARE_END)
"""Audio decoding and noise mixing inside the inference window (repeated): taken out of its energy and RTF."""

UTTERANCE_WINDOW = (Event.UTTERANCE_START, Event.UTTERANCE_END)
"""One utterance's backend call (matched by ``id``); in a batch, the batch's call."""

CONDITION_WINDOW = (Event.CONDITION_START, Event.CONDITION_END)
"""One condition of a sweep job (matched by ``condition``); the host reads it as that condition's inference
window."""

STREAM_EVENTS = (Event.STREAM_START, Event.CHUNK, Event.PARTIAL, Event.FINAL, Event.STREAM_END)
"""The events of stream mode (contract 4). All carry ``condition`` and ``stream`` (0-based index of the paced
stream in the condition). Clocks: every ``*_ns`` field is the container's monotonic clock, like ``mono_ns``.

- stream_start: ``chunk_ms``, ``gap_ms``, ``concurrency``, ``policy``, ``batching`` (how the streams share the
  model: text), ``offset_ns`` (its stagger), ``first_index`` (index in job.utterances it starts at).
- chunk: ``seq`` (0-based), ``audio_start_s``/``audio_end_s`` (the chunk's span on the stream's own timeline),
  ``delivered_ns`` (when its last sample had arrived at real-time pace), ``start_ns`` (when the model began on
  it, >= delivered_ns), and ``mono_ns`` (when it was done); ``id``/``play`` of the utterance it holds audio of
  (absent in a gap of silence).
- partial / final: ``id``, ``play`` (0-based pass through the data), ``text``, ``audio_start_s``/
  ``audio_end_s`` (the span of the stream's timeline it covers); final also ``first_delivered_ns`` and
  ``last_delivered_ns`` (delivery of the utterance's first and last chunk); partial may carry ``committed``
  (the leading words the policy has committed). Where the item is a long recording streamed whole (its job entry
  has ``segments``), each speech segment is one utterance for endpointing, and its partials and final also carry
  ``segment`` (0-based index among the item's speech segments): a final at each segment's end.
- stream_end: ``n_chunks``, ``audio_s`` (seconds delivered), ``passes`` (times the data was played),
  ``looped`` (bool: played more than once to fill sustain_s).
"""

CONTAINER_WIDE_EVENTS = frozenset({
    Event.CONTAINER_START, Event.HOLD_START, Event.HOLD_END,
    Event.LOAD_START, Event.LOAD_END, Event.MODEL_INFO, Event.WARMUP_START,
    Event.WARMUP_END, Event.WARMUP_SKIPPED, Event.LOADED_IDLE_START, Event.LOADED_IDLE_END, Event.CONTAINER_END,
})
"""Events that belong to every condition of a sweep job (the model is loaded and warmed up once for all)."""


# -- the job's records (job.py parses them) --------------------------------------------------------------


STREAM_POLICIES = ("native", "local-agreement-2")
"""How a stream turns chunks into text: ``native`` (the backend's own incremental decoder: pocketsphinx, chunked
CTC), ``local-agreement-2`` (Whisper: re-decode the utterance's growing buffer after each chunk and commit the
longest word prefix on which the last two hypotheses agree)."""


def _require(obj: dict, key: str, kind: type, where: str = "job") -> Any:
    if key not in obj:
        raise JobError("{}.{} is missing".format(where, key))
    value = obj[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise JobError("{}.{} must be {}, got {}".format(where, key, kind.__name__, type(value).__name__))
    return value


@dataclass(frozen=True)
class DecodeOptions:
    """Decoding settings; temperature 0 by default so that runs are deterministic."""

    beam_size: int = 5
    temperature: float = 0.0
    language: Optional[str] = None
    threads: int = 0
    batch_size: int = 1
    align: bool = False  # word alignment (whisperx); off by default: its model needs a download
    # joint CTC/attention decoding (ESPnet): the CTC share of each hypothesis' score, 0 (attention only) to 1 (CTC
    # only); None: the backend has no joint decoding
    ctc_weight: Optional[float] = None
    # long-form decoding (issue 24): None leaves each to the backend (its declared long-form algorithm)
    vad: Optional[bool] = None  # segment by voice activity detection
    vad_threshold: Optional[float] = None  # the VAD's speech probability threshold
    vad_min_silence_ms: Optional[int] = None  # silence that ends a VAD speech segment
    condition_on_previous_text: Optional[bool] = None  # prompt each window with the text before it
    timestamps: Optional[bool] = None  # decode with timestamp tokens
    chunk_s: Optional[int] = None  # the longest (merged) VAD segment decoded as one window, whole seconds

    def to_json(self) -> Dict[str, Any]:
        """As a job names it: a field newer than contract 3 (DECODE_FEATURES) only where it is set, so that a job
        not using it is read by images before it (their decode reader refuses keys it does not know)."""
        return {k: v for k, v in asdict(self).items() if not (k in DECODE_FEATURES and v is None)}

    def features(self) -> List[str]:
        """The FEATURES these settings use (a DECODE_FEATURES field that is set)."""
        return [DECODE_FEATURES[k] for k in DECODE_FEATURES if getattr(self, k) is not None]

    @classmethod
    def from_json(cls, raw: Any, where: str = "job.decode") -> "DecodeOptions":
        """The job's decode settings: an object of known names (each backend reads its own), the ones the
        entrypoint relies on of the right type and range."""
        if not isinstance(raw, dict):
            raise JobError("{} must be an object".format(where))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise JobError("{} has unknown keys {}; known: {}".format(where, unknown, sorted(known)))
        check_decode_values(raw, where)
        return cls(**raw)


IN_CONTAINER_DECODE = ("beam_size", "batch_size", "temperature", "language", "ctc_weight")
"""The decode fields a condition may override inside one loaded model (``conditions[i].decode``); the rest
(threads, align) are fixed when the model loads. An adapter applies a change through ``set_decode``."""

DECODE_FEATURES: Dict[str, str] = {"ctc_weight": "joint CTC/attention weight (job.decode.ctc_weight)",
                                   **{name: "long-form decode settings (job.decode.{})".format(name)
                                      for name in LONG_FORM_DECODE}}
"""The decode fields added after contract 3, each with its FEATURES row: a job that sets one (in job.decode or a
condition's overrides) needs that row's version (``Job.needs``); one that does not leaves it out (``to_json``)."""


def decode_changes(old: DecodeOptions, new: DecodeOptions) -> List[str]:
    """The names of the decode fields that differ between two settings, in field order."""
    return [f.name for f in fields(DecodeOptions) if getattr(old, f.name) != getattr(new, f.name)]


def check_decode_overrides(raw: Any, where: str) -> dict:
    """A condition's decode overrides: only the fields a loaded model can change (IN_CONTAINER_DECODE), each of
    the type the entrypoint relies on (the batch size slices the utterances)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise JobError("{}.decode must be an object".format(where))
    for key in raw:
        if key not in IN_CONTAINER_DECODE:
            known = key in DecodeOptions.__dataclass_fields__
            fixed = " (it is fixed when the model loads: set it in job.decode)" if known else ""
            raise JobError("{}.decode.{} cannot be set per condition{}; a condition may override {}".format(
                where, key, fixed, ", ".join(IN_CONTAINER_DECODE)))
    check_decode_values(raw, "{}.decode".format(where))
    return dict(raw)


def check_decode_values(raw: dict, where: str) -> None:
    """The types and ranges of the decode fields the entrypoint relies on (the batch size slices the
    utterances); ``where`` names the object ("job.decode", "job.conditions[0].decode")."""
    for key in ("beam_size", "batch_size"):
        if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 1):
            raise JobError("{}.{} must be a positive integer, got {!r}".format(where, key, raw[key]))
    if "temperature" in raw and (isinstance(raw["temperature"], bool)
                                 or not isinstance(raw["temperature"], (int, float)) or raw["temperature"] < 0):
        raise JobError("{}.temperature must be a non-negative number, got {!r}".format(where, raw["temperature"]))
    if "language" in raw and raw["language"] is not None and not isinstance(raw["language"], str):
        raise JobError("{}.language must be a language code or null, got {!r}".format(where, raw["language"]))
    weight = raw.get("ctc_weight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                               or not 0 <= weight <= 1):
        raise JobError("{}.ctc_weight must be a number from 0 to 1 or null, got {!r}".format(where, weight))
    for key in ("vad", "condition_on_previous_text", "timestamps"):
        if raw.get(key) is not None and not isinstance(raw[key], bool):
            raise JobError("{}.{} must be true, false or null, got {!r}".format(where, key, raw[key]))
    threshold = raw.get("vad_threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0 < threshold <= 1):
        raise JobError("{}.vad_threshold must be a number above 0 and at most 1, or null, got {!r}".format(
            where, threshold))
    chunk = raw.get("chunk_s")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= 30):
        raise JobError("{}.chunk_s must be a whole number of seconds from 1 to 30, or null, got {!r}".format(
            where, chunk))
    silence = raw.get("vad_min_silence_ms")
    if silence is not None and (isinstance(silence, bool) or not isinstance(silence, int) or silence < 0):
        raise JobError("{}.vad_min_silence_ms must be a non-negative integer or null, got {!r}".format(where, silence))


@dataclass(frozen=True)
class UtteranceJob:
    """One item of the job. ``segments``: the speech segments of a long recording's segment map (issue 23 item 2;
    runner/data/lengths.py), as (start_s, end_s) seconds from the item's start, in order, not overlapping; stream
    mode streams such an item whole, each segment one utterance for endpointing. Written only where present, and
    only by a stream job (the host keeps the map otherwise), so every other job is what contract 3 wrote."""

    id: str
    audio: str  # path inside the container
    segments: Optional[Tuple[Tuple[float, float], ...]] = None

    def to_json(self) -> Dict[str, Any]:
        out = {"id": self.id, "audio": self.audio}  # type: Dict[str, Any]
        if self.segments is not None:
            out["segments"] = [{"start_s": a, "end_s": b} for a, b in self.segments]
        return out

    @classmethod
    def from_json(cls, raw: Any, where: str) -> "UtteranceJob":
        if not isinstance(raw, dict):
            raise JobError("{} must be an object".format(where))
        segments = raw.get("segments")
        return cls(id=str(_require(raw, "id", str, where)), audio=_require(raw, "audio", str, where),
                   segments=None if segments is None else _speech_segments(segments, where + ".segments"))


def _speech_segments(raw: Any, where: str) -> Tuple[Tuple[float, float], ...]:
    """A job's speech segments, checked: numbers >= 0, each ending after it starts and starting at or after the
    end of the one before."""
    if not isinstance(raw, list):
        raise JobError("{} must be a list of {{start_s, end_s}} objects".format(where))
    if not raw:
        raise JobError("{} must be a non-empty list of speech segments".format(where))
    out = []  # type: List[Tuple[float, float]]
    for i, seg in enumerate(raw):
        at = "{}[{}]".format(where, i)
        if not isinstance(seg, dict):
            raise JobError("{} must be an object with start_s and end_s".format(at))
        start, end = (float(_number(seg, k, at, -1.0, 0.0, False)) if k in seg else None
                      for k in ("start_s", "end_s"))
        if start is None or end is None:
            raise JobError("{}.{} must be a number >= 0, got nothing".format(at, "start_s" if start is None
                                                                               else "end_s"))
        if end <= start:
            raise JobError("{} ends at {:g} s, not after its start ({:g} s)".format(at, end, start))
        if out and start < out[-1][1]:
            raise JobError("{} starts at {:g} s, before the segment before it ends ({:g} s)".format(
                at, start, out[-1][1]))
        out.append((start, end))
    return tuple(out)


@dataclass(frozen=True)
class ConditionJob:
    """One condition of a sweep: the noise to add, the seed key, which utterances (None: all), and the
    decode fields it overrides (a subset of IN_CONTAINER_DECODE; empty: the job's decode settings)."""

    key: str
    noise: dict
    seed_key: str
    ids: Optional[tuple] = None
    decode: dict = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        """As the job names it: the decode overrides only where there are some."""
        out = {"key": self.key, "noise": self.noise, "seed_key": self.seed_key,
               "ids": list(self.ids) if self.ids is not None else None}  # type: Dict[str, Any]
        if self.decode:
            out["decode"] = dict(self.decode)
        return out

    @classmethod
    def from_json(cls, raw: Any, where: str) -> "ConditionJob":
        if not isinstance(raw, dict):
            raise JobError("{} must be an object".format(where))
        ids = raw.get("ids")
        if ids is not None and not isinstance(ids, list):
            raise JobError("{}.ids must be a list of utterance ids or null".format(where))
        key = _require(raw, "key", str, where)
        return cls(key=key, noise=_require(raw, "noise", dict, where), seed_key=str(raw.get("seed_key", key)),
                   ids=tuple(ids) if ids is not None else None,
                   decode=check_decode_overrides(raw.get("decode"), where))


def _number(raw: dict, key: str, where: str, default: float, low: float, strict: bool) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            (value <= low if strict else value < low):
        raise JobError("{}.{} must be a number {} {:g}, got {!r}".format(where, key, ">" if strict else ">=", low,
                                                                       value))
    return value


@dataclass(frozen=True)
class StreamJob:
    """Stream mode (contract 4): each condition's utterances played as live audio, back to back with ``gap_ms``
    of silence between them, fed in ``chunk_ms`` chunks at real-time pace on the container's monotonic clock, by
    ``concurrency`` streams on the one loaded model (staggered by chunk_ms / concurrency, each starting at a
    different utterance); each stream plays the data at least once and until ``sustain_s`` seconds of audio were
    delivered. ``offline``: also transcribe each utterance whole afterwards (untimed), for the WER beside."""

    chunk_ms: int = 500
    gap_ms: int = 500
    concurrency: int = 1
    policy: str = "native"
    sustain_s: float = 60.0
    offline: bool = True

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any, where: str = "job.stream") -> "StreamJob":
        if not isinstance(raw, dict):
            raise JobError("{} must be an object".format(where))
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise JobError("{} has unknown keys {}".format(where, unknown))
        for key, low in (("chunk_ms", 1), ("concurrency", 1), ("gap_ms", 0)):
            value = raw.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise JobError("{}.{} must be an integer >= {}, got {!r}".format(where, key, low, value))
        policy = raw.get("policy", cls.policy)
        if policy not in STREAM_POLICIES:
            raise JobError("{}.policy must be one of {}, got {!r}".format(where, ", ".join(STREAM_POLICIES),
                                                                          policy))
        offline = raw.get("offline", True)
        if not isinstance(offline, bool):
            raise JobError("{}.offline must be true or false".format(where))
        return cls(chunk_ms=raw.get("chunk_ms", cls.chunk_ms), gap_ms=raw.get("gap_ms", cls.gap_ms),
                   concurrency=raw.get("concurrency", cls.concurrency), policy=policy,
                   sustain_s=float(_number(raw, "sustain_s", where, cls.sustain_s, 0, True)), offline=offline)


@dataclass(frozen=True)
class Job:
    """The job spec a backend container receives (job.json): the host writes ``to_json()``
    (runner/launch/job.py), the container reads ``from_json()`` before the model loads, with every check."""

    contract_version: int
    backend: str
    model: str  # in-container path, or a hub name when allow_download is set
    quant: str  # edgeasr's name: fp32 / fp16 / int8
    backend_quant: str  # the backend's own name, resolved on the host (e.g. int8_float16)
    device: str
    decode: DecodeOptions
    warmup: int
    utterances: list = field(default_factory=list)
    allow_download: bool = False
    conditions: list = field(default_factory=list)  # empty: one clean condition over every utterance
    loaded_idle_s: float = 0.0  # idle seconds with the model loaded, after warm-up (the host measures power)
    stream: Optional[StreamJob] = None  # stream mode (contract 4); None: offline, utterance by utterance
    # a held start (contract 5): > 0, the container waits (at most this long) before its load for GO_FILE; 0: none
    hold_s: float = 0.0

    def to_json(self) -> Dict[str, Any]:
        out = {"contract_version": self.contract_version, "backend": self.backend, "model": self.model,
               "quant": self.quant, "backend_quant": self.backend_quant, "device": self.device,
               "decode": self.decode.to_json(), "warmup": self.warmup, "loaded_idle_s": self.loaded_idle_s,
               "allow_download": self.allow_download, "utterances": [u.to_json() for u in self.utterances],
               "conditions": [c.to_json() for c in self.conditions]}  # type: Dict[str, Any]
        if self.stream is not None:  # only where used: a job without it is what contract 3 wrote
            out["stream"] = self.stream.to_json()
        if self.hold_s:  # likewise: a job without a held start is what contract 4 wrote
            out["hold_s"] = self.hold_s
        return out

    def needs(self) -> Tuple[int, str]:
        """The contract version this job needs and the newest feature it uses (FEATURES) that needs it."""
        used = []
        if self.conditions:
            used.append("conditions in one container (job.conditions)")
        if any(c.decode for c in self.conditions):
            used.append("per-condition decode overrides (job.conditions[].decode)")
        if self.stream is not None:
            used.append("stream mode (job.stream)")
        if any(u.segments is not None for u in self.utterances):
            used.append("speech segments of a long recording (job.utterances[].segments)")
        if self.hold_s:
            used.append("a held start (job.hold_s)")
        used += self.decode.features()
        used += [DECODE_FEATURES[k] for k in DECODE_FEATURES
                 if any(k in c.decode for c in self.conditions)]
        return max(((FEATURES[u], u) for u in used), default=(MIN_CONTRACT_VERSION, "the job"))

    def version_problem(self, version: int) -> Optional[str]:
        """Why this job cannot be written in contract ``version`` (what an image speaks), or None."""
        need, feature = self.needs()
        if need <= version:
            return None
        return "the job uses {}, which needs entrypoint contract {}; the image speaks {}".format(
            feature, need, version)

    @classmethod
    def from_json(cls, data: Any, speaks: int = CONTRACT_VERSION) -> "Job":
        """Check every field the entrypoint relies on; raise JobError naming the key. A job in any contract
        version from MIN_CONTRACT_VERSION to ``speaks`` is read, unless it uses a feature newer than its own."""
        if not isinstance(data, dict):
            raise JobError("job must be a JSON object")
        version = _require(data, "contract_version", int)
        if not MIN_CONTRACT_VERSION <= version <= speaks:
            raise JobError("job.contract_version is {}, this image speaks contract {} to {}".format(
                version, MIN_CONTRACT_VERSION, speaks))
        decode = DecodeOptions.from_json(data.get("decode", {}))
        utterances = [UtteranceJob.from_json(u, "job.utterances[{}]".format(i))
                      for i, u in enumerate(_require(data, "utterances", list))]
        warmup = data.get("warmup", 1)
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
            raise JobError("job.warmup must be a non-negative integer")
        conditions = [ConditionJob.from_json(c, "job.conditions[{}]".format(i))
                      for i, c in enumerate(data.get("conditions") or [])]
        loaded_idle_s = data.get("loaded_idle_s", 0.0)
        if not isinstance(loaded_idle_s, (int, float)) or isinstance(loaded_idle_s, bool) or loaded_idle_s < 0:
            raise JobError("job.loaded_idle_s must be a non-negative number of seconds")
        stream = StreamJob.from_json(data["stream"]) if data.get("stream") is not None else None
        hold_s = data.get("hold_s", 0.0)
        if not isinstance(hold_s, (int, float)) or isinstance(hold_s, bool) or not 0 <= hold_s < math.inf:
            raise JobError("job.hold_s must be a non-negative number of seconds")
        job = cls(loaded_idle_s=float(loaded_idle_s), conditions=conditions, contract_version=version, stream=stream,
                  hold_s=float(hold_s),
                  backend=_require(data, "backend", str), model=_require(data, "model", str),
                  quant=_require(data, "quant", str), backend_quant=_require(data, "backend_quant", str),
                  device=_require(data, "device", str), decode=decode, warmup=warmup, utterances=utterances,
                  allow_download=bool(data.get("allow_download", False)))
        problem = job.version_problem(version)
        if problem:
            raise JobError("job.contract_version is {}: {}".format(version, problem.replace(
                "the image speaks", "the job says")))
        return job


# -- what comes back: event, transcript and status records (the host validates against these) -------------


class RecordError(ValueError):
    """A record the container wrote breaks the contract: one sentence saying which field and why."""


# Both sides build these records through the same types. The entrypoint (and stream.py) makes them with
# ``EventLog.emit(name, **fields)`` (EventRecord.build: stamps both clocks, checks, writes, returns the record),
# ``TranscriptRecord.ok(id, condition, text, duration_s, processing_s, batch_size=, latency_s=, **extra)`` /
# ``TranscriptRecord.failed(id, condition, error, duration_s=, processing_s=)`` (write ``.to_json()``) and
# ``StatusRecord.written(fields)`` for status.json; the host reads them back with ``from_json``. A record that
# breaks the contract raises RecordError where it is made, so nothing the host would refuse is written.


# What each field of the contract may hold. ``positive``: seconds of audio (> 0); ``seconds``/``mb``: >= 0.
# Units: the memory figures peak_rss_mb, peak_vram_mb, audio_cache_mb, rss_after_load_mb and peak_rss_excl_audio_mb
# hold MiB (2^20 bytes: ru_maxrss / 1024, VmHWM / 1024, bytes / 2^20), model_size_mb MB (10^6 bytes). The names are
# the contract's since version 1 and every image built writes them, so they stay (a rename would break every older
# image the host still runs); the host's results name them _mib (summary schema 4, runner/merge.CONTRACT_MIB).
POSITIVE_FIELDS = ("duration_s",)
NON_NEGATIVE_FIELDS = ("processing_s", "latency_s", "audio_s", "peak_rss_mb", "peak_vram_mb", "audio_cache_mb",
                       "rss_after_load_mb", "model_size_mb", "seconds", "peak_rss_excl_audio_mb",
                       "audio_start_s", "audio_end_s", "sustain_s")
COUNT_FIELDS = ("n_params", "batch_size", "count", "n_ok", "n_failed", "n", "n_conditions", "n_utterances",
                "stream", "seq", "play", "concurrency", "chunk_ms", "gap_ms", "first_index", "n_chunks", "passes",
                "delivered_ns", "start_ns", "first_delivered_ns", "last_delivered_ns", "offset_ns", "segment")
TEXT_FIELDS = ("condition", "id", "error", "peak_rss_scope", "device_used", "quant_method", "model", "status",
               "model_kind", "backend", "traceback", "reason", "peak_rss_excl_audio_method", "text", "committed",
               "policy", "batching", "offline_hypothesis")
REQUIRED_EVENT_FIELDS = {Event.UTTERANCE_START: ("id",), Event.UTTERANCE_END: ("id", "duration_s", "processing_s"),
                         Event.UTTERANCE_ERROR: ("id",),
                         Event.STREAM_START: ("stream",), Event.STREAM_END: ("stream",),
                         Event.CHUNK: ("stream", "seq", "delivered_ns", "start_ns"),
                         Event.PARTIAL: ("stream", "id", "text"),
                         Event.FINAL: ("stream", "id", "text", "first_delivered_ns", "last_delivered_ns")}
"""The fields an event must carry, beyond its name and clocks (the entrypoint always writes them)."""


def shown(value: Any) -> str:
    """A value as a sentence quotes it: short, and never the whole of a long one."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def finite_everywhere(value: Any) -> bool:
    """Whether a JSON value holds no NaN and no infinity at any depth (Python's JSON reader accepts both);
    iterative, so that a deeply nested value cannot exhaust the stack."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def value_problem(name: str, value: Any, required: bool = False) -> Optional[str]:
    """Why ``value`` cannot be the contract's field ``name`` (None: it can). Unknown names only need to be
    free of NaN and infinities."""
    if value is None:
        return "{} is missing".format(name) if required else None
    if name in POSITIVE_FIELDS or name in NON_NEGATIVE_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "{} is {}, not a number".format(name, shown(value))
        if not math.isfinite(value):
            return "{} is {}, not a finite number".format(name, shown(value))
        if name in POSITIVE_FIELDS and value <= 0:
            return "{} is {!r}: seconds of audio must be more than 0".format(name, value)
        if value < 0:
            return "{} is {!r}, below 0".format(name, value)
        return None
    if name in COUNT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return "{} is {}, not a count".format(name, shown(value))
        return None
    if name in TEXT_FIELDS:
        return None if isinstance(value, str) else "{} is {}, not text".format(name, shown(value))
    if name == "versions":
        if not isinstance(value, Mapping) or not all(isinstance(v, (str, type(None))) for v in value.values()):
            return "versions is {}, not a map of names to version texts".format(shown(value))
        return None
    return None if finite_everywhere(value) else "{} holds NaN or an infinity".format(name)


def fields_problem(record: Mapping, required: Tuple[str, ...] = ()) -> Optional[str]:
    """The first field of a record that breaks the contract, in a phrase (None: none does)."""
    for name in required:
        if record.get(name) is None:
            return "{} is missing".format(name)
    for name, value in record.items():
        problem = value_problem(str(name), value)
        if problem:
            return problem
    return None


@dataclass(frozen=True)
class EventRecord:
    """One event (events.jsonl, and stdout after EVENT_PREFIX) that passed the checks: its name, both clocks
    (non-negative integers), the condition and utterance it names, and the record as written."""

    event: str
    t_ns: int
    mono_ns: int
    condition: Optional[str]
    id: Optional[str]
    record: Mapping = field(compare=False)

    def to_json(self) -> Dict[str, Any]:
        return dict(self.record)

    as_dict = to_json

    @classmethod
    def build(cls, event: str, t_ns: int, mono_ns: int, **fields: Any) -> "EventRecord":
        """An event as the entrypoint makes it (``EventLog.emit`` calls this): its name, both clocks, then the
        fields in the order given; checked like the host checks it (RecordError: not written at all)."""
        record = {"event": event, "t_ns": t_ns, "mono_ns": mono_ns}  # type: Dict[str, Any]
        record.update(fields)
        return cls.from_json(record)

    @classmethod
    def from_json(cls, record: Any) -> "EventRecord":
        """One event checked on its own (fields, types, ranges); RecordError saying why not."""
        if not isinstance(record, Mapping):
            raise RecordError("an event that is not an object")
        name = record.get("event")
        if not isinstance(name, str):
            raise RecordError("an event whose name is {}, not text".format(shown(name)))
        for clock in ("t_ns", "mono_ns"):
            value = record.get(clock)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RecordError("{}: {} is {}, not a time in nanoseconds".format(name, clock, shown(value)))
        problem = fields_problem(record, REQUIRED_EVENT_FIELDS.get(name, ()))
        if problem:
            raise RecordError("{}: {}".format(name, problem))
        return cls(name, record["t_ns"], record["mono_ns"], record.get("condition"), record.get("id"), dict(record))


@dataclass(frozen=True)
class TranscriptRecord:
    """One utterance's result (transcripts.jsonl) that passed the checks. An ``ok`` one has text and audio
    seconds > 0 and processing seconds >= 0 (finite); an ``error`` one has its sentence (or None)."""

    id: str
    condition: Optional[str]
    status: str  # ok | error
    hypothesis: Optional[str]
    error: Optional[str]
    duration_s: Optional[float]
    processing_s: Optional[float]
    latency_s: Optional[float]
    record: Mapping = field(compare=False)

    def to_json(self) -> Dict[str, Any]:
        return dict(self.record)

    as_dict = to_json

    @classmethod
    def ok(cls, id: str, condition: Optional[str], hypothesis: Any, duration_s: float, processing_s: float,
           batch_size: Optional[int] = None, latency_s: Optional[float] = None,
           **extra: Any) -> "TranscriptRecord":
        """A result with text, as the entrypoint writes it (transcripts.jsonl): ``batch_size`` and ``latency_s``
        (the whole call's seconds: in a batch every utterance waits for all of it) only where given, then any
        ``extra`` fields (each checked like the contract's other fields). RecordError where the host would
        refuse it (a hypothesis that is not text, audio seconds not > 0, processing seconds < 0): the caller
        records that utterance with ``failed`` instead."""
        record = {"id": id, "condition": condition, "status": "ok", "error": None, "hypothesis": hypothesis,
                  "duration_s": duration_s, "processing_s": processing_s}  # type: Dict[str, Any]
        if batch_size is not None:
            record["batch_size"] = batch_size
        if latency_s is not None:
            record["latency_s"] = latency_s
        record.update(extra)
        return cls.from_json(record)

    @classmethod
    def failed(cls, id: str, condition: Optional[str], error: str, duration_s: Optional[float] = None,
               processing_s: Optional[float] = None, **extra: Any) -> "TranscriptRecord":
        """An utterance that has no text, with its one sentence (``error``); the audio and processing seconds
        where it got as far as the backend call (None before it: unreadable audio, a refused decode change)."""
        record = {"id": id, "condition": condition, "status": "error", "error": error, "hypothesis": None,
                  "duration_s": duration_s, "processing_s": processing_s}  # type: Dict[str, Any]
        record.update(extra)
        return cls.from_json(record)

    @classmethod
    def from_json(cls, record: Any) -> "TranscriptRecord":
        """One result checked on its own; RecordError saying why not."""
        if not isinstance(record, Mapping):
            raise RecordError("a result that is not an object")
        if not isinstance(record.get("id"), str):
            raise RecordError("id is {}, not text".format(shown(record.get("id"))))
        status = record.get("status")
        if status not in ("ok", "error"):
            raise RecordError("status is {}, not 'ok' or 'error'".format(shown(status)))
        if status == "ok":
            problem = fields_problem(record, ("duration_s", "processing_s"))
            if problem is None and not isinstance(record.get("hypothesis"), str):
                problem = "hypothesis is {}, not text".format(shown(record.get("hypothesis")))
        else:
            problem = fields_problem({k: v for k, v in record.items() if k != "hypothesis"})
        if problem:
            raise RecordError(problem)
        return cls(record["id"], record.get("condition"), status,
                   record.get("hypothesis") if status == "ok" else None, record.get("error"),
                   record.get("duration_s"), record.get("processing_s"), record.get("latency_s"), dict(record))


@dataclass(frozen=True)
class StatusRecord:
    """The container's final record (status.json) as the host may read it: every field that broke the contract
    taken out, each named in ``problems``; ``status`` is "ok" or "error" (anything else reads as "error")."""

    status: str
    record: Mapping = field(compare=False)  # the fields that passed, status included
    problems: Tuple[str, ...] = ()

    def to_json(self) -> Dict[str, Any]:
        return dict(self.record)

    @classmethod
    def written(cls, record: Mapping) -> "StatusRecord":
        """status.json as the entrypoint writes it: the host's checks (``from_json``), and where a field breaks
        them (an adapter's info() gave a parameter count that is not a count) that field is left out and the
        status is "error", its ``error`` naming the field: the host would fail every condition on it anyway,
        and this way the container says so itself. Key order is kept (the file is what it always was)."""
        checked = cls.from_json(record)
        if not checked.problems:
            return checked
        out = dict(checked.record)
        why = "the status record breaks the contract: {}".format("; ".join(checked.problems))
        out["status"] = "error"
        out["error"] = "{}; {}".format(out["error"], why) if out.get("error") else why
        return cls("error", out, checked.problems)

    @classmethod
    def from_json(cls, record: Mapping) -> "StatusRecord":
        out = {}  # type: Dict[str, Any]
        problems = []
        for name, value in record.items():
            problem = value_problem(str(name), value)
            if problem:
                problems.append(problem)
            else:
                out[name] = value
        if out.get("status") not in ("ok", "error"):
            if "status" in out or "status" not in record:
                problems.append("status is {}, not 'ok' or 'error'".format(shown(record.get("status"))))
            out["status"] = "error"
        return cls(out["status"], out, tuple(problems))
