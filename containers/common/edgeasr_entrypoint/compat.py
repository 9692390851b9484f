"""Feature detection for adapters that meet older library APIs (the JetPack 5 images' whisperx 3.1-era,
faster-whisper 0.10 / 1.0 and CTranslate2 3.x builds), by what a function accepts or a module has, not by
version strings: those source builds carry whatever version their git checkout said.

An adapter asks which of its keyword arguments a library call accepts (`split_kwargs`); a missing feature
that would change the result is an error that names the installed version (`missing_feature`); one that
does not is recorded as a note, which the entrypoint copies into status.json (`compat`).
"""

from __future__ import annotations

import inspect
from typing import Callable, Dict, List, Optional, Tuple

from .system import library_versions


def accepted_parameters(func: Callable) -> Tuple[set, bool]:
    """The keyword names `func` accepts, and whether it also takes **kwargs (then it accepts anything)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # a C extension without a signature: assume it accepts what it is given
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def split_kwargs(func: Callable, kwargs: Dict) -> Tuple[Dict, List[str]]:
    """The kwargs that `func` accepts, and the sorted names of those it does not."""
    names, takes_any = accepted_parameters(func)
    if takes_any:
        return dict(kwargs), []
    kept = {k: v for k, v in kwargs.items() if k in names}
    return kept, sorted(k for k in kwargs if k not in names)


def installed_version(distribution: str) -> str:
    """The installed version of a library, as status.json reports it (system.library_versions)."""
    return library_versions([distribution])[distribution] or "of unknown version"


def missing_feature(what: str, distribution: str, fix: str = "") -> RuntimeError:
    """The error for a feature the installed library lacks: what is missing, the installed version, the fix."""
    version = installed_version(distribution)
    message = f"{what}, which this image's {distribution} {version} does not have"
    return RuntimeError(message + (f": {fix}" if fix else ""))


def check_compute_type(ctranslate2, device: str, compute_type: str) -> None:
    """Refuse a compute type the installed CTranslate2 does not support on this device, naming those it does:
    CTranslate2 itself would convert it to another one and only log a warning."""
    probe = getattr(ctranslate2, "get_supported_compute_types", None)
    if probe is None:
        return  # too old to ask; the load itself will say
    try:
        supported = set(probe(device))
    except Exception:  # no such device (e.g. no GPU visible): the model load reports it
        return
    if compute_type not in supported:
        raise missing_feature(f"compute type {compute_type} on {device}", "ctranslate2",
                              f"here it supports {', '.join(sorted(supported))}; pick another --quant")


def ct2_device(whisper_model) -> Optional[str]:
    """The device CTranslate2 loaded a faster-whisper model on (``WhisperModel.model.device``: ``auto`` resolved),
    for the adapter's ``info()["device_used"]``; None where this build does not say."""
    device = getattr(getattr(whisper_model, "model", None), "device", None)
    return str(device).split(":")[0] if device else None
