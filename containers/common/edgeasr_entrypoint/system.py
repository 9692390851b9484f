"""Process facts the status record reports: peak and current RSS, library versions, sizes on disk.

Memory is MiB (2^20 bytes) and named ``_mib`` here; sizes on disk are MB (10^6 bytes, ``size_on_disk_mb``). The
status and event keys these fill keep the contract's ``_mb`` names (contract.NON_NEGATIVE_FIELDS says why)."""

from __future__ import annotations

import os
import resource
import sys
from importlib import metadata
from typing import Optional


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory since start or the last ``reset_peak_rss``
    (VmHWM; ru_maxrss, which cannot be reset, where /proc is missing). Both in KiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


_peak_before_resets_mib = 0.0  # the largest peak a reset wiped out, for the process-wide figure


def process_peak_rss_mib() -> float:
    """The process's resident peak since it started, resets or not (model load included)."""
    return max(_peak_before_resets_mib, peak_rss_mib())


def reset_peak_rss() -> bool:
    """Reset the resident high-water mark to the current RSS (Linux 4.0+: "5" to clear_refs), so that a
    sweep's condition reports its own peak, not an earlier condition's. False where the OS refuses."""
    global _peak_before_resets_mib
    _peak_before_resets_mib = max(_peak_before_resets_mib, peak_rss_mib())
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


#: How peak_rss_excl_audio_mb was taken (the condition_end event's and status' peak_rss_excl_audio_method).
EXCL_AUDIO_SPLIT = ("the largest of each backend call's resident peak (and the load's) less the audio the harness "
                    "held during it (constant during a call); the stretches between calls, where the harness decodes "
                    "audio and the backend waits, are left out")
EXCL_AUDIO_END = ("the resident peak less the audio the harness held at the end (this OS cannot reset the peak, "
                  "so a peak that came before the audio was cached is under-reported)")

_excl_audio_mib = None  # the largest of every PeakLedger's figure, for the process-wide one


class PeakLedger:
    """The resident peak split into stretches (at each backend call), each one's peak beside the harness's audio
    held then, so that the audio is taken off at the same instant as the peak it is part of (issue 22, item 7).

    ``close(held_mib)`` ends the stretch now: its peak, less ``held_mib`` (the audio held at its end; during a
    backend call the audio held does not change), and resets the high-water mark for the next one; with
    ``backend=False`` (the harness decoding audio between calls: its buffers are no backend's) the stretch counts
    in ``peak_mib`` only. Where the OS
    refuses the reset the stretches cannot be told apart: ``split`` is False and the figure falls back to the
    peak less the audio at the end (EXCL_AUDIO_END), saying so."""

    def __init__(self) -> None:
        self.peak_mib = 0.0
        self.excl_audio_mib = None
        self.split = True
        self.held_mib = 0.0

    def close(self, held_mib: float, backend: bool = True) -> None:
        global _excl_audio_mib
        peak = peak_rss_mib()
        self.peak_mib = max(self.peak_mib, peak)
        self.held_mib = held_mib
        if self.split:
            if backend:
                excl = peak - held_mib
                self.excl_audio_mib = excl if self.excl_audio_mib is None else max(self.excl_audio_mib, excl)
            self.split = reset_peak_rss()
        if not self.split:
            self.excl_audio_mib = self.peak_mib - held_mib
        if self.excl_audio_mib is not None:
            _excl_audio_mib = self.excl_audio_mib if _excl_audio_mib is None else max(_excl_audio_mib,
                                                                                     self.excl_audio_mib)

    @property
    def method(self) -> str:
        return EXCL_AUDIO_SPLIT if self.split else EXCL_AUDIO_END


def forget_excl_audio() -> None:
    """Start the process-wide figure afresh (main's start)."""
    global _excl_audio_mib
    _excl_audio_mib = None


def process_excl_audio_mib():
    """The largest peak-less-audio any ledger of this process took (None before the first)."""
    return _excl_audio_mib


def current_rss_mib() -> Optional[float]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def library_versions(names) -> dict:
    """Versions by distribution name: the imported module's __version__ where it is loaded (what actually
    runs, also for a source build whose metadata is missing or stale), else the package metadata, else None."""
    out = {}
    for name in names:
        module = sys.modules.get(name.replace("-", "_"))
        version = getattr(module, "__version__", None)
        if version:
            out[name] = str(version)
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def size_on_disk_mb(path: str) -> Optional[float]:
    """Total size of a model file or folder, or None when it is not a local path (a hub name)."""
    if os.path.isfile(path):
        return os.path.getsize(path) / 1e6
    if not os.path.isdir(path):
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total / 1e6
