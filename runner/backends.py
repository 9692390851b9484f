"""The backend table: one row per backend holds everything backend-specific.

A row names the backend's image (and so its per-platform tags), its build folder, its adapter, the inference
library and that library's quant map per device, what model format it loads and which hub names it can
download, its capabilities (word alignment, batching, the settings it varies inside one loaded model, the
decode settings it honours, per kind of model where kinds differ: a CTC model has no beam search), its
defaults and the model `edgeasr check-image` tests it with. Adding a backend is its folder under containers/
plus one row here; every list of backends (the CLI, the Makefile, the tests) is read from this table.
Swapping a backend is a name here (or any image that honours the contract via --image).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from edgeasr_entrypoint.contract import IN_CONTAINER_DECODE, LONG_FORM_DECODE, STREAM_POLICIES

from .errors import UserError
from .host.platforms import platform_image, resolve_platform

CONTAINERS_DIR = Path(__file__).resolve().parents[1] / "containers"

#: edgeasr's quant names, in the order messages list them; each row maps them to its library's own.
QUANTS = ("fp32", "fp16", "bf16", "int8")
#: The devices a run can ask for (``auto`` resolves to one of them).
DEVICES = ("cpu", "cuda")
#: --model and --quant when none is given, for a row that says no other (a Whisper backend's).
DEFAULT_MODEL = "tiny.en"
DEFAULT_QUANT = "int8"

#: device -> {edgeasr quant: the library's compute type}. A combination missing from a row's map is one
#: that device cannot run; it is refused before any container starts, naming what that device supports.
QuantMap = Mapping[str, Mapping[str, str]]


def quant_map(**by_device: dict[str, str]) -> QuantMap:
    """A read-only quant map (rows share them: a library's map is one fact, whichever backend wraps it)."""
    unknown = ({q for m in by_device.values() for q in m} - set(QUANTS)) | (set(by_device) - set(DEVICES))
    if unknown:
        raise ValueError(f"quant map names unknown quants or devices: {sorted(unknown)}")
    return MappingProxyType({d: MappingProxyType(dict(m)) for d, m in by_device.items()})


# CTranslate2 on CPU has no float16 kernels: asking for it raises inside the library, so we refuse first.
CTRANSLATE2_QUANTS = quant_map(
    cpu={"fp32": "float32", "int8": "int8"},
    cuda={"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8_float16"},
)
# torch: fp16 kernels are CUDA-only in practice; int8 is dynamic quantization on CPU (qint8 Linear weights)
# and bitsandbytes LLM.int8 on CUDA.
TORCH_QUANTS = quant_map(
    cpu={"fp32": "float32", "bf16": "bfloat16", "int8": "dynamic_int8"},
    cuda={"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "bnb_int8"},
)
# ONNX Runtime: the exported graph in float32, converted to float16 (CUDA only: the CPU provider lacks most
# fp16 kernels), or ONNX Runtime's dynamic quantization (int8 MatMul weights, activations on the fly).
ONNXRUNTIME_QUANTS = quant_map(
    cpu={"fp32": "float32", "int8": "dynamic_int8"},
    cuda={"fp32": "float32", "fp16": "float16"},
)
# pocketsphinx: one precision, the float computation of its bundled continuous/PTM acoustic model; no GPU path.
POCKETSPHINX_QUANTS = quant_map(cpu={"fp32": "float32"})

#: The Whisper models known by a short name on the hub (faster-whisper's names): each has a CTranslate2 conversion
#: (faster-whisper, whisperx) and a Hugging Face checkpoint (transformers, and the ONNX export made from it); the
#: repositories are in runner/models/hub.py. Not installed, a name is downloaded on the host at a pinned commit.
WHISPER_HUB_NAMES = (
    "tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
    "distil-small.en", "distil-medium.en", "distil-large-v2", "distil-large-v3", "distil-large-v3.5",
)

#: The decode choices (dotted paths): the settings a condition may change inside one loaded model (the
#: contract's IN_CONTAINER_DECODE) and the ones a model may not honour at all. threads and align are not among
#: them: every backend takes a thread count, and align is checked as a capability (``align``). ctc_weight is the
#: weight of joint CTC/attention decoding (ESPnet); a model without it decodes with none (null).
DECODE_CHOICES = tuple(f"decode.{name}" for name in IN_CONTAINER_DECODE)
#: What the entrypoint varies inside one loaded model for the Whisper backends that decode with the library's
#: own search: every decode choice but the CTC weight (they have no joint decoding).
WHISPER_IN_CONTAINER = ("decode.beam_size", "decode.batch_size", "decode.temperature", "decode.language")
#: The decode choices that change the memory a loaded model holds (batch activations, padded inputs): freed
#: memory stays resident in the process, so a condition after a larger one would report the larger one's memory
#: (issue 22, item 1). An axis over one of them makes one container per value, whatever ``in_container`` says.
MEMORY_AXES = ("decode.batch_size",)

#: The kinds of model runner.models.resolve.model_kind tells apart by a folder's config.json: Whisper seq2seq (a Hugging
#: Face Whisper, its CTranslate2 conversion or ONNX export) and CTC (wav2vec2, HuBERT, WavLM: *ForCTC).
MODEL_KINDS = ("whisper", "ctc")


@dataclass(frozen=True, kw_only=True)
class DecodeFacts:
    """Which decode choices a model honours, and for each of the others the one value it decodes with.

    A value a user sets (a flag, a key of an experiment file) for a choice the model does not honour is refused
    before any container starts (runner.spec.build_run_spec for a run and each planned sweep group; the
    experiment loader, runner.experiment.expand, as a sweep file loads): otherwise the model would decode as it
    always does and the result would carry a label that did not happen. The value it really decodes with is not
    refused (a CTC model's beam size 1), and neither is a default, which the user did not choose.
    """

    what: str  # the model as messages name it: "a CTC model"
    why: str  # why it honours no more: "decodes greedily (argmax)"
    honours: tuple[str, ...]  # decode choices it takes at any value their check allows
    # decode choice -> the one value it decodes with (what a user may still name). Not hashed (a mapping).
    fixed: Mapping[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        named = [*self.honours, *self.fixed]
        wrong = sorted(set(named) ^ set(DECODE_CHOICES)) + sorted({p for p in named if named.count(p) > 1})
        if wrong:
            raise ValueError(f"decode facts must name each of {', '.join(DECODE_CHOICES)} once, as honoured or "
                             f"fixed; wrong: {', '.join(wrong)}")
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))

    def problem(self, path: str, value: Any) -> str | None:
        """Why ``value`` for the decode setting ``path`` cannot be honoured, or None when it can."""
        if path not in self.fixed or value == self.fixed[path]:
            return None
        does = ", ".join(f"{p.split('.', 1)[1]} {_show(v)}" for p, v in self.fixed.items())
        return f"{self.what} {self.why}, so it honours only {', '.join(self.honours)} (it decodes with {does})"


def _show(value: Any) -> str:
    """A decode value as a message quotes it: null for None, 0 for 0.0, a string as it is written."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


# Every backend without joint CTC/attention decoding (the Whisper libraries, pocketsphinx): all the other
# choices, and no CTC weight (null). A row's facts unless it names its own.
NO_JOINT_DECODE = DecodeFacts(
    what="a model of this backend", why="has no joint CTC/attention decoding (no CTC weight to set)",
    honours=WHISPER_IN_CONTAINER, fixed={"decode.ctc_weight": None},
)
# transformers decodes a CTC model by argmax over its logits: no beam search, no sampling, no language token, and
# only the CTC scores (a CTC weight of 1). The batch size it honours (transcribe_batch pads and masks a batch).
CTC_DECODE = DecodeFacts(
    what="a CTC model", why="decodes greedily (argmax)", honours=("decode.batch_size",),
    fixed={"decode.beam_size": 1, "decode.temperature": 0.0, "decode.language": None, "decode.ctc_weight": 1.0},
)
# onnxruntime's numpy decoder loop: greedy or beam search over the exported decoder, no sampling. The batch size
# is taken (decoded one utterance at a time, as for any backend without batching).
ONNX_DECODE = DecodeFacts(
    what="its ONNX decoder", why="has no sampling (greedy or beam search only) and no CTC branch",
    honours=("decode.beam_size", "decode.batch_size", "decode.language"),
    fixed={"decode.temperature": 0.0, "decode.ctc_weight": None},
)
# ESPnet's joint CTC/attention beam search (espnet2's Speech2Text): beam size and CTC weight; no sampling, and no
# language prompt (an ESPnet ASR model transcribes the language of its token list). The batch size is taken
# (decoded one utterance at a time).
ESPNET_DECODE = DecodeFacts(
    what="an ESPnet ASR model", why="decodes by joint CTC/attention beam search, without sampling or a language "
                                    "prompt", honours=("decode.beam_size", "decode.batch_size", "decode.ctc_weight"),
    fixed={"decode.temperature": 0.0, "decode.language": None},
)


@dataclass(frozen=True, kw_only=True)
class StreamFacts:
    """How a backend's models stream (stream mode, issue 23): the policies it can run and the one it runs when
    none is asked for, or, with no policy at all, why it does not stream (one sentence's end: "whisperx does not
    stream: ..."). A stream setting the row cannot honour is refused before any container starts
    (runner.spec.build_run_spec, runner.experiment.expand)."""

    policies: tuple[str, ...] = ()  # STREAM_POLICIES it supports; empty: it does not stream
    default: str | None = None  # the policy of a stream whose settings name none
    how: str = ""  # what streaming means with it, for the backend table and the docs
    refused: str = ""  # why it does not stream (policies empty)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.policies) - set(STREAM_POLICIES))
        if unknown:
            raise ValueError(f"unknown stream policies {unknown}; known: {', '.join(STREAM_POLICIES)}")
        if self.policies and self.default not in self.policies:
            raise ValueError(f"stream default {self.default!r} is not among its policies {self.policies}")
        if not self.policies and not self.refused:
            raise ValueError("a backend that does not stream says why (refused)")

    def problem(self, policy: str | None) -> str | None:
        """Why a stream with ``policy`` (None: the default) cannot run, in a phrase after the backend's name
        ("has no stream mode: ..."), or None when it can."""
        if not self.policies:
            return f"has no stream mode: {self.refused}"
        if policy is not None and policy not in self.policies:
            return f"has no {policy} stream policy; it streams with {' or '.join(self.policies)} ({self.how})"
        return None

    def resolve(self, policy: str | None) -> str:
        """The policy a stream runs with: the one asked for, else the default (call ``problem`` first)."""
        chosen = policy or self.default
        assert chosen is not None and chosen in self.policies, (policy, self.policies)
        return chosen


#: The Whisper backends: LocalAgreement-2 over the utterance's growing buffer (the entrypoint's commit policy,
#: edgeasr_entrypoint/commit.py), re-transcribed after every chunk; no incremental decoder of their own.
WHISPER_STREAM = StreamFacts(policies=("local-agreement-2",), default="local-agreement-2",
                             how="the utterance's growing buffer re-transcribed after each chunk, committing the "
                                 "words the last two hypotheses agree on")
#: A CTC model (transformers: wav2vec2 & co): its adapter decodes chunk by chunk with left context (open_stream,
#: native); LocalAgreement-2 over its growing buffer works too (it only needs a transcription of the buffer).
CTC_STREAM = StreamFacts(policies=("native", "local-agreement-2"), default="native",
                         how="native: chunk by chunk with left context; local-agreement-2: the growing buffer "
                             "re-transcribed after each chunk")
#: A row that names no stream facts does not stream (a test row, a new backend before it is taught to).
NO_STREAM_ROW = StreamFacts(refused="its row in the backend table (runner/backends.py) names no stream policy")
#: pocketsphinx decodes incrementally (process_raw with full_utt off, hyp() after each chunk).
NATIVE_STREAM = StreamFacts(policies=("native",), default="native",
                            how="its own incremental decoder: partial hypotheses as the audio arrives")
#: How a backend decodes audio longer than its model's window (issue 24; the Open ASR Leaderboard's long-form
#: threads: speeds of different algorithms are not comparable). sequential: window after window, each next one
#: placed by the timestamps the last decoded (Whisper's own long-form); chunked: fixed windows decoded apart and
#: joined, no seeking; vad-batched: a VAD cuts the audio into speech segments (merged up to the window), decoded
#: as a batch; whole: the model takes the input at once, of any length (no window).
LONG_FORM_ALGORITHMS = ("sequential", "chunked", "vad-batched", "whole")
#: The long-form decode choices (the contract's LONG_FORM_DECODE): fixed when the model loads, null the backend's.
LONG_FORM_FIELDS = LONG_FORM_DECODE
LONG_FORM_CHOICES = tuple(f"decode.{name}" for name in LONG_FORM_DECODE)
VAD_TUNING = ("decode.vad_threshold", "decode.vad_min_silence_ms")  # settings of a VAD: only with one


@dataclass(frozen=True, kw_only=True)
class LongForm:
    """One backend's declared long-form algorithm, as its adapter runs it (its library's defaults included)."""

    algorithm: str  # LONG_FORM_ALGORITHMS
    window_s: float | None  # the model's input window; None: no window (the whole input at once)
    vad: str | None = None  # the VAD that segments the audio; None: none
    timestamps: bool = False  # decodes with timestamp tokens (sequential seeking needs them)
    condition_on_previous_text: bool = False  # a window's decoding is prompted with the text before it
    batched: bool = False  # several windows or segments of one recording are decoded together
    how: str  # one sentence: what the adapter calls, and what that does with a long recording
    #: The long-form decode choices (LONG_FORM_CHOICES) it takes at any value; each other one keeps the value this
    #: declaration says (decode.vad: whether ``vad`` is set; condition_on_previous_text; timestamps) or none.
    honours: tuple[str, ...] = ()
    who: str = ""  # who refuses, in messages: "faster-whisper's batched pipeline (decode.batch_size > 1)"
    optional_vad: str | None = None  # the VAD decode.vad true turns on, where it is off by default
    #: Why a choice is refused, where more is to be said than the algorithm (path -> sentence after ``who``).
    refusals: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    #: The long-form settings a run set (decode field -> value; applied()), recorded in its summary.
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        if self.algorithm not in LONG_FORM_ALGORITHMS:
            raise ValueError(f"long-form algorithm {self.algorithm!r}; known: {', '.join(LONG_FORM_ALGORITHMS)}")
        wrong = sorted(set(self.honours) - set(LONG_FORM_CHOICES))
        if wrong:
            raise ValueError(f"long-form choices {wrong}; known: {', '.join(LONG_FORM_CHOICES)}")

    def fixed(self, path: str) -> Any:
        """The value a choice it does not honour has (None: none, it does not apply)."""
        return {"decode.vad": self.vad is not None, "decode.timestamps": self.timestamps,
                "decode.condition_on_previous_text": self.condition_on_previous_text}.get(path)

    def problem(self, path: str, value: Any, decode: Mapping[str, Any]) -> str | None:
        """Why ``value`` for the long-form choice ``path`` cannot apply (``decode``: the run's other decode
        settings, by field name), or None: it is honoured, it is what this algorithm does anyway, or it is null
        (the backend's own)."""
        if value is None:
            return None
        if path in self.honours:
            if path in VAD_TUNING and self.vad is None and decode.get("vad") is not True:
                return f"{path} is a setting of the VAD, and decode.vad is not true"
            return None
        if path in ("decode.vad", "decode.timestamps", "decode.condition_on_previous_text") \
                and value == self.fixed(path):
            return None
        if path in self.refusals:
            return f"{self.who} {self.refusals[path]}"
        tail = {"decode.condition_on_previous_text": ", without the text before each window",
                "decode.timestamps": f", {'with' if self.timestamps else 'without'} timestamps",
                "decode.chunk_s": ", with no VAD segments to size"}.get(path, ", with no VAD to set")
        return f"{self.who} decodes long audio {self.algorithm} ({self.how}){tail}"

    def applied(self, decode: Mapping[str, Any]) -> LongForm:
        """This declaration with a run's long-form settings (decode field -> value; None: the backend's) applied:
        what the run's summary records."""
        got = {name: decode[name] for name in LONG_FORM_FIELDS if decode.get(name) is not None}
        vad = self.vad
        if got.get("vad") is True and vad is None:
            vad = self.optional_vad
        elif got.get("vad") is False:
            vad = None
        how = self.how if not got else (f"{self.how}; set for this run: "
                                        + ", ".join(f"decode.{k} {_show(v)}" for k, v in got.items()))
        return replace(self, vad=vad, settings=MappingProxyType(got), how=how,
                       timestamps=got.get("timestamps", self.timestamps),
                       condition_on_previous_text=got.get("condition_on_previous_text",
                                                          self.condition_on_previous_text))

    def to_json(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "window_s": self.window_s, "vad": self.vad,
                "timestamps": self.timestamps, "condition_on_previous_text": self.condition_on_previous_text,
                "batched": self.batched, "how": self.how, "settings": dict(self.settings)}


WHOLE_INPUT = LongForm(algorithm="whole", window_s=None, who="this backend",
                       how="the whole recording in one pass: the model has no fixed window")
FASTER_WHISPER_SEQUENTIAL = LongForm(
    algorithm="sequential", window_s=30.0, timestamps=True, condition_on_previous_text=True,
    how="WhisperModel.transcribe at its defaults: 30 s windows one after another, each placed by the last one's "
        "timestamps and prompted with the text before it; no VAD (vad_filter off)",
    who="faster-whisper's sequential decoding (decode.batch_size 1)", optional_vad="silero",
    honours=("decode.vad", "decode.vad_threshold", "decode.vad_min_silence_ms", "decode.condition_on_previous_text",
             "decode.timestamps"),
    refusals=MappingProxyType({"decode.chunk_s": "takes the model's 30 s window; decode.chunk_s sizes the VAD "
                                                 "segments of the batched pipeline (decode.batch_size > 1)"}))
FASTER_WHISPER_BATCHED = LongForm(
    algorithm="vad-batched", window_s=30.0, vad="silero", batched=True,
    how="BatchedInferencePipeline.transcribe at its defaults (decode.batch_size > 1): Silero VAD speech segments "
        "merged up to 30 s, decoded batch_size at a time without timestamps or the text before them",
    who="faster-whisper's batched pipeline (decode.batch_size > 1)",
    honours=("decode.vad_threshold", "decode.vad_min_silence_ms", "decode.timestamps", "decode.chunk_s"),
    refusals=MappingProxyType({
        "decode.vad": "always segments by VAD (Silero); its VAD axes are decode.vad_threshold, "
                      "decode.vad_min_silence_ms and decode.chunk_s",
        "decode.condition_on_previous_text": "does not condition on previous text (each segment is decoded alone)"}))
WHISPERX_LONG_FORM = LongForm(
    algorithm="vad-batched", window_s=30.0, vad="pyannote", batched=True,
    how="whisperx's pipeline: pyannote VAD segments merged up to its 30 s chunk size, decoded in batches by "
        "faster-whisper without timestamps or the text before them (always, at any batch size)",
    who="whisperx", honours=("decode.vad_threshold", "decode.chunk_s"),
    refusals=MappingProxyType({
        "decode.vad": "always segments by VAD (pyannote); its VAD axes are decode.vad_threshold and decode.chunk_s",
        "decode.condition_on_previous_text": "does not condition on previous text (its batched pipeline decodes "
                                             "each segment alone)",
        "decode.vad_min_silence_ms": "cannot set a minimum silence: its pyannote VAD takes onset and offset "
                                     "thresholds (decode.vad_threshold sets the onset)"}))
TRANSFORMERS_SEQUENTIAL = LongForm(
    algorithm="sequential", window_s=30.0, timestamps=True,
    how="up to 30 s one window; longer, transformers' sequential long-form generate: windows placed by the "
        "timestamps decoded, without the text before them (condition_on_prev_tokens off)", who="transformers")
ONNX_CHUNKED = LongForm(
    algorithm="chunked", window_s=30.0,
    how="fixed 30 s windows decoded one after another without timestamps and joined: a word cut by a window "
        "edge is decoded twice or not at all", who="onnxruntime")


def image_platform(platform: str = "auto", device: str | None = None) -> str:
    """The platform whose image variant a run (or `images build`) uses: ``platform`` as a user names it
    (auto: this host's, a Jetson's L4T release), and on x86 a CUDA device takes the cuda variant, which
    is never detected (an x86 host with a GPU may still run the CPU image)."""
    resolved = resolve_platform(platform)
    return "cuda" if resolved == "x86" and device == "cuda" else resolved


@dataclass(frozen=True, kw_only=True)
class ImageDef:
    """An image edgeasr builds: its tag and its folder under containers/ (Dockerfile, requirements, wheels)."""

    name: str
    image: str  # default tag built by `edgeasr images build`
    build_dir: str  # folder under containers/
    parent: str | None = None  # an ImageDef built first and used as this one's BASE_IMAGE (its packages too)
    #: The Python the image runs (its base's: runner/images/build.py BASES), and so the wheels its wheelhouse holds.
    python: str = "3.11"
    #: Pinned packages PyPI has only as a source distribution, all pure Python: the host packs each into a wheel
    #: (``pip wheel``, nothing compiled) before filling the wheelhouse, so the build still installs wheels only.
    source_only: tuple[str, ...] = ()

    @property
    def dockerfile(self) -> Path:
        return CONTAINERS_DIR / self.build_dir / "Dockerfile"

    @property
    def requirements(self) -> Path:
        return CONTAINERS_DIR / self.build_dir / "requirements.txt"

    @property
    def wheelhouse(self) -> Path:
        return CONTAINERS_DIR / self.build_dir / "wheels"

    def variant_requirements(self, platform: str) -> Path:
        """The packages a platform's variant installs in place of requirements.txt's (``requirements-cuda.txt``:
        onnxruntime-gpu for onnxruntime), where the folder has such a file (runner/images/build.py
        variant_requirements reads it)."""
        return CONTAINERS_DIR / self.build_dir / f"requirements-{platform}.txt"


@dataclass(frozen=True, kw_only=True)
class Backend(ImageDef):
    """A backend image: an ImageDef whose entrypoint runs an ASR library behind the contract."""

    library: str  # the inference library, as messages name it ("quant 'fp16' cannot run with ctranslate2 ...")
    # device -> {edgeasr quant: library compute type}; the devices the backend runs on are this map's keys.
    # Not hashed (a mapping is not hashable); compared like the other fields.
    quant_map: QuantMap = field(hash=False)
    adapter: str  # the adapter module the entrypoint loads ($EDGEASR_ADAPTER)
    host_module: str  # the library's import name, checked before `--engine local`
    # What the backend loads (runner.models.resolve.MODEL_FORMATS): a CTranslate2 folder, a Hugging Face folder
    # (installed CTranslate2 Whisper models resolve to their conversion), an ONNX export, or a model bundled
    # in the image.
    model_format: str = "ctranslate2"
    bundled_models: tuple[str, ...] = ()  # model_format "bundled": the names the image ships
    #: Short names with a hub repository for this backend's model format (runner/models/hub.py), downloaded on the
    #: host at a pinned commit when not installed. Empty: the backend loads only installed models and folders.
    hub_names: tuple[str, ...] = ()
    default_model: str = DEFAULT_MODEL  # --model when none is given
    default_quant: str = DEFAULT_QUANT  # --quant when none is given
    check_model: str = "tiny.en"  # the model `edgeasr check-image` runs its test job with
    #: Word alignment (decode.align): only whisperx has an alignment model.
    align: bool = False
    #: decode.batch_size > 1 decodes several utterances (or windows) at once; a backend without batching
    #: decodes one at a time whatever the batch size says.
    batching: bool = False
    # Platforms (runner/host/platforms.py) with a Dockerfile variant; a platform left out is refused with `no_variant`.
    platforms: tuple[str, ...] = ("x86", "cuda", "jetson-r35", "jetson-r36")
    no_variant: str = ""  # why a left-out platform has no image (said when one is asked for)
    #: Settings (dotted paths) the entrypoint can vary inside one loaded model, condition by condition
    #: (contract: a condition's ``decode`` overrides). A sweep axis over one of these stays a condition of one
    #: container; any other axis makes a new container (group). Noise and repeats are always in-container.
    in_container: tuple[str, ...] = ()
    #: What every model of this backend honours of the decode choices (default: all but the CTC weight).
    decode_facts: DecodeFacts = NO_JOINT_DECODE
    #: Decode settings this backend decodes with when the user sets none (dotted path -> value): a setting whose
    #: default is null ("the backend's"), such as ctc_weight. Not hashed (a mapping).
    decode_defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    #: Per kind of model (MODEL_KINDS, as runner.models.resolve.model_kind reads a folder): facts that replace
    #: ``decode_facts`` for that kind. A choice a kind does not honour is not varied inside its loaded model
    #: either (in_container_for), so a sweep axis over it makes one container per value. Not hashed (a mapping).
    model_kinds: Mapping[str, DecodeFacts] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    #: in_container choices a loaded model cannot change while decode.align is on (whisperx loads its alignment
    #: model for one language): with alignment each of their values is its own container.
    align_fixes: tuple[str, ...] = ()
    #: in_container choices that change the memory a loaded model holds (MEMORY_AXES): each value is its own
    #: container, so that a condition's memory does not depend on the conditions before it.
    memory_axes: tuple[str, ...] = MEMORY_AXES
    #: Stream mode: its policies and default (StreamFacts); whisperx and espnet refuse it, saying why.
    stream: StreamFacts = field(default_factory=lambda: NO_STREAM_ROW)
    #: Per kind of model (MODEL_KINDS): stream facts that replace ``stream`` for that kind. Not hashed (a mapping).
    stream_kinds: Mapping[str, StreamFacts] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    #: How it decodes audio longer than its window (issue 24): ``long_form``; with decode.batch_size > 1,
    #: ``long_form_batched`` where that is another algorithm; per kind of model, ``long_form_kinds``.
    long_form: LongForm = WHOLE_INPUT
    long_form_batched: LongForm | None = None
    long_form_kinds: Mapping[str, LongForm] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def long_form_for(self, batch_size: int = 1, kind: str | None = None) -> LongForm:
        """The long-form algorithm a run with this batch size and kind of model gets (recorded in its summary)."""
        if kind in self.long_form_kinds:
            return self.long_form_kinds[kind]
        if batch_size > 1 and self.long_form_batched is not None:
            return self.long_form_batched
        return self.long_form

    def __post_init__(self) -> None:
        unknown = sorted(set(self.model_kinds) - set(MODEL_KINDS))
        if unknown:
            raise ValueError(f"backend {self.name}: unknown model kinds {unknown}; known: {', '.join(MODEL_KINDS)}")
        wrong = sorted(p for p in self.decode_defaults if p not in self.decode_facts.honours)
        if wrong:
            raise ValueError(f"backend {self.name}: decode defaults for choices it does not honour: {wrong}")
        object.__setattr__(self, "decode_defaults", MappingProxyType(dict(self.decode_defaults)))
        unknown = sorted(set(self.stream_kinds) - set(MODEL_KINDS))
        if unknown:
            raise ValueError(f"backend {self.name}: unknown model kinds {unknown} in stream_kinds")
        object.__setattr__(self, "stream_kinds", MappingProxyType(dict(self.stream_kinds)))

    def stream_facts(self, kind: str | None = None) -> StreamFacts:
        """How a model of ``kind`` (None: unknown, the row's own) streams with this backend."""
        return self.stream_kinds.get(kind, self.stream) if kind else self.stream

    def stream_refusal(self, policy: str | None, kind: str | None, model: str, origin: str) -> str | None:
        """The one sentence that refuses stream mode (with ``policy``; None: the default) for model ``model`` of
        ``kind`` with this backend, or None when it streams: "--stream: backend whisperx has no stream mode: ...".
        ``origin`` names where stream mode or the policy was asked for: a flag or an experiment file's key."""
        reason = self.stream_facts(kind).problem(policy)
        if reason is None:
            return None
        where = f"{origin}: " if origin else ""
        facts = self.stream_facts(kind)
        subject = f"backend {self.name}" if facts is self.stream else f"model {model} with backend {self.name}"
        return f"{where}{subject} {reason}"

    def facts(self, kind: str | None) -> DecodeFacts:
        """The decode facts of a model of ``kind`` (None: unknown, the row's own) with this backend."""
        return self.model_kinds.get(kind, self.decode_facts) if kind else self.decode_facts

    def honours(self, kind: str | None = None) -> tuple[str, ...]:
        """The decode choices a model of ``kind`` honours with this backend, at any value."""
        return self.facts(kind).honours

    def in_container_for(self, kind: str | None = None, align: bool = False) -> tuple[str, ...]:
        """What the entrypoint varies inside one loaded model of ``kind`` (with decode.align ``align``): the
        row's in_container less the choices the kind does not honour, those that change its memory
        (``memory_axes``) and, aligning, ``align_fixes``."""
        honoured = self.honours(kind)
        return tuple(p for p in self.in_container if p in honoured and p not in self.memory_axes
                     and not (align and p in self.align_fixes))

    def decode_problem(self, path: str, value: Any, kind: str | None = None) -> str | None:
        """Why a model of ``kind`` cannot honour ``value`` for the decode setting ``path`` with this backend, or
        None when it can (always for a setting that is no decode choice). A model of unknown kind (None) is
        held to the row's own facts."""
        return self.facts(kind).problem(path, value)

    def decode_refusal(self, path: str, value: Any, kind: str | None, model: str, origin: str) -> str | None:
        """The one sentence that refuses a decode value the user set, or None when the model honours it.

        ``origin`` is where it was set, as settings messages name it: a flag (``--beam-size 5 cannot ...``) or
        an experiment file's key path (``x.yaml: grid.decode.beam_size[1]: 5 cannot ...``)."""
        reason = self.decode_problem(path, value, kind)
        if reason is None:
            return None
        where = f"{origin} " if origin.startswith("-") else f"{origin}: "
        return f"{where}{_show(value)} cannot apply to model {model} with backend {self.name}: {reason}"

    @property
    def devices(self) -> tuple[str, ...]:
        """The devices this backend runs on: those its quant map has, in DEVICES order."""
        return tuple(d for d in DEVICES if d in self.quant_map)

    def quants(self, device: str) -> tuple[str, ...]:
        """The quants this backend runs on ``device``, in QUANTS order (none for a device it lacks)."""
        return tuple(q for q in QUANTS if q in self.quant_map.get(device, {}))

    def quant_problem(self, device: str, quant: str) -> str | None:
        """Why (device, quant) cannot run with this backend, or None when it can."""
        return _quant_problem(self.library, self.quant_map, device, quant)

    def backend_quant(self, device: str, quant: str) -> str:
        """The library's compute type for ``quant`` on ``device`` (what the job's backend_quant says)."""
        problem = self.quant_problem(device, quant)
        if problem:
            raise UserError(problem)
        return self.quant_map[device][quant]

    def platform_problem(self, platform: str) -> str | None:
        """Why this backend has no image for ``platform``, or None when it has one."""
        if platform in self.platforms:
            return None
        return f"backend {self.name} has no {platform} image: {self.no_variant or 'no Dockerfile variant'}"

    def default_image(self, platform: str | None = None, device: str | None = None) -> str:
        """The image a run uses when none is named: this backend's image for ``platform``, or else for this
        host's platform and the run's device (image_platform: a Jetson's release; cuda on x86 for a CUDA run)."""
        platform = platform or image_platform("auto", device)
        problem = self.platform_problem(platform)
        if problem:
            raise UserError(problem)
        return platform_image(self.image, platform)


def _quant_problem(library: str, quants: QuantMap | None, device: str, quant: str) -> str | None:
    """Why ``library`` (with ``quants``, its map) cannot run ``quant`` on ``device``: the row methods' one
    wording."""
    if quant not in QUANTS:
        return f"unknown quant {quant!r}; choose one of {', '.join(QUANTS)}"
    table = (quants or {}).get(device)
    if table is None:
        return f"{library} has no {device} support in edgeasr"
    if quant not in table:
        supported = [q for q in QUANTS if q in table]
        return f"quant {quant!r} cannot run with {library} on {device}; {device} supports: {', '.join(supported)}"
    return None


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend(
        name="faster-whisper",
        library="ctranslate2",
        quant_map=CTRANSLATE2_QUANTS,
        image="edgeasr/faster-whisper:latest",
        build_dir="faster-whisper",
        adapter="edgeasr_backend_faster_whisper",
        long_form=FASTER_WHISPER_SEQUENTIAL, long_form_batched=FASTER_WHISPER_BATCHED,
        host_module="faster_whisper",
        hub_names=WHISPER_HUB_NAMES,
        batching=True,  # BatchedInferencePipeline
        in_container=WHISPER_IN_CONTAINER,
        stream=WHISPER_STREAM,
        platforms=("x86", "cuda", "jetson-r35", "jetson-r36", "arm64"),  # arm64: its x86 Dockerfile, aarch64 wheels
    ),
    Backend(
        name="whisperx",
        no_variant="its arm64 build is not checked yet (the arm64 torch base builds under emulation, its wheels are unverified for this backend); run it on x86, CUDA or a Jetson",
        library="ctranslate2",
        quant_map=CTRANSLATE2_QUANTS,
        image="edgeasr/whisperx:latest",
        build_dir="whisperx",
        adapter="edgeasr_backend_whisperx",
        long_form=WHISPERX_LONG_FORM,
        host_module="whisperx",
        parent="torch-base",
        hub_names=WHISPER_HUB_NAMES,
        align=True,  # its wav2vec2 alignment model (needs a download)
        batching=True,  # its VAD-cut segments go through faster-whisper in batches
        in_container=WHISPER_IN_CONTAINER,
        align_fixes=("decode.language",),  # the alignment model is loaded for one language
        stream=StreamFacts(refused="its pipeline cuts a whole recording by voice activity and aligns words "
                                   "after transcribing it, so it has no text to give before the audio ends; use "
                                   "faster-whisper, its transcriber, for the same model"),
    ),
    Backend(
        name="transformers",
        no_variant="its arm64 build is not checked yet (the arm64 torch base builds under emulation, its wheels are unverified for this backend); run it on x86, CUDA or a Jetson",
        library="torch",
        quant_map=TORCH_QUANTS,
        image="edgeasr/transformers:latest",
        build_dir="transformers",
        adapter="edgeasr_backend_transformers",
        long_form=TRANSFORMERS_SEQUENTIAL, long_form_kinds=MappingProxyType({"ctc": WHOLE_INPUT}),
        host_module="transformers",
        parent="torch-base",
        model_format="hf",
        hub_names=WHISPER_HUB_NAMES,  # the Hugging Face checkpoints (openai/whisper-*)
        check_model="tiny-whisper-random",
        batching=True,  # transcribe_batch: padded, masked batches
        in_container=WHISPER_IN_CONTAINER,
        model_kinds=MappingProxyType({"ctc": CTC_DECODE}),  # wav2vec2 & co: argmax, the batch size only
        stream=WHISPER_STREAM,
        # a CTC model (wav2vec2 & co): the adapter's open_stream decodes chunk by chunk with left context (native);
        # the commit policy over its growing buffer works too
        stream_kinds=MappingProxyType({"ctc": CTC_STREAM}),
    ),
    Backend(
        name="onnxruntime",
        library="onnxruntime",
        quant_map=ONNXRUNTIME_QUANTS,
        image="edgeasr/onnxruntime:latest",
        build_dir="onnxruntime",
        adapter="edgeasr_backend_onnxruntime",
        long_form=ONNX_CHUNKED,
        host_module="onnxruntime",
        parent="torch-base",
        model_format="onnx",
        hub_names=WHISPER_HUB_NAMES,  # exported from the Hugging Face checkpoint
        in_container=("decode.beam_size", "decode.language"),
        decode_facts=ONNX_DECODE,
        stream=WHISPER_STREAM,
        platforms=("x86", "cuda", "jetson-r36", "arm64"),
        no_variant="JetPack 5 (r35) has Python 3.8 and no onnxruntime-gpu in its jetson-containers bases yet; "
                   "use --device cpu with --image of a CPU build, or a JetPack 6 board",
    ),
    Backend(
        name="pocketsphinx",
        library="pocketsphinx",
        quant_map=POCKETSPHINX_QUANTS,  # cpu only: the CMU decoder has no GPU path
        image="edgeasr/pocketsphinx:latest",
        build_dir="pocketsphinx",
        adapter="edgeasr_backend_pocketsphinx",
        long_form=WHOLE_INPUT,  # process_raw(full_utt=True): one utterance of any length
        host_module="pocketsphinx",
        model_format="bundled",
        bundled_models=("en-us",),
        default_model="en-us",
        default_quant="fp32",
        check_model="en-us",
        stream=NATIVE_STREAM,
        platforms=("x86", "cuda", "jetson-r36", "arm64"),
        no_variant="no JetPack 5 (r35) variant yet; pocketsphinx is CPU-only, so the JetPack 6 (Dockerfile.jetson) "
                   "recipe or an arm64 build of the x86 Dockerfile serves a JetPack 5 board's CPU",
    ),
    Backend(
        name="espnet",
        library="torch",
        quant_map=TORCH_QUANTS,
        image="edgeasr/espnet:latest",
        build_dir="espnet",
        adapter="edgeasr_backend_espnet",
        long_form=WHOLE_INPUT,  # Speech2Text over the whole input
        host_module="espnet2",
        parent="torch-base-py313",
        python="3.13",  # espnet 202609 and later need Python >= 3.12 (202511, the last for 3.11, does not resolve)
        source_only=("antlr4-python3-runtime",),  # hydra-core's (espnet's) antlr4 4.9: pure Python, sdist only
        model_format="espnet",
        default_model="tiny-espnet-random",  # no ESPnet model is installable here (no model zoo; none on PyPI)
        default_quant="fp32",
        check_model="tiny-espnet-random",
        platforms=("x86",),
        no_variant="espnet runs on the x86 CPU only so far: its torch stack is the Python 3.13 one "
                   "(edgeasr/torch-base:2.14-py3.13, PyPI's CUDA 13 torch wheels), for which no CUDA or Jetson "
                   "variant exists yet; see containers/PLATFORMS.md, ESPnet",
        in_container=("decode.beam_size", "decode.ctc_weight"),  # a new beam search over the loaded model
        decode_facts=ESPNET_DECODE,
        stream=StreamFacts(refused="its adapter decodes a whole utterance by joint CTC/attention beam search "
                                   "and has no incremental decoder or streaming model yet"),
        decode_defaults=MappingProxyType({"decode.ctc_weight": 0.3}),  # ESPnet's Conformer recipes decode with 0.3
    ),
)}


def default_model_quant(backend: object) -> tuple[str, str]:
    """(model, quant) a run of ``backend`` takes when it names neither: the row's (tiny.en int8 for the Whisper
    backends, en-us fp32 for pocketsphinx); for a name the table lacks (refused with its own message) the
    table's general defaults, so that the run folder's name and the other checks can still be made."""
    be = BACKENDS.get(backend) if isinstance(backend, str) else None
    return (be.default_model, be.default_quant) if be else (DEFAULT_MODEL, DEFAULT_QUANT)


# Backends asked for and not buildable here: the name is known, and a run is refused with the reason.
UNAVAILABLE: dict[str, str] = {}


def unavailable_reason(name: str) -> str | None:
    """Why a known but unbuildable backend cannot run, or None."""
    return UNAVAILABLE.get(name)


def decode_default_text(path: str) -> str:
    """How a decode setting's help names its default when the backend decides it (``decode_defaults``):
    "the backend's (espnet: 0.3; none elsewhere)"."""
    rows = ", ".join(f"{b.name}: {_show(b.decode_defaults[path])}" for b in BACKENDS.values()
                     if path in b.decode_defaults)
    return f"the backend's ({rows}; none elsewhere)" if rows else "none"


# Images that are not backends: the runner itself (for `docker compose up sweep`), and the shared torch
# stack that the torch backends are built on.
RUNNER_IMAGE = ImageDef(name="runner", image="edgeasr/runner:latest", build_dir="runner")
TORCH_BASE = ImageDef(name="torch-base", image="edgeasr/torch-base:2.8", build_dir="torch-base")
#: The Python 3.13 torch stack (Debian 13's Python), for backends whose releases need Python >= 3.12 (espnet).
TORCH_BASE_PY313 = ImageDef(name="torch-base-py313", image="edgeasr/torch-base:2.14-py3.13",
                            build_dir="torch-base-py313", python="3.13")
IMAGES: dict[str, ImageDef] = {**BACKENDS, RUNNER_IMAGE.name: RUNNER_IMAGE, TORCH_BASE.name: TORCH_BASE,
                               TORCH_BASE_PY313.name: TORCH_BASE_PY313}


def get_image(name: str) -> ImageDef:
    try:
        return IMAGES[name]
    except KeyError:
        raise UserError(f"unknown image {name!r}; known: {', '.join(sorted(IMAGES))}") from None




def stream_default_text() -> str:
    """How --stream-policy's help names its default, from the rows: "the backend's (faster-whisper:
    local-agreement-2, ...; whisperx, espnet: no stream mode)"."""
    streams = ", ".join(f"{b.name}: {b.stream.default}" for b in BACKENDS.values() if b.stream.policies)
    not_ = ", ".join(b.name for b in BACKENDS.values() if not b.stream.policies)
    return f"the backend's ({streams}" + (f"; {not_}: no stream mode)" if not_ else ")")
