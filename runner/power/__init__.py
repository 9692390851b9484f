"""Operating points (power modes, clocks, power limits) as sweep axes: check, apply, read back, observe, restore.

The order of things lives here, once: ``problems`` (before anything runs: does this device support the
request, may we change it; the host preflight, runner/host/preflight.py, asks it for every distinct request), then ``apply_operating_point`` around a group: save what is there, apply, read
back (a mismatch such as clamping is recorded, and with ``power.strict`` fails the group), settle
(``power.settle_s``, recorded) so that the idle baseline is measured at the operating point, observe while
the group runs, and restore what was there before, always: on success, on error, on Ctrl-C and on SIGTERM
(the CLI turns SIGTERM into KeyboardInterrupt, so a ``finally`` runs; signals are held while restoring).

Controllers: jetson.py (nvpmodel, jetson_clocks, GPU devfreq) and nvidia.py (NVML locked clocks, power
limit). Every condition's summary carries the record (``Summary.power``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ..errors import UserError
from .base import Controller, OperatingPoint, PowerError, mismatches
from .jetson import JetsonController
from .nvidia import NvidiaController
from .observe import DEFAULT_INTERVAL_S, Observer, summarize

__all__ = ["OperatingPoint", "PowerRecord", "apply_operating_point", "controller_for", "detected_controller",
           "problems",
           "order_jobs", "operating_point_for"]

log = logging.getLogger(__name__)

JETSON_ONLY = ("mode", "jetson_clocks")
NVIDIA_ONLY = ("mem_freq_mhz", "gpu_power_limit_w")
#: Fields compared between the state before and the state restored (a current clock moves by itself).
RESTORED_FIELDS = ("mode_id", "mode_name", "jetson_clocks", "gpu_min_mhz", "gpu_max_mhz", "gpu_power_limit_w")


@dataclass
class PowerRecord:
    """What one group asked for and got; ``to_json`` is the summary's ``power`` block.

    ``before``: the operating point found; ``applied``: read back after applying; ``mismatches``: each requested
    field the read-back does not show; ``observed``: clocks/temperatures/throttling while the group ran (from
    the settle's end to the restore: the idle baseline and the run); ``restored``: read back after restoring,
    with ``restore_mismatches`` against ``before`` and ``restore_error`` when the device refused.
    """

    controller: str
    requested: dict[str, Any]
    strict: bool
    settle_s: float
    changed: bool = True  # False: nothing was requested; the record only says what the device was at
    before: dict[str, Any] | None = None
    applied: dict[str, Any] | None = None
    mismatches: list[str] = field(default_factory=list)
    observed: dict[str, Any] | None = None
    restored: dict[str, Any] | None = None
    restore_mismatches: list[str] = field(default_factory=list)
    restore_error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def controller_for(power: Any, gpus: Sequence[str] | None = None) -> Controller:
    """The controller a request needs: Jetson for modes and jetson_clocks, NVIDIA for memory clocks and power
    limits, and for a GPU clock alone whichever this host is (a Jetson when it has nvpmodel.conf or a GPU
    devfreq node). UserError when one request mixes the two."""
    jetson = [n for n in JETSON_ONLY if getattr(power, n) is not None]
    nvidia = [n for n in NVIDIA_ONLY if getattr(power, n) is not None]
    if jetson and nvidia:
        raise UserError(f"power.{jetson[0]} (Jetson) and power.{nvidia[0]} (NVIDIA GPU) cannot be set together; "
                        f"a device is one or the other")
    if jetson:
        return JetsonController()
    if nvidia:
        return NvidiaController(tuple(gpus) if gpus else None)
    candidate = JetsonController()
    return candidate if candidate.present() else NvidiaController(tuple(gpus) if gpus else None)


def problems(power: Any, gpus: Sequence[str] | None = None) -> list[str]:
    """Why this host cannot take ``power`` (PowerSettings), before anything runs; [] when it can (or nothing
    is requested). Each names the setting and the allowed values, or the permission and how to grant it."""
    if not power.requested():
        return []
    try:
        ctl = controller_for(power, gpus)
    except UserError as exc:
        return [str(exc)]
    return ctl.problems(power)


def order_jobs(jobs: Sequence[Any]) -> list[Any]:
    """Groups reordered so that each power mode's groups run together (a mode switch takes seconds and
    disturbs the baseline); otherwise the planned order, modes in the order they first appear."""
    first: dict[Any, int] = {}
    for job in jobs:
        first.setdefault(_mode_of(job), len(first))
    return sorted(jobs, key=lambda job: first[_mode_of(job)])  # stable: the plan's order within a mode


def _mode_of(job: Any) -> Any:
    power = getattr(getattr(job.spec, "settings", None), "power", None)
    return None if power is None else power.mode


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait while the device is being put back (a second Ctrl-C must not leave it half
    restored); only the main thread can change handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def apply_operating_point(power: Any, *, gpus: Sequence[str] | None = None, controller: Controller | None = None,
                          device: str | None = None, sleep: Callable[[float], None] = time.sleep,
                          observe_interval_s: float = DEFAULT_INTERVAL_S) -> Iterator[PowerRecord | None]:
    """Apply ``power`` (PowerSettings) for the body and restore the device afterwards, always.

    Yields the PowerRecord (filled in as it goes; ``restored`` after the body). Nothing requested: the device
    is left as it is; where ``device`` names the run's device and this host has a Jetson or (for cuda) an
    NVIDIA GPU, the record still says what the operating point was and what was observed (``changed`` false),
    else None. UserError when the device refuses the request, or with ``power.strict`` when the read-back
    differs from it: the device is restored first."""
    if not power.requested():
        with _observed_only(device, gpus, observe_interval_s) as rec:
            yield rec
        return
    ctl = controller or controller_for(power, gpus)
    rec = PowerRecord(controller=ctl.name, requested=power.requested(), strict=power.strict,
                      settle_s=power.settle_s)
    try:
        rec.facts = ctl.facts()
    except Exception as exc:  # noqa: BLE001 - facts are context; their absence is recorded, not fatal
        rec.facts = {"unavailable": f"{type(exc).__name__}: {exc}"}
    try:
        before = ctl.read()
        saved = ctl.save()
    except PowerError as exc:
        raise UserError(f"could not read the {ctl.name} operating point before changing it: {exc}") from exc
    rec.before = before.to_json()
    observer: Observer | None = None
    entered = False
    try:
        try:
            ctl.apply(power)
            applied = ctl.read()
        except PowerError as exc:
            raise UserError(f"could not set the operating point {rec.requested}: {exc}") from exc
        rec.applied = applied.to_json()
        rec.mismatches = mismatches(power, applied)
        if rec.mismatches and power.strict:
            raise UserError("power.strict: the device is not at the requested operating point: "
                            + "; ".join(rec.mismatches))
        sleep(power.settle_s)
        observer = Observer(ctl.observe, observe_interval_s).start()
        entered = True
        yield rec
    except (UserError, KeyboardInterrupt) as exc:
        if not entered:  # refused or interrupted before the body ran: the record (restored below) travels along
            exc.power_record = rec  # type: ignore[union-attr]
        raise
    finally:
        with _signals_held():
            if observer is not None:
                observer.stop()
                rec.observed = summarize(observer.observations, ctl.unavailable())
                if observer.errors:
                    rec.observed["errors"] = list(observer.errors)
            _restore(ctl, saved, before, rec)


def detected_controller(device: str | None, gpus: Sequence[str] | None = None) -> Controller | None:
    """The controller that can read this host's operating point for a run on ``device`` without changing it:
    a Jetson's (nvpmodel on PATH), or for a cuda run an NVIDIA GPU's that NVML sees; None elsewhere."""
    if device is None:
        return None
    jetson = JetsonController()
    if jetson.present() and jetson.tool("nvpmodel") is not None:
        return jetson
    if device == "cuda":
        nvidia = NvidiaController(tuple(gpus) if gpus else None)
        if nvidia.present() is None:
            return nvidia
    return None


@contextlib.contextmanager
def _observed_only(device: str | None, gpus: Sequence[str] | None,
                   observe_interval_s: float) -> Iterator[PowerRecord | None]:
    """Nothing requested: record the operating point as found and observe it, change nothing. Reading is a
    courtesy here: any failure means no record, never a failed run."""
    try:
        ctl = detected_controller(device, gpus)
        rec = None
        if ctl is not None:
            rec = PowerRecord(controller=ctl.name, requested={}, strict=False, settle_s=0.0, changed=False,
                              facts=ctl.facts(), before=ctl.read().to_json())
            rec.applied = rec.before
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.debug("no operating point recorded: %s", exc)
        ctl = rec = None
    if ctl is None or rec is None:
        yield None
        return
    observer = Observer(ctl.observe, observe_interval_s).start()
    try:
        yield rec
    finally:
        observer.stop()
        rec.observed = summarize(observer.observations, ctl.unavailable())


def _restore(ctl: Controller, saved: Any, before: OperatingPoint, rec: PowerRecord) -> None:
    try:
        ctl.restore(saved)
    except PowerError as exc:
        rec.restore_error = str(exc)
        log.warning("could not restore the %s operating point: %s", ctl.name, exc)
    try:
        restored = ctl.read()
    except PowerError as exc:
        rec.restore_error = (rec.restore_error + "; " if rec.restore_error else "") + f"read back: {exc}"
        return
    rec.restored = restored.to_json()
    was = before.to_json()
    rec.restore_mismatches = [f"{k}: was {was[k]!r}, restored {rec.restored[k]!r}" for k in RESTORED_FIELDS
                              if was[k] != rec.restored[k]]


def operating_point_for(spec: Any) -> contextlib.AbstractContextManager:
    """The executor's default: ``spec.settings.power`` applied around the group on the run's GPUs; nothing
    requested, the operating point found is recorded where this host can read it (see apply_operating_point)."""
    return apply_operating_point(spec.settings.power, gpus=spec.gpus, device=spec.device)
