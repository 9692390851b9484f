"""Result records and their files: summary.json and utterances.jsonl, schema-versioned, written atomically.

A value that could not be measured is None on disk, with its reason in the
record's ``unavailable`` map; never 0, "" or NaN in its place.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import UserError
from .host.load import busy_from_record

#: The file a sweep's condition records are kept in, one ConditionRecord.to_json() per line.
CONDITIONS_FILE = "conditions.jsonl"

#: 2: peak_vram_mb/peak_vram_source became peak_vram_torch_mb and peak_vram_nvml_mb (issue 9); energy
#: blocks gained scope, clock, arrival, psys and companions.
#: 3: summaries gained model_ref (the model's full reference: folder or hub name) beside the short name, host
#: facts in every sweep condition, and a condition block; conditions.jsonl lines carry schema_version, the
#: condition's full decode settings and its axes (issue 10).
#: Still 3 after issue 12: summaries gained ``power`` (the operating point requested / applied / observed /
#: restored, runner/power), a new field that is null where no operating point was set; nothing moved.
#: Still 3 after issue 23: a streamed condition's summary gains ``stream`` and ``offline`` (written only there) and
#: its latency_ms is null with its reason; an offline summary is what it was.
#: Still 3 after issue 24: summaries gained ins_rate, repeated_ngram_rate, compression_over_share and the
#: non-speech figures (n_nonspeech, nonspeech_words, nonspeech_wpm, nonspeech_output_share) and the declared
#: long-form algorithm (long_form), absent from older
#: ones (the report reads their absence as "not in the results"); nothing moved. An empty reference, read as no
#: reference before, is non-speech since: its item counts in n_nonspeech, no longer in n_unreferenced.
#: 4: one unit per name (issue 28 item 6): a figure held in MiB (2^20 bytes) is named ``_mib``, ``_mb`` is only MB
#: (10^6 bytes: model_size_mb). Renamed, the values unchanged (they were MiB already): the summary's peak_rss_mib,
#: audio_cache_mib, peak_rss_excl_audio_mib, rss_after_load_mib, peak_vram_torch_mib, peak_vram_nvml_mib (and their
#: ``unavailable`` reasons and ``repeats`` lists), container_memory's peak_mib, at_start_mib, rise_mib, windows_mib,
#: the energy block's <label>_peak_mib, _peak_delta_mib, _at_start_mib, _rise_mib, gpu_process_mem_peak_mib and
#: memory_windows_mib, host.mem_total_mib, the fleet agent's rss_mib, and an utterance's mem_peak_mib and
#: container_mem_peak_mib (utterances.jsonl); telemetry.csv's column is mem_used_mib. ``upgraded`` and
#: ``upgraded_utterance`` read older records so. The container contract (status.json, events) keeps its names,
#: which every image built writes: runner/merge.CONTRACT_MIB converts them.
SCHEMA_VERSION = 4

#: The summary's top-level fields schema 4 renamed: old name -> new name (the value unchanged: MiB already).
RENAMED_IN_4: dict[str, str] = {
    "peak_rss_mb": "peak_rss_mib", "audio_cache_mb": "audio_cache_mib",
    "peak_rss_excl_audio_mb": "peak_rss_excl_audio_mib", "rss_after_load_mb": "rss_after_load_mib",
    "peak_vram_torch_mb": "peak_vram_torch_mib", "peak_vram_nvml_mb": "peak_vram_nvml_mib",
}
#: The same for the blocks inside a summary, by the block's key (their ``unavailable`` reasons too).
BLOCKS_RENAMED_IN_4: dict[str, dict[str, str]] = {
    "container_memory": {"peak_mb": "peak_mib", "at_start_mb": "at_start_mib", "rise_mb": "rise_mib",
                         "windows_mb": "windows_mib"},
    "host": {"mem_total_mb": "mem_total_mib"},
}
#: An utterance record's fields schema 4 renamed (utterances.jsonl).
UTTERANCE_RENAMED_IN_4: dict[str, str] = {"mem_peak_mb": "mem_peak_mib",
                                          "container_mem_peak_mb": "container_mem_peak_mib"}


def _renamed(d: dict, names: Mapping[str, str]) -> dict:
    return {names.get(k, k): v for k, v in d.items()}


def _mib_renamed(d: dict) -> dict:
    """Every ``_mb`` key as ``_mib``: for the blocks where each of them held MiB (the energy block, whose keys are
    built from the sampler's memory label, and the fleet agent's usage)."""
    return {(k[:-3] + "_mib" if isinstance(k, str) and k.endswith("_mb") else k): v for k, v in d.items()}


def _energy_upgraded(block: Any) -> Any:
    if not isinstance(block, Mapping):
        return block
    out = _mib_renamed(dict(block))
    if isinstance(out.get("unavailable"), Mapping):
        out["unavailable"] = _mib_renamed(dict(out["unavailable"]))
    if isinstance(out.get("companions"), Mapping):
        out["companions"] = {k: _energy_upgraded(v) for k, v in out["companions"].items()}
    return out


def upgraded(summary: Any) -> Any:
    """A run summary under schema 4's names: one written before (schema 3 or older) has its MiB figures, their
    ``unavailable`` reasons, its ``repeats`` lists and its blocks' memory figures under the ``_mib`` names, the
    values as they were. A new dict (the one given is left as it is); a summary already in today's names comes
    back equal, so reading twice changes nothing. Not a mapping: returned as it is (its reader refuses it).

    Renamed by name, whatever schema_version says (a schema-4 summary holds none of the old names), and the
    schema_version is left as written: it says which version wrote the record."""
    if not isinstance(summary, Mapping):
        return summary
    out = _renamed(dict(summary), RENAMED_IN_4)
    for key in ("unavailable", "repeats"):
        if isinstance(out.get(key), Mapping):
            out[key] = _renamed(dict(out[key]), RENAMED_IN_4)
    for key, names in BLOCKS_RENAMED_IN_4.items():
        if isinstance(out.get(key), Mapping):
            block = _renamed(dict(out[key]), names)
            if isinstance(block.get("unavailable"), Mapping):
                block["unavailable"] = _renamed(dict(block["unavailable"]), names)
            out[key] = block
    if "energy" in out:
        out["energy"] = _energy_upgraded(out["energy"])
    fleet = out.get("fleet")
    if isinstance(fleet, Mapping) and isinstance(fleet.get("agent"), Mapping):
        agent = {k: _mib_renamed(dict(v)) if isinstance(v, Mapping) else v for k, v in fleet["agent"].items()}
        out["fleet"] = {**fleet, "agent": agent}
    return out


def upgraded_utterance(row: Any) -> Any:
    """An utterances.jsonl row under schema 4's names (``mem_peak_mib``, ``container_mem_peak_mib``); a new dict,
    the values as they were. Not a mapping: returned as it is."""
    return _renamed(dict(row), UTTERANCE_RENAMED_IN_4) if isinstance(row, Mapping) else row


@dataclass(frozen=True)
class UtteranceResult:
    id: str
    status: str  # ok | error | not_run (an interrupt came before the container reached it)
    error: str | None
    reference: str | None
    hypothesis: str | None
    reference_norm: str | None
    hypothesis_norm: str | None
    duration_s: float | None
    latency_s: float | None  # what a caller waited: the utterance's own time, or its batch's (a stream: its
    # finalization latency, runner/merge.stream_utterances)
    wer: float | None
    processing_s: float | None = None  # its share of the compute (= latency_s unless batched): RTF sums these
    energy_j: float | None = None
    dynamic_j: float | None = None
    energy_unavailable: str | None = None
    energy_method: str | None = None  # window: its own window | batch_share: its processing_s share of its batch
    #: the energy sampler's memory (energy.memory_headline's kind: RAM on Jetson, GPU memory on NVML) at its peak
    #: over the utterance's call (its batch's when batched); None when no sample fell inside the call
    mem_peak_mib: float | None = None
    #: the container's memory (its cgroup's working set, summary.container_memory) at its peak over the call
    container_mem_peak_mib: float | None = None
    #: An item with a segment map (issue 24): the inserted words the alignment puts where its non-speech lies
    #: (runner/metrics.gap_insertions), and the seconds of that non-speech; None without a map
    gap_insertions: int | None = None
    gap_s: float | None = None


@dataclass(frozen=True)
class Summary:
    """One run's figures and the settings, image and host that produced them.

    Frozen: begun once with the settings and identity (runner/execute.new_summary), then each stage (scoring,
    the container's facts, energy accounting, runner/merge.py) returns a new one with its fields and reasons,
    never editing the one it was given; what is written is ``to_json()`` of the last, never a patched dict.
    """

    backend: str
    model: str
    quant: str
    device: str
    dataset: str
    status: str  # ok | partial (some utterances failed) | error (the run failed) | interrupted (SIGINT/SIGTERM)
    error: str | None = None
    schema_version: int = SCHEMA_VERSION
    backend_quant: str | None = None
    #: The device the backend reports its model ran on (the model_info event's device_used): where the figures
    #: come from; a run on another device than ``device`` is an error, never a figure of ``device``.
    device_used: str | None = None
    model_source: str | None = None
    model_ref: str | None = None  # the model in full: its folder, or its hub name (model is the short name)
    data_path: str | None = None
    n_utterances: int = 0
    n_failed: int = 0
    n_not_run: int = 0  # after an interrupt: never reached, neither transcribed nor failed
    n_scored: int = 0
    n_unreferenced: int = 0
    audio_s: float | None = None
    wer: float | None = None
    cer: float | None = None
    sub: int | None = None
    # "del" is a Python keyword; the on-disk name is "del" (see to_json)
    deletions: int | None = None
    ins: int | None = None
    ref_words: int | None = None
    #: Issue 24 (runner/scoring/metrics.py defines each): inserted words over reference words (apart from WER); repeated
    #: trigrams of the hypotheses beyond their references' own; the share of transcribed hypotheses whose
    #: compression ratio is above Whisper's 2.4 (a loop).
    ins_rate: float | None = None
    repeated_ngram_rate: float | None = None
    compression_over_share: float | None = None
    #: Non-speech items (an empty reference, issue 24), scored apart from WER: how many (all, as n_unreferenced),
    #: the words said over the transcribed ones, those words per minute of their audio, the share with any word.
    n_nonspeech: int = 0
    nonspeech_words: int | None = None
    nonspeech_wpm: float | None = None
    nonspeech_output_share: float | None = None
    #: Items with a segment map (edgeasr data lengths with gaps): the words inserted where their non-speech lies,
    #: in all and per minute of that non-speech (runner/metrics.gap_insertions).
    gap_ins: int | None = None
    gap_ins_per_min: float | None = None
    rtf: float | None = None
    rtfx: float | None = None
    latency_ms: dict[str, float] | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    inference_s: float | None = None
    container_s: float | None = None
    overhead_s: dict[str, float] | None = None
    #: Memory in MiB (2^20 bytes, ``_mib``): the container's status says these as peak_rss_mb, ... (its contract's
    #: names, runner/merge.CONTRACT_MIB); model_size_mb is MB (10^6 bytes, the files' size on disk).
    peak_rss_mib: float | None = None  # the container process's resident peak, over peak_rss_scope
    peak_rss_scope: str | None = None  # process (since start, includes model load) | condition (reset at its start)
    audio_cache_mib: float | None = None  # decoded audio the harness held (cache, babble pool): not the backend's
    peak_rss_excl_audio_mib: float | None = None  # the backend's resident peak without the harness's audio
    peak_rss_excl_audio_method: str | None = None  # how it was taken (the container's, or the host's older rule)
    rss_after_load_mib: float | None = None
    model_size_mb: float | None = None
    n_params: int | None = None
    # Two different figures, never one in place of the other: torch's allocator peak counts tensors only
    # (no CUDA context, no cuDNN workspace); NVML's counts everything the run's processes hold on the GPU.
    peak_vram_torch_mib: float | None = None  # torch.cuda.max_memory_allocated, inside the container
    peak_vram_nvml_mib: float | None = None  # NVML memory of the run's own processes (incl. CUDA context)
    #: The container's memory as a timeline, read on the host from its cgroup (runner/telemetry/memory.py): the
    #: peak over the condition's own window, what was resident at its start, each window's peak, source, interval
    container_memory: dict[str, Any] | None = None
    quant_method: str | None = None  # how the backend realised the quant, where it says
    decode: dict[str, Any] = field(default_factory=dict)
    #: How the backend decodes audio longer than its window, as it applied to this run (runner/backends.LongForm;
    #: issue 24); None in summaries from before it was recorded.
    long_form: dict[str, Any] | None = None
    warmup: int = 0
    image: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    engine: str = "docker"
    telemetry: dict[str, Any] = field(default_factory=dict)  # the sampler settings used
    hardening: dict[str, Any] = field(default_factory=dict)  # the container's confinement (launch/hardening.py)
    energy: dict[str, Any] | None = None  # see runner/telemetry/energy/accounting.py
    power: dict[str, Any] | None = None  # the operating point (runner/power.PowerRecord); None: left as it was
    unavailable: dict[str, str] = field(default_factory=dict)
    host_load: dict[str, Any] | None = None  # how busy the host was around the condition (runner/host/load.py)
    condition: dict[str, Any] | None = None  # the condition's block (runner/tables.condition_block)
    #: Stream mode's figures (runner/stream_metrics.StreamMetrics.to_json: finalization latency, first partial,
    #: chunk latency, lag, partial stability, ...); None: not a stream (or it streamed nothing: unavailable says)
    stream: dict[str, Any] | None = None
    #: Stream mode: the same utterances transcribed whole (the job's stream.offline), scored with the same
    #: normalizer: wer, cer, ..., and the streamed text's WER over exactly those utterances beside it
    #: (runner/merge.offline_block); None: not a stream, or no offline text (unavailable says why)
    offline: dict[str, Any] | None = None
    #: Set where the image's CPU architecture is not the host's (runner/host/platforms.emulation_record): the run
    #: was emulated (qemu), so its speed and energy are the emulator's, never a device's. None: native.
    emulation: dict[str, str] | None = None

    #: Written only where set, so summaries without them keep the keys they always had.
    _OPTIONAL = ("power", "host_load", "condition", "stream", "offline", "emulation")

    def unavailable_because(self, reasons: dict[str, str], **changes: Any) -> Summary:
        """A copy with ``changes`` and these reasons added to ``unavailable`` (a later reason for a name wins)."""
        return replace(self, **changes, unavailable={**self.unavailable, **reasons})

    def available(self, *names: str, **changes: Any) -> Summary:
        """A copy with ``changes`` and no reason recorded any more for ``names`` (a figure found after all)."""
        return replace(self, **changes, unavailable={k: v for k, v in self.unavailable.items() if k not in names})

    def to_json(self) -> dict[str, Any]:
        # "del" is the on-disk name (a Python keyword cannot be a field); keep the field's position. ``power``
        # is written only where an operating point was set, so summaries without one stay as they were.
        return {("del" if k == "deletions" else k): v for k, v in asdict(self).items()
                if not (k in self._OPTIONAL and v is None)}


# -- condition records: conditions.jsonl, written by runner/tables.py, read by runner/report -------------------------

#: Axis paths that are already fields of GroupKey (or the repeat, which is what is averaged over): every other
#: path in a record's ``condition.axes`` becomes part of the key.
KEY_AXES = frozenset({"backend", "model", "quant", "device", "dataset", "image", "repeat"})
MISSING_AXIS = "–"  # shown for an axis a record does not carry (a record from before the axis was swept)


def is_number(value: Any) -> bool:
    """An int or float axis value (a bool is a switch, not a number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class GroupKey:
    """What a condition varies, less the repeat: the repeats of one key are averaged."""

    backend: str
    model: str
    quant: str
    device: str
    dataset: str
    noise_type: str
    snr_db: float | None
    image: str = ""  # the image ref the condition ran in (two builds of one backend are two rows)
    versions: str = ""  # its org.edgeasr.versions label (else the versions the container reported)
    model_ref: str = ""  # the model's full reference (folder path or hub name); "" in records before schema 3
    data_path: str = ""  # the dataset's full path; "" in records before schema 3
    #: (dotted path, value) of every other grid axis at this point, sorted by path (e.g. decode.beam_size).
    axes: tuple[tuple[str, Any], ...] = ()

    @property
    def model_id(self) -> tuple[str, str]:
        """The model's identity: its reference where the record has one, the short name in any case."""
        return (self.model, self.model_ref)

    @property
    def dataset_id(self) -> tuple[str, str]:
        """The dataset's identity: its path where the record has one, the folder's name in any case."""
        return (self.dataset, self.data_path)

    def axis(self, path: str) -> Any:
        """This point's value on the axis ``path``; MISSING_AXIS when the record does not carry it."""
        return next((v for p, v in self.axes if p == path), MISSING_AXIS)

    @property
    def noise_label(self) -> str:
        """"clean", "white 10 dB", or the noise type alone when it has no SNR."""
        if self.noise_type == "clean":
            return "clean"
        if self.snr_db is None:
            return self.noise_type
        return f"{self.noise_type} {self.snr_db:g} dB"


@dataclass(frozen=True)
class ConditionRecord:
    """One line of conditions.jsonl: one (condition, repeat) and its run summary.

    The one type at the seam between the runner and the report: runner/tables.py writes it (``to_json``, the
    same keys as every stored file, so resume and old results read as before) and runner/report reads it back
    (``from_json``), grouped by ``key``. ``condition`` is the stored condition block as written (identity in
    full, every axis, settings key, inputs), kept whole so that writing a read record changes nothing.
    """

    key: GroupKey
    repeat: int
    status: str  # ok | partial | error (interrupted and node_lost are recorded, never collected)
    error: str | None
    summary: Mapping[str, Any]
    folder: Path | None = None  # where its utterances.jsonl is (None: not known, e.g. a record built in a test)
    source: str = ""  # the results folder it was read from, when a report or comparison reads several
    condition: Mapping[str, Any] = field(default_factory=dict, hash=False)
    schema_version: int | None = None  # None: a line written before lines carried it (schema < 3)

    @property
    def busy_reason(self) -> str | None:
        """Why the host was busy during this record's timed window (summary["host_load"]), or None."""
        return busy_from_record(self.summary.get("host_load"))

    @classmethod
    def of(cls, condition: Mapping[str, Any], summary: Mapping[str, Any],
           schema_version: int | None = SCHEMA_VERSION) -> ConditionRecord:
        """The record the runner writes for a condition block and its summary; nothing is checked (a failed
        condition's summary may lack the model it never resolved), the report checks when it reads."""
        return cls(key=_group_key(condition, summary), repeat=_repeat(condition), status=summary.get("status"),
                   error=summary.get("error"), summary=summary, condition=condition, schema_version=schema_version)

    def upgraded(self) -> ConditionRecord:
        """The record with its summary under today's names (``upgraded``), for reading its figures; the
        ``schema_version`` it was written with is kept."""
        return replace(self, summary=upgraded(self.summary))

    def to_json(self) -> dict[str, Any]:
        """The conditions.jsonl object: schema_version (when known), condition, status, error, summary."""
        out: dict[str, Any] = {} if self.schema_version is None else {"schema_version": self.schema_version}
        out.update(condition=self.condition, status=self.status, error=self.error, summary=self.summary)
        return out

    @classmethod
    def from_json(cls, row: Mapping[str, Any], path: Path | str = CONDITIONS_FILE, line: int = 0) -> ConditionRecord:
        """One conditions.jsonl object as a ConditionRecord; UserError when it has no usable condition."""
        cond = row.get("condition") if isinstance(row, Mapping) else None
        if not isinstance(cond, Mapping) or not all(cond.get(k) for k in ("backend", "model", "quant")):
            raise UserError(f"record {line} of {path} has no condition with backend, model and quant.")
        summary = row.get("summary")
        summary = summary if isinstance(summary, Mapping) else {}
        version = row.get("schema_version")
        return cls(key=_group_key(cond, summary), repeat=_repeat(cond), status=str(row.get("status") or "error"),
                   error=row.get("error"), summary=summary, condition=cond,
                   schema_version=version if isinstance(version, int) and not isinstance(version, bool) else None)


def _repeat(cond: Mapping[str, Any]) -> int:
    try:
        return int(cond.get("repeat") or 0)
    except (TypeError, ValueError):
        return 0


def _group_key(cond: Mapping[str, Any], summary: Any) -> GroupKey:
    """The key a condition block is averaged under (its repeats share it)."""
    noise = str(cond.get("noise_type") or "clean")
    snr = cond.get("snr_db")
    axes = cond.get("axes") if isinstance(cond.get("axes"), Mapping) else {}
    return GroupKey(
        backend=str(cond.get("backend")), model=str(cond.get("model")), quant=str(cond.get("quant")),
        device=str(cond.get("device") or "unknown"), dataset=str(cond.get("dataset") or "unknown"),
        noise_type=noise, snr_db=None if noise == "clean" or snr is None else float(snr),
        image=str(cond.get("image") or _image_ref(summary)), versions=record_versions(summary),
        model_ref=str(cond.get("model_ref") or ""), data_path=str(cond.get("data_path") or ""),
        axes=tuple(sorted((str(p), _frozen(v)) for p, v in axes.items() if str(p) not in KEY_AXES)),
    )


def parse_record(row: Mapping[str, Any], path: Path | str = CONDITIONS_FILE, line: int = 0) -> ConditionRecord:
    """One conditions.jsonl object as a ConditionRecord whose figures are read (the report, compare): from_json,
    its summary under today's names (``upgraded``: a line of schema 3 or older has its MiB figures named _mib).
    ``ConditionRecord.from_json`` alone keeps the line as it was written (written again, the same bytes)."""
    return ConditionRecord.from_json(row, path, line).upgraded()


def _image_ref(summary: Any) -> str:
    image = summary.get("image") if isinstance(summary, Mapping) else None
    return str(image.get("ref") or "") if isinstance(image, Mapping) else ""


def record_versions(summary: Any) -> str:
    """`name=version,...` of the libraries a run had: its image's org.edgeasr.versions label, else the
    versions the container reported (an image built without the label); "" when neither is there."""
    if not isinstance(summary, Mapping):
        return ""
    image = summary.get("image")
    labels = image.get("labels") if isinstance(image, Mapping) else None
    label = labels.get("org.edgeasr.versions") if isinstance(labels, Mapping) else None
    if isinstance(label, str) and label.strip():
        return label.strip()
    versions = summary.get("versions")
    if isinstance(versions, Mapping):
        return ",".join(f"{k}={v}" for k, v in versions.items() if isinstance(v, str))
    return ""


def _frozen(value: Any) -> Any:
    """A JSON axis value made hashable: lists become tuples, mappings their sorted JSON text."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return value



def write_text_atomic(path: Path, text: str) -> None:
    """Temp file + fsync + rename: readers see the old file or the whole new one. On any failure (a full
    disk, say) the temp file is removed, so no ``*.tmp`` is left behind."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSONL, skipping a cut-off last line (a container killed mid-write)."""
    return read_jsonl_checked(path)[0]


def read_jsonl_checked(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows, and one 'FILE:LINE: reason' for each line that is not a JSON object, so callers can warn
    about (or redo) a corrupt file instead of silently dropping its lines."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    if not path.exists():
        return rows, problems
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{lineno}: not valid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict):
                problems.append(f"{path}:{lineno}: not a JSON object")
                continue
            rows.append(row)
    return rows, problems
