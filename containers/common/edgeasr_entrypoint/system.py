"""Process facts the status record reports: peak and current RSS, library versions, sizes on disk."""

from __future__ import annotations

import os
import resource
import sys
from importlib import metadata
from typing import Optional


def peak_rss_mb() -> float:
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


_peak_before_resets_mb = 0.0  # the largest peak a reset wiped out, for the process-wide figure


def process_peak_rss_mb() -> float:
    """The process's resident peak since it started, resets or not (model load included)."""
    return max(_peak_before_resets_mb, peak_rss_mb())


def reset_peak_rss() -> bool:
    """Reset the resident high-water mark to the current RSS (Linux 4.0+: "5" to clear_refs), so that a
    sweep's condition reports its own peak, not an earlier condition's. False where the OS refuses."""
    global _peak_before_resets_mb
    _peak_before_resets_mb = max(_peak_before_resets_mb, peak_rss_mb())
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> Optional[float]:
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
