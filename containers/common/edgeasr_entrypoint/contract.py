"""The entrypoint contract, the one place both sides read it from: the host runner and every backend image.

What a job says, what the container answers and how: the contract version, the event names and the
prefix of their stdout lines, the windows the host integrates energy and time over, the noise types,
the sample rate and the job's record types. It imports nothing outside the standard library and runs
on Python 3.8 (the JetPack 5 images), so that the host (``pip install -e .`` installs this package
beside ``runner``) and each image (``COPY common/edgeasr_entrypoint``) share one copy of each fact.
containers/README.md describes the contract in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Tuple

CONTRACT_VERSION = 3
"""Bumped whenever a job field or an event changes meaning. 3: a condition may carry ``decode`` overrides
(IN_CONTAINER_DECODE); ``condition_start`` carries the condition's effective decode settings. Within 3, the
optional ``decode.ctc_weight`` was added (OPTIONAL_DECODE): a job leaves it out unless it is set, so a job for
any backend without joint decoding is what contract 3 always wrote, and images built before it read it."""

EVENT_PREFIX = "EDGEASR_EVENT "
"""Each event is also printed to stdout as this prefix + one JSON object, for live progress on the host."""

SAMPLE_RATE = 16000
"""Hz: every utterance is decoded to 16 kHz mono float32 before the backend sees it."""

NOISE_TYPES = ("white", "pink", "brown", "babble", "file")
"""The noise a condition can mix in (besides "clean", no noise); edgeasr_entrypoint/noise.py makes each."""

CLEAN = "clean"
"""The noise type of the no-noise baseline condition."""


class Event:
    """The event names the entrypoint writes (events.jsonl and stdout), in the order a run emits them."""

    CONTAINER_START = "container_start"
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
}
"""The named windows the host measures, each from its first start event to its last end event."""

PREPARE_WINDOW = (Event.PREPARE_START, Event.PREPARE_END)
"""Audio decoding and noise mixing inside the inference window (repeated): taken out of its energy and RTF."""

UTTERANCE_WINDOW = (Event.UTTERANCE_START, Event.UTTERANCE_END)
"""One utterance's backend call (matched by ``id``); in a batch, the batch's call."""

CONDITION_WINDOW = (Event.CONDITION_START, Event.CONDITION_END)
"""One condition of a sweep job (matched by ``condition``); the host reads it as that condition's inference
window."""

CONTAINER_WIDE_EVENTS = frozenset({
    Event.CONTAINER_START, Event.LOAD_START, Event.LOAD_END, Event.MODEL_INFO, Event.WARMUP_START,
    Event.WARMUP_END, Event.WARMUP_SKIPPED, Event.LOADED_IDLE_START, Event.LOADED_IDLE_END, Event.CONTAINER_END,
})
"""Events that belong to every condition of a sweep job (the model is loaded and warmed up once for all)."""


# -- the job's records (job.py parses them) --------------------------------------------------------------


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


IN_CONTAINER_DECODE = ("beam_size", "batch_size", "temperature", "language", "ctc_weight")
"""The decode fields a condition may override inside one loaded model (``conditions[i].decode``); the rest
(threads, align) are fixed when the model loads. An adapter applies a change through ``set_decode``."""

OPTIONAL_DECODE = ("ctc_weight",)
"""Decode fields the host writes into a job only when they are set (not None): they were added within contract
3, so a job that does not use them stays readable by every image of contract 3."""


def decode_changes(old: DecodeOptions, new: DecodeOptions) -> List[str]:
    """The names of the decode fields that differ between two settings, in field order."""
    return [f.name for f in fields(DecodeOptions) if getattr(old, f.name) != getattr(new, f.name)]


@dataclass(frozen=True)
class UtteranceJob:
    id: str
    audio: str  # path inside the container


@dataclass(frozen=True)
class ConditionJob:
    """One condition of a sweep: the noise to add, the seed key, which utterances (None: all), and the
    decode fields it overrides (a subset of IN_CONTAINER_DECODE; empty: the job's decode settings)."""

    key: str
    noise: dict
    seed_key: str
    ids: Optional[tuple] = None
    decode: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
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
