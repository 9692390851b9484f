"""Result records and their files: summary.json and utterances.jsonl, schema-versioned, written atomically.

A value that could not be measured is None on disk, with its reason in the
record's ``unavailable`` map; never 0, "" or NaN in its place.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: 2: peak_vram_mb/peak_vram_source became peak_vram_torch_mb and peak_vram_nvml_mb (issue 9); energy
#: blocks gained scope, clock, arrival, psys and companions.
#: 3: summaries gained model_ref (the model's full reference: folder or hub name) beside the short name, host
#: facts in every sweep condition, and a condition block; conditions.jsonl lines carry schema_version, the
#: condition's full decode settings and its axes (issue 10).
#: Still 3 after issue 12: summaries gained ``power`` (the operating point requested / applied / observed /
#: restored, runner/power), a new field that is null where no operating point was set; nothing moved.
SCHEMA_VERSION = 3


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
    latency_s: float | None  # what a caller waited: the utterance's own time, or its batch's
    wer: float | None
    processing_s: float | None = None  # its share of the compute (= latency_s unless batched): RTF sums these
    energy_j: float | None = None
    dynamic_j: float | None = None
    energy_unavailable: str | None = None
    energy_method: str | None = None  # window: its own window | batch_share: its processing_s share of its batch
    #: the energy sampler's memory (energy.memory_headline's kind: RAM on Jetson, GPU memory on NVML) at its peak
    #: over the utterance's call (its batch's when batched); None when no sample fell inside the call
    mem_peak_mb: float | None = None
    #: the container's memory (its cgroup's working set, summary.container_memory) at its peak over the call
    container_mem_peak_mb: float | None = None


@dataclass
class Summary:
    """One run's figures and the settings, image and host that produced them."""

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
    rtf: float | None = None
    rtfx: float | None = None
    latency_ms: dict[str, float] | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    inference_s: float | None = None
    container_s: float | None = None
    overhead_s: dict[str, float] | None = None
    peak_rss_mb: float | None = None  # the container process's resident peak, over peak_rss_scope
    peak_rss_scope: str | None = None  # process (since start, includes model load) | condition (reset at its start)
    audio_cache_mb: float | None = None  # decoded audio the harness held (cache, babble pool): not the backend's
    peak_rss_excl_audio_mb: float | None = None  # the backend's resident peak without the harness's audio
    peak_rss_excl_audio_method: str | None = None  # how it was taken (the container's, or the host's older rule)
    rss_after_load_mb: float | None = None
    model_size_mb: float | None = None
    n_params: int | None = None
    # Two different figures, never one in place of the other: torch's allocator peak counts tensors only
    # (no CUDA context, no cuDNN workspace); NVML's counts everything the run's processes hold on the GPU.
    peak_vram_torch_mb: float | None = None  # torch.cuda.max_memory_allocated, inside the container
    peak_vram_nvml_mb: float | None = None  # NVML memory of the run's own processes (incl. CUDA context)
    #: The container's memory as a timeline, read on the host from its cgroup (runner/telemetry/memory.py): the
    #: peak over the condition's own window, what was resident at its start, each window's peak, source, interval
    container_memory: dict[str, Any] | None = None
    quant_method: str | None = None  # how the backend realised the quant, where it says
    decode: dict[str, Any] = field(default_factory=dict)
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

    def mark_unavailable(self, name: str, reason: str) -> None:
        self.unavailable[name] = reason

    def to_json(self) -> dict[str, Any]:
        # "del" is the on-disk name (a Python keyword cannot be a field); keep the field's position. ``power``
        # is written only where an operating point was set, so summaries without one stay as they were.
        return {("del" if k == "deletions" else k): v for k, v in asdict(self).items()
                if not (k == "power" and v is None)}


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
