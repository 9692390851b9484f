"""The settings model: every run and sweep setting, its default, its check, its unit and its CLI flag, once.

The frozen dataclasses below are the only place a default or a field check lives. The CLI's options
(``edgeasr run``), the experiment loader (``experiments/*.yaml``), the sweep grid and ``build_run_spec``
all read the field metadata here. A check is told where its value came from (a label), so the message names
that origin: ``--beam-size must be at least 1, got 0`` for a flag, ``smoke.yaml: defaults.decode.beam_size:
expected an integer >= 1, got 0`` for a file.

Settings are addressed by dotted paths (``decode.beam_size``, ``warmup``); ``apply`` sets one path with its
check, ``problems`` checks a whole Settings. Checks here need no file system beyond a folder's existence
(given a root); resolving models and datasets stays with the spec and the experiment loader.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from edgeasr_entrypoint.contract import NOISE_TYPES, STREAM_POLICIES

from . import backends as _backends
from .backends import QUANTS
from .host.platforms import default_device
from .telemetry.energy import BASELINES
from .telemetry.samplers.base import DEFAULT_INTERVAL_MS
from .telemetry.samplers.registry import SAMPLER_NAMES

DEVICE_CHOICES = ("cpu", "cuda", "auto")  # auto: cuda when an NVIDIA driver node exists, else cpu
SAMPLER_CHOICES = ("auto", *SAMPLER_NAMES)
#: A memory size (mem_limit): a number, then k, m, g or t (powers of 1024), with "i" and "b" allowed: 4g, 512m,
#: 1.5GiB, 2000000. Written for JSON Schema too (runner/experiment/schema.py), so the case is spelt out.
MEM_SIZE_PATTERN = r"^\s*\d+(?:\.\d+)?\s*[kmgtKMGT]?[iI]?[bB]?\s*$"


def mem_size_bytes(text: str) -> float | None:
    """A memory size (MEM_SIZE_PATTERN) in bytes, or None when ``text`` is not one: the one reading of a size
    (the settings check here, spec.parse_mem_limit for the engine, the experiment schema's pattern)."""
    if not re.match(MEM_SIZE_PATTERN, text):
        return None
    number = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = number[-1] if number[-1:] in ("k", "m", "g", "t") else ""
    return float(number[:len(number) - len(unit)]) * 1024 ** "_kmgt".index(unit or "_")


# --- field metadata ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One setting's check and documentation (the field's metadata ``rule``).

    kind: int | number | str | bool | choice | backend | mem | gpus | folder | mode | list (of ``item``).
    A number's range is ``ge`` / ``gt``; ``null`` admits None. ``flag`` is its ``edgeasr run`` option,
    ``dest`` the argparse attribute when it differs from the flag's. ``default_text`` replaces the default in
    the help where the value alone says too little (None meaning "the backend's").
    """

    kind: str
    help: str
    unit: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None  # an upper bound (with ge: a closed range)
    null: bool = False
    choices: tuple[str, ...] = ()
    what: str = ""  # a choice's noun in messages: "a quant"
    item: "Rule | None" = None  # kind "list": each item's rule
    flag: str | None = None
    default_text: str | None = None
    axis: str | None = None  # why this setting cannot be a sweep axis (None: it can)


def setting(default: Any, **rule: Any) -> Any:
    """A dataclass field carrying its Rule; a mutable-looking default (tuple) is fine, frozen."""
    return field(default=default, metadata={"rule": Rule(**rule)})


def _nested(cls: type) -> Any:
    return field(default_factory=cls, metadata={"nested": True})


_NOISE_AXIS = ("noise levels are set by `noise:` (types, snr_db, clean; in defaults or an entry's set), and every "
               "level already runs in one container")


@dataclass(frozen=True)
class DecodeSettings:
    """Decoding options passed to the backend; temperature 0 keeps decoding deterministic."""

    beam_size: int = setting(5, kind="int", ge=1, flag="--beam-size", help="beam width (1: greedy decoding)")
    temperature: float = setting(0.0, kind="number", ge=0, flag="--temperature",
                                 help="sampling temperature (0: deterministic)")
    language: str | None = setting(None, kind="str", null=True, flag="--language", help="language code",
                                   default_text="the model detects it")
    threads: int | None = setting(None, kind="int", ge=1, null=True, flag="--threads",
                                  help="CPU threads for the backend", default_text="all cores")
    batch_size: int = setting(1, kind="int", ge=1, flag="--batch-size",
                              help="1: sequential; N: the backend's batched decoding (faster-whisper/whisperx: "
                                   "batched pipeline over VAD segments; transformers: N utterances per batch)")
    align: bool = setting(False, kind="bool", flag="--align",
                          help="whisperx word alignment (needs its model downloaded)")
    ctc_weight: float | None = setting(None, kind="number", ge=0, le=1, null=True, flag="--ctc-weight",
                                       help="joint CTC/attention decoding: the CTC share of each hypothesis' score "
                                            "(0: attention decoder only, 1: CTC only); backends with joint decoding "
                                            "only", default_text=_backends.decode_default_text("decode.ctc_weight"))
    # Long-form decoding (issue 24; runner/backends.LongForm says which backend takes which): null is the backend's
    # own (its row's long-form algorithm), and a value it cannot honour is refused with the reason.
    vad: bool | None = setting(None, kind="bool", null=True, flag="--vad",
                               help="segment by voice activity detection (faster-whisper sequential: its Silero "
                                    "VAD filter; batched pipelines always do)", default_text="the backend's")
    vad_threshold: float | None = setting(None, kind="number", gt=0, le=1, null=True, flag="--vad-threshold",
                                          help="speech probability above which the VAD takes a frame for speech",
                                          default_text="the backend's")
    vad_min_silence_ms: int | None = setting(None, kind="int", ge=0, null=True, unit="ms",
                                             flag="--vad-min-silence-ms",
                                             help="silence that ends a VAD speech segment",
                                             default_text="the backend's")
    condition_on_previous_text: bool | None = setting(None, kind="bool", null=True,
                                                      help="prompt each window with the text decoded before it "
                                                           "(sequential decoding)", default_text="the backend's")
    timestamps: bool | None = setting(None, kind="bool", null=True,
                                      help="decode with timestamp tokens", default_text="the backend's")
    chunk_s: int | None = setting(None, kind="int", ge=1, le=30, null=True, unit="s", flag="--chunk-s",
                                    help="longest VAD segment (merged) decoded as one window, in a VAD-batched "
                                         "pipeline", default_text="the backend's")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TelemetrySettings:
    """Which power sampler, how often, and how the idle baseline is obtained."""

    sampler: str = setting("auto", kind="choice", choices=SAMPLER_CHOICES, what="a telemetry sampler",
                           flag="--telemetry", help="power sampler: " + " | ".join(SAMPLER_CHOICES))
    interval_ms: int = setting(DEFAULT_INTERVAL_MS, kind="int", gt=0, unit="ms", flag="--interval-ms", help="sampling interval")
    baseline_s: float = setting(5.0, kind="number", ge=0, unit="s", flag="--baseline-s",
                                help="idle seconds measured before the run")
    baseline_w: float | None = setting(None, kind="number", ge=0, null=True, unit="W", flag="--baseline-w",
                                       help="use this idle power instead of measuring it", default_text="measured")
    loaded_idle_s: float = setting(2.0, kind="number", ge=0, unit="s", flag="--loaded-idle-s",
                                   help="seconds the loaded, warmed-up model sits idle before transcribing, to "
                                        "measure its idle power beside the host baseline (0 skips it)")
    cooldown_max_s: float = setting(30.0, kind="number", ge=0, unit="s",
                                    help="the longest wait for power to settle before each idle baseline")
    cooldown_tolerance: float = setting(0.1, kind="number", ge=0,
                                        help="power has settled when its drift over the baseline's length stays "
                                             "within this share of it (and, after a container, it is back within "
                                             "this share of that one's baseline)")
    baseline: str = setting("idle", kind="choice", choices=BASELINES, what="a baseline", flag="--baseline",
                            help="what the dynamic figures subtract: idle (the host before the container) or "
                                 "loaded-idle (the container up, the model loaded and warmed up, doing nothing)")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class NoiseSettings:
    """Noise levels a sweep mixes into the audio: clean (when ``clean``), then every type at every SNR."""

    types: tuple[str, ...] = setting((), kind="list", axis=_NOISE_AXIS, help="noise types",
                                     item=Rule(kind="choice", choices=NOISE_TYPES, what="a noise type", help=""))
    snr_db: tuple[float, ...] = setting((), kind="list", axis=_NOISE_AXIS, unit="dB", help="SNR levels",
                                        item=Rule(kind="number", help="", unit="dB"))
    clean: bool = setting(True, kind="bool", axis=_NOISE_AXIS, help="also run the clean audio")
    files: str | None = setting(None, kind="folder", null=True, axis=_NOISE_AXIS,
                                help="a folder of noise recordings (for type file)")
    babble_talkers: int = setting(4, kind="int", ge=1, axis=_NOISE_AXIS, help="talkers mixed for babble")


#: What a generated non-speech item holds (issue 24): digital silence, or one of the noise module's types.
NONSPEECH_TYPES = ("silence", *NOISE_TYPES)
_NONSPEECH_AXIS = ("non-speech items are set once, by `nonspeech:` in defaults (they join the dataset of every "
                   "condition)")


@dataclass(frozen=True)
class NonspeechSettings:
    """Non-speech items added to the dataset (runner/data/nonspeech.py): ``count`` of each type, ``seconds``
    long, noise at ``level_dbfs`` (RMS, dB below a full-scale amplitude of 1.0), seeded; each has the empty
    reference, so what a model says over it is counted apart from WER. No types: none (the default)."""

    types: tuple[str, ...] = setting((), kind="list", axis=_NONSPEECH_AXIS, flag="--nonspeech",
                                     help="add non-speech items of this type (repeatable: "
                                          + ", ".join(NONSPEECH_TYPES) + ")", default_text="none",
                                     item=Rule(kind="choice", choices=NONSPEECH_TYPES, what="a non-speech type",
                                               help=""))
    seconds: float = setting(10.0, kind="number", gt=0, le=3600, unit="s", axis=_NONSPEECH_AXIS,
                             flag="--nonspeech-s", help="length of each non-speech item")
    level_dbfs: float = setting(-30.0, kind="number", le=0, unit="dBFS", axis=_NONSPEECH_AXIS,
                                flag="--nonspeech-dbfs", help="RMS level of the non-speech noise items")
    count: int = setting(1, kind="int", ge=0, axis=_NONSPEECH_AXIS, flag="--nonspeech-count",
                         help="non-speech items of each type")
    seed: int = setting(0, kind="int", ge=0, axis=_NONSPEECH_AXIS, flag="--nonspeech-seed",
                        help="seed of the non-speech noise (the same seed makes the same samples)")


@dataclass(frozen=True)
class PowerSettings:
    """The device's operating point for a run (runner/power): every field unset leaves the device as it is.

    Set ones are applied before the group's idle baseline, read back, observed during the run and restored
    afterwards; whether this device supports a value is checked before anything runs (runner/host/preflight.py).
    """

    mode: int | str | None = setting(None, kind="mode", null=True, flag="--power-mode",
                                     help="Jetson nvpmodel power mode, by id or by its name in the board's "
                                          "/etc/nvpmodel.conf (e.g. 0 or 15W)", default_text="leave it")
    jetson_clocks: bool | None = setting(None, kind="bool", null=True,
                                         help="Jetson: true runs jetson_clocks (clocks pinned at the mode's "
                                              "maximum), false restores the mode's own clock ranges",
                                         default_text="leave it")
    gpu_freq_mhz: float | None = setting(None, kind="number", gt=0, null=True, unit="MHz",
                                         flag="--gpu-freq-mhz",
                                         help="lock the GPU clock: Jetson GPU devfreq min = max, or NVIDIA locked "
                                              "graphics clocks", default_text="leave it")
    mem_freq_mhz: float | None = setting(None, kind="number", gt=0, null=True, unit="MHz",
                                         help="NVIDIA: lock the memory clock", default_text="leave it")
    gpu_power_limit_w: float | None = setting(None, kind="number", gt=0, null=True, unit="W",
                                              flag="--gpu-power-limit-w",
                                              help="NVIDIA: the GPU's power management limit",
                                              default_text="leave it")
    strict: bool = setting(False, kind="bool", axis="set power.strict in defaults (it is how a run treats a "
                                                    "mismatch, not an operating point)",
                           help="fail the group when the read-back operating point differs from the request "
                                "(clamped by the mode, say); off: record the mismatch and go on")
    settle_s: float = setting(2.0, kind="number", ge=0, unit="s",
                              help="seconds to wait after applying an operating point before the idle baseline")

    def requested(self) -> dict[str, Any]:
        """The operating-point fields that are set (the request a record quotes)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("strict", "settle_s") and getattr(self, f.name) is not None}

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StreamSettings:
    """Stream mode (issue 23): the dataset's utterances played as live audio, in chunks at real-time pace, by
    ``concurrency`` streams on one loaded model; what is measured is how soon text arrives, not only how fast.

    Every field is a container's setting (the job's ``stream``), so a sweep axis over one makes a container per
    value; a run without ``enabled`` ignores the others, and its keys are those it always had."""

    enabled: bool = setting(False, kind="bool", flag="--stream",
                            help="stream mode: play the utterances as live audio, chunk by chunk at real-time "
                                 "pace, and measure finalization latency, partials and lag")
    chunk_ms: int = setting(500, kind="int", ge=1, unit="ms", flag="--chunk-ms",
                            help="audio per chunk fed to the model (a chunk is delivered when its last sample "
                                 "has arrived)")
    gap_ms: int = setting(500, kind="int", ge=0, unit="ms", flag="--gap-ms",
                          help="silence between utterances of a stream")
    concurrency: int = setting(1, kind="int", ge=1, flag="--concurrency",
                               help="live streams served at once by the one loaded model (staggered by "
                                    "chunk / N, each starting at another utterance)")
    policy: str | None = setting(None, kind="choice", choices=STREAM_POLICIES, what="a stream policy", null=True,
                                 flag="--stream-policy",
                                 help="how chunks become text: " + " | ".join(STREAM_POLICIES),
                                 default_text=_backends.stream_default_text())
    sustain_s: float = setting(60.0, kind="number", gt=0, unit="s", flag="--sustain-s",
                               help="audio seconds each stream delivers at least (the data loops to fill it; "
                                    "every utterance is played once whatever this says)")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_LIMITS_AXIS = "a limit is a safety bound, not an operating point; set it in defaults.limits"
MIB = 1024 * 1024


@dataclass(frozen=True)
class LimitsSettings:
    """Bounds on what an image or a dataset can make the host keep, read or wait for (README: Security).

    An image or a dataset may come from a stranger, and the runner often runs as root: without a bound, one
    endless line, one huge file or a log without end fills the host's memory or disk. Each bound is generous
    for real work (the live-audio partial events included) and is watched while the container runs: past one
    the container is stopped and its conditions fail with a sentence naming the setting to raise.
    """

    output_mib: float = setting(1024.0, kind="number", gt=0, unit="MiB", axis=_LIMITS_AXIS,
                                flag="--output-limit-mib",
                                help="what a container may leave in its output folder; every file or folder "
                                     "counts at least 4 KiB (checked while it runs)")
    event_line_mib: float = setting(1.0, kind="number", gt=0, unit="MiB", axis=_LIMITS_AXIS,
                                    help="one event line (stdout or events.jsonl), and status.json")
    hypothesis_mib: float = setting(1.0, kind="number", gt=0, unit="MiB", axis=_LIMITS_AXIS,
                                    help="one hypothesis (UTF-8); a transcripts.jsonl line may be 6 times this "
                                         "plus 64 KiB, the most JSON escaping makes of it")
    log_head_mib: float = setting(1.0, kind="number", ge=0, unit="MiB", axis=_LIMITS_AXIS,
                                  help="the start of a container's log that is kept")
    log_tail_mib: float = setting(4.0, kind="number", ge=0, unit="MiB", axis=_LIMITS_AXIS,
                                  help="the end of a container's log that is kept (with a line saying what was "
                                       "cut between the start and the end)")
    data_text_mib: float = setting(64.0, kind="number", gt=0, unit="MiB", axis=_LIMITS_AXIS,
                                   help="one dataset text file: a manifest, a *.trans.txt or a reference .txt")
    audio_mounts: int = setting(512, kind="int", ge=0, axis=_LIMITS_AXIS, flag="--audio-mount-limit",
                                help="audio files mounted one by one (the container sees only them); beyond "
                                     "this, their folders are mounted whole and the run says how many other "
                                     "files the container can see")

    # Bytes, converted here once.
    @property
    def output_bytes(self) -> int:
        return int(self.output_mib * MIB)

    @property
    def event_line_bytes(self) -> int:
        return int(self.event_line_mib * MIB)

    @property
    def hypothesis_bytes(self) -> int:
        return int(self.hypothesis_mib * MIB)

    @property
    def transcript_line_bytes(self) -> int:
        """A transcripts.jsonl line: the hypothesis at its worst JSON escaping (\\u00XX: 6 bytes a byte) and
        room for the record's other fields."""
        return 6 * self.hypothesis_bytes + 64 * 1024

    @property
    def log_head_bytes(self) -> int:
        return int(self.log_head_mib * MIB)

    @property
    def log_tail_bytes(self) -> int:
        return int(self.log_tail_mib * MIB)

    @property
    def data_text_bytes(self) -> int:
        return int(self.data_text_mib * MIB)


@dataclass(frozen=True)
class FleetSettings:
    """How a fleet's driver joins its cluster (runner/fleet/): the driver's and the head's side of a Ray Client
    connection. Not a setting of a run or a sweep (no axis, no experiment key): the node agent and the driver
    read the defaults here.

    A driver's ``ray://`` goes to the head's Ray Client proxy, which starts a server process for that driver
    (a Python importing Ray) and gives it Ray's RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S, 30 s by default, to
    answer; on a loaded head (two busy cores) that start takes longer and the driver is refused with
    "Initialization failure from server". The wait is the head's, read as its proxy starts: the node agent's
    `head` passes ``client_server_timeout_s`` to Ray (that variable, set in the head's environment, wins).
    The same wait is what a driver loses when its server dies as it starts (seen in `make test`, once in nine
    joins): the proxy waits it out before the driver can ask again. 60 s: twice Ray's, where the 7 servers
    started during a bare `make test` here (two tests at a time on 2 cores) logged their first line 0.8 to 1.1 s
    after the proxy started them; it was 180 s, and a fleet test idled 190 s.
    """

    client_server_timeout_s: float = setting(60.0, kind="number", gt=0, unit="s",
                                             help="how long the head's Ray Client proxy waits for the server it "
                                                  "starts for each driver (Ray's default: 30)")
    connect_attempts: int = setting(3, kind="int", ge=1,
                                    help="how often a driver asks the head again when the head could not start "
                                         "its server in time")


def limit_name(name: str) -> str:
    """How a message names a limit so a person can raise it: ``limits.output_mib`` (``--output-limit-mib``)."""
    rule = LEAVES[f"limits.{name}"].rule
    return f"limits.{name}" + (f", {rule.flag}" if rule.flag else "")


@dataclass(frozen=True)
class Settings:
    """Everything one run (or one sweep grid point) is configured by; YAML keys are these names.

    Field order is the order experiment-file messages list the keys in.
    """

    backend: str = setting("faster-whisper", kind="backend", flag="--backend", help="backend name")
    model: str | None = setting(None, kind="str", null=True, flag="--model",
                                help="installed short name, model folder, or hub name", default_text="the backend's")
    quant: str | None = setting(None, kind="choice", choices=QUANTS, what="a quant", null=True, flag="--quant",
                                help=" | ".join(QUANTS), default_text="the backend's")
    device: str = setting(default_device(), kind="choice", choices=DEVICE_CHOICES, what="a device", flag="--device",
                          help=" | ".join(DEVICE_CHOICES) + " (auto: cuda where an NVIDIA driver is present)",
                          default_text="cpu; cuda on a Jetson")
    dataset: str = setting("data/default", kind="str", flag="--data", help="dataset folder or manifest")
    image: str | None = setting(None, kind="str", null=True, flag="--image",
                                help="use this image instead of the backend's image for this platform (:latest; "
                                     ":jetson-r35 / :jetson-r36 on a Jetson, runner/host/platforms.py)",
                                default_text="the backend's for this platform")
    limit: int | None = setting(None, kind="int", ge=1, null=True, flag="--limit",
                                help="only the first N utterances of the dataset", default_text="all")
    decode: DecodeSettings = _nested(DecodeSettings)
    warmup: int = setting(1, kind="int", ge=0, flag="--warmup", help="untimed warm-up passes before timing")
    repeats: int = setting(1, kind="int", ge=1, flag="--repeats", help="times the dataset is transcribed",
                           axis="set defaults.repeats (every repeat already runs in one container)")
    noise: NoiseSettings = _nested(NoiseSettings)
    nonspeech: NonspeechSettings = _nested(NonspeechSettings)  # issue 24: generated non-speech items
    telemetry: TelemetrySettings = _nested(TelemetrySettings)
    timeout_s: float | None = setting(None, kind="number", gt=0, null=True, unit="s", flag="--timeout",
                                      help="kill the container after this many seconds", default_text="no limit")
    mem_limit: str | None = setting(None, kind="mem", null=True, flag="--mem-limit",
                                    help="container memory limit, e.g. 4g", default_text="3/4 of the host's memory")
    audio_roots: tuple[str, ...] = setting((), kind="list", flag="--audio-root",
                                           item=Rule(kind="folder", help=""),
                                           axis="a list of trusted folders; set defaults.audio_roots",
                                           help="a trusted folder audio may come from besides the dataset's own "
                                                "(repeatable; for manifests with absolute paths elsewhere); "
                                                "system folders are never allowed", default_text="none")
    gpus: str | None = setting(None, kind="gpus", null=True, flag="--gpus",
                               help="CUDA runs: the GPUs to use, NVML indices or UUIDs, comma-separated; the "
                                    "container gets exactly these and NVML measures them",
                               default_text="$CUDA_VISIBLE_DEVICES, else 0")
    power: PowerSettings = _nested(PowerSettings)
    stream: StreamSettings = _nested(StreamSettings)
    target: str = setting("local", kind="str",
                          help="the fleet target that runs this group: a device class that Ray nodes advertise "
                               "(e.g. orin-nano-8gb; runner/fleet/); local: this machine, without a cluster")
    limits: LimitsSettings = _nested(LimitsSettings)


# --- paths ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One setting as addressed by its dotted path."""

    path: str  # "decode.beam_size"
    rule: Rule
    default: Any

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def sections(cls: type = Settings) -> dict[str, type]:
    """The nested settings (``decode``, ``noise``, ``telemetry``) and their classes."""
    return {f.name: f.default_factory for f in fields(cls) if f.metadata.get("nested")}  # type: ignore[misc]


def field_names(cls: type) -> tuple[str, ...]:
    """The YAML keys of one settings class, in order."""
    return tuple(f.name for f in fields(cls))


def leaves(cls: type = Settings, prefix: str = "") -> Iterator[Leaf]:
    """Every setting with a value of its own, in field order (nested ones under their section)."""
    for f in fields(cls):
        if f.metadata.get("nested"):
            yield from leaves(f.default_factory, f"{prefix}{f.name}.")  # type: ignore[misc]
        else:
            yield Leaf(f"{prefix}{f.name}", f.metadata["rule"], f.default)


LEAVES: dict[str, Leaf] = {leaf.path: leaf for leaf in leaves()}


def leaf(path: str) -> Leaf:
    try:
        return LEAVES[path]
    except KeyError:
        raise KeyError(f"no setting {path!r}") from None


def closest(path: str) -> str | None:
    """The setting path a mistyped one most likely meant."""
    close = difflib.get_close_matches(path, list(LEAVES), n=1, cutoff=0.6)
    return close[0] if close else None


def get(settings: Any, path: str) -> Any:
    value = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _replace_path(settings: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    if rest:
        return replace(settings, **{head: _replace_path(getattr(settings, head), rest, value)})
    return replace(settings, **{head: value})


def cli_label(path: str) -> str:
    """How ``edgeasr run`` names a setting: its flag, else its dotted path."""
    return leaf(path).rule.flag or path if path in LEAVES else path


# --- checks -----------------------------------------------------------------------------------------------


def show(value: Any) -> str:
    """A value as a message quotes it (YAML's spelling for null and booleans)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return repr(value)


@dataclass(frozen=True)
class Problem:
    """What is wrong with one value, phrased for a file key (``file``) and after a CLI flag (``cli``)."""

    file: str
    cli: str
    suffix: str = ""  # "[1]": the list item it is about

    def at(self, label: str) -> str:
        """The message for the origin ``label``: a flag (``--beam-size``) or a key path (``x.yaml: grid.a``)."""
        if label.startswith("-"):
            return f"{label}{self.suffix} {self.cli}"
        return f"{label}{self.suffix}: {self.file}"


class SettingError(ValueError):
    """A value failed its check; ``problems`` say why (see ``Problem.at``)."""

    def __init__(self, problems: list[Problem], partial: Any = None):
        super().__init__("; ".join(p.file for p in problems))
        self.problems = problems
        self.partial = partial  # a list's good items (None: nothing usable), so later checks still see them

    def messages(self, label: str) -> list[str]:
        return [p.at(label) for p in self.problems]


def _range_text(rule: Rule) -> tuple[str, str]:
    """(file wording, CLI wording) of a number's range: ('>= 1', 'at least 1'), ('from 0 to 1', 'from 0 to 1')."""
    if rule.ge is not None and rule.le is not None:
        return f" from {rule.ge:g} to {rule.le:g}", f"from {rule.ge:g} to {rule.le:g}"
    if rule.ge is not None:
        return f" >= {rule.ge:g}", (f"at least {rule.ge:g}" if rule.ge >= 1 else f">= {rule.ge:g}")
    if rule.gt is not None:
        return f" > {rule.gt:g}", ("positive" if rule.gt == 0 else f"> {rule.gt:g}")
    return "", ""


def _check(rule: Rule, value: Any, root: Path | None) -> Any:
    """The normalised value, or SettingError. Numbers that are not integers become floats, so that 0 and 0.0
    are one setting (and one sweep group)."""
    if value is None and rule.null:
        return None
    kind = rule.kind
    if kind in ("int", "number"):
        integer = kind == "int"
        rng, cli_rng = _range_text(rule)
        want = ("an integer" if integer else "a number") + rng + (" or null" if rule.null else "")
        ok_type = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value):
            raise SettingError([Problem(f"expected {want}, got {show(value)}", f"must be {want}, got {show(value)}")])
        if (rule.ge is not None and value < rule.ge) or (rule.gt is not None and value <= rule.gt) or \
                (rule.le is not None and value > rule.le):
            raise SettingError([Problem(f"expected {want}, got {show(value)}", f"must be {cli_rng}, got {value}")])
        return value if integer else float(value)
    if kind == "mode":  # an nvpmodel mode: its id (an integer >= 0) or its name (a string)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())  # --power-mode 2 arrives as a string
        if (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or \
                (isinstance(value, str) and value.strip()):
            return value.strip() if isinstance(value, str) else value
        want = "a power mode id (an integer >= 0) or name (a string)" + (" or null" if rule.null else "")
        raise SettingError([Problem(f"expected {want}, got {show(value)}", f"must be {want}, got {show(value)}")])
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            want = f"a non-empty string{' or null' if rule.null else ''}"
            raise SettingError([Problem(f"expected {want}, got {show(value)}", f"must be {want}, got {show(value)}")])
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise SettingError([Problem(f"expected true or false, got {show(value)}",
                                        f"must be true or false, got {show(value)}")])
        return value
    if kind == "choice":
        if not isinstance(value, str) or value not in rule.choices:
            raise SettingError([Problem(f"{show(value)} is not {rule.what}; allowed: {', '.join(rule.choices)}",
                                        f"{show(value)} is unknown; choose one of {', '.join(rule.choices)}")])
        return value
    if kind == "backend":
        reason = _backends.unavailable_reason(value) if isinstance(value, str) else None
        if reason:
            raise SettingError([Problem(f"backend {value} is not available: {reason}",
                                        f"{value} is not available: {reason}")])
        if not isinstance(value, str) or value not in _backends.BACKENDS:
            names = ", ".join(_backends.BACKENDS)
            raise SettingError([Problem(f"{show(value)} is not a backend; allowed: {names}",
                                        f"{show(value)} is unknown; known backends: {', '.join(sorted(_backends.BACKENDS))}")])
        return value
    if kind == "mem":
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return str(value)
        if not isinstance(value, str) or mem_size_bytes(value) is None:
            text = f"expected a memory size such as '512m' or '4g' (units b, k, m, g) or null, got {show(value)}"
            raise SettingError([Problem(text, f"{show(value)} is not a size; use a number with k, m or g, e.g. 4g "
                                              "or 512m")])
        return value.strip()
    if kind == "gpus":
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, str):
            items = [v for v in value.split(",")]
        if not items or not all(isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip()
                                for v in items):
            text = f"expected a GPU index or UUID, or a list of them (e.g. 0, [0, 1], 'GPU-...'), got {show(value)}"
            raise SettingError([Problem(text, f"{show(value)} is not a list of GPU indices or UUIDs (e.g. 0,1)")])
        return ",".join(str(v).strip() for v in items)
    if kind == "folder":
        if not isinstance(value, str) or not value.strip():
            raise SettingError([Problem(f"expected a non-empty string, got {show(value)}",
                                        f"must be a folder, got {show(value)}")])
        if root is None:
            return value
        p = Path(value).expanduser()
        p = (p if p.is_absolute() else root / p).resolve()
        if not p.is_dir():
            raise SettingError([Problem(f"{value!r} is not a folder (looked for {p})",
                                        f"{value!r} is not a folder (looked for {p})")])
        return str(p)
    if kind == "list":
        assert rule.item is not None
        if not isinstance(value, (list, tuple)):
            what = rule.help if rule.item.kind != "number" else f"numbers ({rule.unit})"
            raise SettingError([Problem(f"expected a list of {what}, got {show(value)}",
                                        f"must be a list of {what}, got {show(value)}")])
        out: list = []
        problems: list[Problem] = []
        for i, item in enumerate(value):
            try:
                good = _check(rule.item, item, root)
            except SettingError as exc:
                problems += [replace(p, suffix=f"[{i}]") for p in exc.problems]
                continue
            if good in out:
                text = f"{show(item)} is repeated; each value may appear once"
                problems.append(Problem(text, text, f"[{i}]"))
                continue
            out.append(good)
        if problems:
            raise SettingError(problems, partial=tuple(out))
        return tuple(out)
    raise AssertionError(kind)


def check(path: str, value: Any, *, root: Path | None = None) -> Any:
    """One setting's value, checked and normalised; SettingError says why not.

    ``root``: where relative folders start (experiment files); None leaves folders as given (the CLI: the
    run resolves them)."""
    return _check(leaf(path).rule, value, root)


def apply(settings: Settings, path: str, value: Any, *, root: Path | None = None) -> Settings:
    """``settings`` with ``path`` set to ``value`` after its check (SettingError: unchanged, and why).

    The one way the CLI, the experiment loader and the grid set a setting."""
    return _replace_path(settings, path, check(path, value, root=root))


def problems(settings: Settings, where: Callable[[str], str] = cli_label) -> list[str]:
    """Every field of a Settings that fails its check, each named by ``where(path)``."""
    out: list[str] = []
    for lf in LEAVES.values():
        try:
            _check(lf.rule, get(settings, lf.path), None)
        except SettingError as exc:
            out += exc.messages(where(lf.path))
    return out


def sweep_axis_problem(path: str) -> str | None:
    """Why ``path`` cannot be a dotted grid axis (None: it can)."""
    if path not in LEAVES:
        return None
    lf = LEAVES[path]
    if lf.rule.axis:
        return lf.rule.axis
    return None


# --- the legacy dictionaries that sweep result keys are made from ----------------------------------------------

#: The keys each section's dict had when sweep result keys were first made from it; a field added since appears
#: only when it differs from its default, so the keys of earlier results stay the same.
KEYED_FIELDS = {
    "decode": ("beam_size", "temperature", "language", "threads", "batch_size"),
    "telemetry": ("sampler", "interval_ms", "baseline_s", "baseline_w"),
}


def section_dict(settings: Any, name: str) -> dict[str, Any]:
    """``decode`` or ``telemetry`` as the dict a sweep group's settings carry (see KEYED_FIELDS)."""
    obj = getattr(settings, name) if isinstance(settings, Settings) else settings
    keyed = KEYED_FIELDS[name]
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name in keyed or value != f.default:
            out[f.name] = value
    return out


def to_dict(settings: Any) -> dict[str, Any]:
    """A Settings as the nested, JSON-able mapping an experiment file would write (tuples as lists)."""
    out: dict[str, Any] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


# --- the command line -------------------------------------------------------------------------------------


def _dest(rule: Rule) -> str:
    assert rule.flag is not None
    return rule.flag.lstrip("-").replace("-", "_")


def default_text(lf: Leaf) -> str:
    """The default as the help states it: '5', '100 ms', "the backend's"."""
    if lf.rule.default_text is not None:
        return lf.rule.default_text
    value = lf.default
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return f"{text} {lf.rule.unit}" if lf.rule.unit else text


#: The help's sections, in order, and the settings each holds (by path; a section name holds every leaf under it).
FLAG_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model", ("backend", "model", "quant", "device", "image", "gpus")),
    ("data", ("dataset", "limit", "audio_roots", "nonspeech")),
    ("decode", ("decode", "warmup", "repeats")),
    ("telemetry", ("telemetry",)),
    ("power", ("power",)),
    ("stream", ("stream",)),
    ("container", ("timeout_s", "mem_limit", "limits")),
    ("output", ()),
)


def _group_of(path: str) -> str:
    for title, paths in FLAG_GROUPS:
        if any(path == q or path.startswith(q + ".") for q in paths):
            return title
    return "options"


def add_arguments(p: argparse.ArgumentParser) -> dict[str, Any]:
    """One option per setting that has a flag, from its metadata, in the help's sections (FLAG_GROUPS); every
    default is None (a flag not given leaves the setting's own default), and the help states the default and
    unit. Returns the sections by title, for the command's own options."""
    groups: dict[str, Any] = {title: p.add_argument_group(title) for title, _ in FLAG_GROUPS}
    for lf in LEAVES.values():
        rule = lf.rule
        if rule.flag is None:
            continue
        help_text = f"{rule.help} (default: {default_text(lf)})"
        target = groups.get(_group_of(lf.path), p)
        if rule.kind == "bool":
            target.add_argument(rule.flag, dest=_dest(rule), action="store_true", default=None, help=help_text)
        elif rule.kind == "list":
            target.add_argument(rule.flag, dest=_dest(rule), action="append", default=None,
                                metavar="DIR" if rule.item is None or rule.item.kind == "folder" else "VALUE",
                                help=help_text)
        else:
            kind = {"int": int, "number": float}.get(rule.kind, str)
            target.add_argument(rule.flag, dest=_dest(rule), type=kind, default=None,
                                metavar=None if kind is str else "N", help=help_text)
    return groups


def _given_flags(args: argparse.Namespace):
    """(leaf, value) for each settings flag the user gave (argparse defaults are None: a None was not given)."""
    for lf in LEAVES.values():
        if lf.rule.flag is None:
            continue
        value = getattr(args, _dest(lf.rule), None)
        if value is not None:
            yield lf, value


def from_args(args: argparse.Namespace, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """The settings the given flags set over ``base`` (default: the defaults), and every flag's problem."""
    settings = base or Settings()
    found: list[str] = []
    for lf, value in _given_flags(args):
        try:
            settings = apply(settings, lf.path, value)
        except SettingError as exc:
            found += exc.messages(lf.rule.flag)
    return settings, found


def flag_origins(args: argparse.Namespace) -> dict[str, str]:
    """The settings the given flags set (dotted path -> flag), those whose value passed its check: what the user
    chose, told from a default, for checks that refuse only a chosen value (runner.spec: a decode setting the
    model cannot honour). A flag whose value failed its check is left out: from_args reports it."""
    out: dict[str, str] = {}
    for lf, value in _given_flags(args):
        try:
            check(lf.path, value)
        except SettingError:
            continue
        out[lf.path] = lf.rule.flag
    return out
