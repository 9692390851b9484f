"""The energy block of one run as a frozen record, and the one function that writes it as summary.json's ``energy``.

``accounting.energy_block`` / ``accounting.unavailable_block`` build it and
``accounting.with_companions`` adds the samplers that ran beside it; nothing
changes it afterwards (``dataclasses.replace`` makes a new one), so the figures a
summary, a table and a test read are those that were computed. Field names carry
their units (``_j``, ``_w``, ``_ms``, ``_mib``: MiB) and are the JSON keys.

``to_json()`` writes the on-disk layout, which has two shapes: ``measured`` (the
inference window was found and the sampler ran) with every figure and its
provenance, and the short null shape (no sampler, or no inference window) whose
figures are all null with one reason each. Keys, their order and values are
pinned by tests/unit/telemetry/test_energy_block.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: The figures of the null shape, each null with the same reason (``unavailable_block``).
NULL_FIGURES = ("total_j", "dynamic_j", "j_per_audio_s", "j_per_utterance", "avg_w", "peak_w", "baseline_w")


def _frozen(value: Any) -> Any:
    """A read-only view of nested mappings, so that a frozen record's parts cannot be changed in place either."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


def _plain(value: Any) -> Any:
    """Plain dicts (JSON-ready, and the caller's to change) from ``_frozen`` views; records as their JSON."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, EnergyBlock):
        return value.to_json()
    return value


@dataclass(frozen=True)
class MemoryFigures:
    """The sampler's memory as a timeline, like power (issue 22, item 1): ``label`` is the sampler table's
    ``memory_label`` (``ram`` on Jetson, ``gpu_mem`` on NVML), the prefix of the JSON keys.

    The headline (``peak_mib``) is the peak over the condition's own window (its inference window), never the
    container's: a condition after a larger one in the same container no longer reports the larger one's
    memory. Beside it what was resident at its start (the last sample at or before it) and the rise over that,
    and each window's peak (load, warm-up, the condition, the whole container), on the sampler's clock."""

    label: str
    peak_mib: float | None  # the condition's own window
    peak_delta_mib: float | None  # the peak above the idle window's mean: what the model costs
    #: Whether the sampler lists the run's own processes (the table's ``process_memory``): then
    #: ``process_peak_mib`` is their peak over the condition's window (or null, its reason in ``unavailable``).
    per_process: bool = False
    process_peak_mib: float | None = None
    at_start_mib: float | None = None  # resident when the condition started (the last sample at or before it)
    rise_mib: float | None = None  # peak_mib - at_start_mib (negative when memory was returned)
    window_peaks_mib: Mapping[str, float | None] = field(default_factory=dict)  # window -> its peak
    clock: str | None = None  # the sampler's clock the windows were matched on
    interval_ms: float | None = None  # the achieved sampling interval: a peak shorter than this can be missed
    headline: str = ""  # which figure is the headline, in one sentence

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"{self.label}_peak_mib": self.peak_mib}
        out[f"{self.label}_peak_delta_mib"] = self.peak_delta_mib
        if self.per_process:
            out["gpu_process_mem_peak_mib"] = self.process_peak_mib
        out[f"{self.label}_at_start_mib"] = self.at_start_mib
        out[f"{self.label}_rise_mib"] = self.rise_mib
        out["memory_windows_mib"] = _plain(self.window_peaks_mib)
        out["memory_clock"] = self.clock
        out["memory_interval_ms"] = self.interval_ms
        out["memory_headline"] = self.headline
        return out


@dataclass(frozen=True)
class PsysFigure:
    """RAPL's platform (psys) counter over the inference window, reported only beside package+DRAM:
    ``psys_j`` is null unless ``check`` found it consistent with them over the idle window."""

    psys_j: float | None
    check: str  # "consistent with package+DRAM over the idle window", or why it is left out

    def to_json(self) -> dict[str, Any]:
        return {"psys_j": self.psys_j, "psys_check": self.check}


@dataclass(frozen=True)
class CombinedEnergy:
    """A sampler's inference energy plus its companions' (GPU + CPU on a CUDA host), where the sampler
    table names the sum (``SamplerRow.combined_key``); null when one part is, its reason in ``unavailable``."""

    key: str  # the JSON key prefix: gpu_plus_cpu -> gpu_plus_cpu_j, gpu_plus_cpu_scope
    total_j: float | None
    scope: str  # the parts' scopes joined with " + "

    def to_json(self) -> dict[str, Any]:
        return {f"{self.key}_j": self.total_j, f"{self.key}_scope": self.scope}


@dataclass(frozen=True)
class EnergyBlock:
    """One run's energy figures (summary.json's ``energy``); see runner/telemetry/energy/accounting.py for how each
    is measured. A figure that could not be measured is None with its reason in ``unavailable``, never 0.

    ``measured`` False is the null shape: no sampler ran (``source`` None) or the container recorded no
    inference window (then ``per_window``, ``n_samples`` and ``clock`` still say what was seen).
    """

    source: str | None  # the sampler's name (the sampler table's row)
    measured: bool = False
    total_kind: str | None = None  # the sampler's kind of total (input_rail:VDD_IN, nvml:sum_of_gpus, ...)
    scope: str | None = None  # what the figures cover, in words (board input, GPU, CPU package+DRAM)
    clock: str | None = None  # monotonic | wall: the clock the windows were cut on
    baseline_w: float | None = None
    baseline_source: str | None = None  # measured | given | loaded_idle | unavailable
    baseline_window_ns: tuple[int, int] | None = None  # the idle window, on ``clock``
    baseline_window_wall_ns: tuple[int, int] | None = None  # ... on the wall clock, for display
    baseline_cooldown: Mapping[str, Any] | None = None  # the wait for power to settle before the idle window
    host_idle_w: float | None = None  # the host idle, where the loaded idle is the baseline (baseline_source)
    loaded_idle_w: float | None = None  # container up, model loaded, doing nothing
    loaded_idle_uplift_w: float | None = None  # loaded_idle_w - baseline_w
    # the headline: the inference work less its prepare windows (what RTF covers too)
    total_j: float | None = None
    dynamic_j: float | None = None  # above the idle baseline
    avg_w: float | None = None
    inference_method: str | None = None  # how the headline was cut (prepare windows left out or not)
    method: str | None = None  # counter | trapezoid: how the inference window was integrated
    #: What makes the headline less certain than its samples suggest (bursts, gaps, lost samples) in the windows
    #: it is cut from, one sentence each; per window in ``per_window[name]["flags"]``.
    flags: tuple[str, ...] = ()
    peak_w: float | None = None
    j_per_audio_s: float | None = None
    dynamic_j_per_audio_s: float | None = None
    j_per_utterance: float | None = None
    per_audio_rule: str | None = None  # what j_per_audio_s and j_per_utterance divide, in one sentence
    #: figure -> how far it may be from the truth, in its own unit, from its samples (integrate.py: sample gaps
    #: times the power steps across them, plus the sensor's resolution times the duration): ``12.4 J ± 0.3``
    bounds: Mapping[str, float] = field(default_factory=dict)
    per_window: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # load, warmup, inference, ...
    per_rail: Mapping[str, float] = field(default_factory=dict)  # J per channel over the headline's work
    n_samples: int = 0
    interval_ms: float | None = None  # the timeline's mean sampling interval
    interval_ms_requested: int | None = None
    arrival: Mapping[str, Any] | None = None  # inter-arrival statistics and bursts (accounting.arrival_stats)
    psys: PsysFigure | None = None  # RAPL only, where it has a psys counter
    memory: MemoryFigures | None = None  # samplers that report memory, over the container window
    unavailable: Mapping[str, str] = field(default_factory=dict)  # figure -> why it is null
    companions: Mapping[str, EnergyBlock] = field(default_factory=dict)  # samplers of another scope beside it
    combined: CombinedEnergy | None = None  # its total plus the companions'

    def __post_init__(self) -> None:
        if not self.measured and (self.psys is not None or self.memory is not None):
            raise ValueError("an energy block without a measured inference window has no psys or memory figures")
        for name in ("baseline_cooldown", "bounds", "per_window", "per_rail", "arrival", "unavailable", "companions"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def to_json(self) -> dict[str, Any]:
        """summary.json's ``energy``: plain dicts, in the pinned key order of its shape."""
        if not self.measured:
            out: dict[str, Any] = {"source": self.source, "total_kind": self.total_kind, "scope": self.scope}
            out.update({name: getattr(self, name) for name in NULL_FIGURES})
            out.update(per_window=_plain(self.per_window), per_rail=_plain(self.per_rail), n_samples=self.n_samples,
                       interval_ms=self.interval_ms, unavailable=_plain(self.unavailable))
            if self.clock is not None:
                out["clock"] = self.clock
        else:
            out = {
                "source": self.source,
                "total_kind": self.total_kind,
                "scope": self.scope,
                "clock": self.clock,
                "baseline_w": self.baseline_w,
                "baseline_source": self.baseline_source,
                "baseline_window_ns": list(self.baseline_window_ns) if self.baseline_window_ns else None,
                "baseline_window_wall_ns": list(self.baseline_window_wall_ns) if self.baseline_window_wall_ns
                else None,
                "baseline_cooldown": _plain(self.baseline_cooldown),
                **({"host_idle_w": self.host_idle_w} if self.baseline_source == "loaded_idle" else {}),
                "loaded_idle_w": self.loaded_idle_w,
                "loaded_idle_uplift_w": self.loaded_idle_uplift_w,
                "total_j": self.total_j,
                "dynamic_j": self.dynamic_j,
                "avg_w": self.avg_w,
                "inference_method": self.inference_method,
                "method": self.method,
                "flags": list(self.flags),
                "peak_w": self.peak_w,
                "j_per_audio_s": self.j_per_audio_s,
                "dynamic_j_per_audio_s": self.dynamic_j_per_audio_s,
                "j_per_utterance": self.j_per_utterance,
                "per_audio_rule": self.per_audio_rule,
                "bounds": _plain(self.bounds),
                "per_window": _plain(self.per_window),
                "per_rail": _plain(self.per_rail),
                "n_samples": self.n_samples,
                "interval_ms": self.interval_ms,
                "interval_ms_requested": self.interval_ms_requested,
                "arrival": _plain(self.arrival),
            }
            if self.psys is not None:
                out.update(self.psys.to_json())
            if self.memory is not None:
                out.update(self.memory.to_json())
            out["unavailable"] = _plain(self.unavailable)
        if self.companions:
            out["companions"] = _plain(self.companions)
        if self.combined is not None:
            out.update(self.combined.to_json())
        return out
