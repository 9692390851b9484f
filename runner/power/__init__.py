"""Operating points (power modes, clocks, power limits) as sweep axes: check, apply, read back, observe, restore.

The order of things lives here, once: ``problems`` (before anything runs: does this device support the request,
may we change it; the host preflight, runner/host/preflight.py, asks it for every distinct request), then
``apply_operating_point`` around a group: save what is there, apply, read back (a mismatch such as clamping is
recorded, and with ``power.strict`` fails the group), settle (``power.settle_s``, recorded) so that the idle
baseline is measured at the operating point, observe while the group runs, and restore what was there before,
always: on success, on error, on Ctrl-C and on SIGTERM (the CLI turns SIGTERM into KeyboardInterrupt, so a
``finally`` runs; signals are held while restoring).

Controllers: jetson.py (nvpmodel, jetson_clocks, GPU devfreq) and nvidia.py (NVML locked clocks, power
limit). Every condition's summary carries the record (``Summary.power``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator, Sequence

from ..errors import UserError
from ..host.clock import SYSTEM_CLOCK, Clock
from .base import Controller, OperatingPoint, PowerError, mismatches
from .jetson import JetsonController
from .nvidia import NvidiaController
from .observe import DEFAULT_INTERVAL_S, Observer, summarize

__all__ = ["OperatingPoint", "OperatingPointWindow", "PowerRecord", "apply_operating_point", "controller_for",
           "detected_controller", "problems", "order_jobs", "operating_point_for"]

log = logging.getLogger(__name__)

JETSON_ONLY = ("mode", "jetson_clocks")
NVIDIA_ONLY = ("mem_freq_mhz", "gpu_power_limit_w")
#: Fields compared between the state before and the state restored (a current clock moves by itself).
RESTORED_FIELDS = ("mode_id", "mode_name", "jetson_clocks", "gpu_min_mhz", "gpu_max_mhz", "gpu_power_limit_w")


@dataclass(frozen=True)
class PowerRecord:
    """What one group asked for and got; ``to_json`` is the summary's ``power`` block. Frozen: each step of
    the operating point's window publishes a new one (``OperatingPointWindow.record``).

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


class OperatingPointWindow:
    """``with window:`` applies an operating point for the body and restores the device afterwards, always.

    ``record`` is the frozen PowerRecord as far as it has gone (``before`` and ``applied`` once applied;
    ``observed`` and ``restored`` once the ``with`` has ended, however it ended: a refusal, an error, Ctrl-C or
    SIGTERM); None when nothing was requested and the device cannot be read. The record is the window's to
    return, never carried on an exception: read it after the ``with``."""

    def __init__(self, power: Any, *, gpus: Sequence[str] | None = None, controller: Controller | None = None,
                 device: str | None = None, clock: Clock = SYSTEM_CLOCK,
                 observe_interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.record: PowerRecord | None = None
        self._cm = contextlib.contextmanager(_apply)(self, power, gpus, controller, device, clock, observe_interval_s)

    def __enter__(self) -> OperatingPointWindow:
        self._cm.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> bool | None:
        return self._cm.__exit__(*exc_info)


def apply_operating_point(power: Any, *, gpus: Sequence[str] | None = None, controller: Controller | None = None,
                          device: str | None = None, clock: Clock = SYSTEM_CLOCK,
                          observe_interval_s: float = DEFAULT_INTERVAL_S) -> OperatingPointWindow:
    """Apply ``power`` (PowerSettings) for the body of a ``with`` and restore the device afterwards, always.

    Nothing requested: the device is left as it is; where ``device`` names the run's device and this host has a
    Jetson or (for cuda) an NVIDIA GPU, the record still says what the operating point was and what was
    observed (``changed`` false). UserError when the device refuses the request, or with ``power.strict`` when
    the read-back differs from it: the device is restored first, and ``window.record`` says what happened.
    The settle (``power.settle_s``) and the observations run on ``clock``."""
    return OperatingPointWindow(power, gpus=gpus, controller=controller, device=device, clock=clock,
                                observe_interval_s=observe_interval_s)


def _apply(window: OperatingPointWindow, power: Any, gpus: Sequence[str] | None, controller: Controller | None,
           device: str | None, clock: Clock, observe_interval_s: float) -> Iterator[None]:
    """The window's body: the order of things (see the module doc); each step publishes the record so far."""
    if not power.requested():
        yield from _observed_only(window, device, gpus, clock, observe_interval_s)
        return
    ctl = controller or controller_for(power, gpus)
    rec = PowerRecord(controller=ctl.name, requested=power.requested(), strict=power.strict,
                      settle_s=power.settle_s)
    try:
        facts = ctl.facts()
    except Exception as exc:  # noqa: BLE001 - facts are context; their absence is recorded, not fatal
        facts = {"unavailable": f"{type(exc).__name__}: {exc}"}
    rec = window.record = replace(rec, facts=facts)
    try:
        before = ctl.read()
        saved = ctl.save()
    except PowerError as exc:
        raise UserError(f"could not read the {ctl.name} operating point before changing it: {exc}") from exc
    rec = window.record = replace(rec, before=before.to_json())
    observer: Observer | None = None
    try:
        try:
            ctl.apply(power)
            applied = ctl.read()
        except PowerError as exc:
            raise UserError(f"could not set the operating point {rec.requested}: {exc}") from exc
        rec = window.record = replace(rec, applied=applied.to_json(), mismatches=mismatches(power, applied))
        if rec.mismatches and power.strict:
            raise UserError("power.strict: the device is not at the requested operating point: "
                            + "; ".join(rec.mismatches))
        clock.sleep(power.settle_s)
        observer = Observer(ctl.observe, observe_interval_s, clock).start()
        yield
    finally:
        with _signals_held():
            if observer is not None:
                observer.stop()
                observed = summarize(observer.observations, ctl.unavailable())
                if observer.errors:
                    observed["errors"] = list(observer.errors)
                rec = window.record = replace(rec, observed=observed)
            window.record = _restore(ctl, saved, before, rec)


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


def _observed_only(window: OperatingPointWindow, device: str | None, gpus: Sequence[str] | None, clock: Clock,
                   observe_interval_s: float) -> Iterator[None]:
    """Nothing requested: record the operating point as found and observe it, change nothing. Reading is a
    courtesy here: any failure means no record, never a failed run."""
    try:
        ctl = detected_controller(device, gpus)
        rec = None
        if ctl is not None:
            before = ctl.read().to_json()
            rec = PowerRecord(controller=ctl.name, requested={}, strict=False, settle_s=0.0, changed=False,
                              facts=ctl.facts(), before=before, applied=before)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.debug("no operating point recorded: %s", exc)
        ctl = rec = None
    if ctl is None or rec is None:
        yield
        return
    window.record = rec
    observer = Observer(ctl.observe, observe_interval_s, clock).start()
    try:
        yield
    finally:
        observer.stop()
        window.record = replace(rec, observed=summarize(observer.observations, ctl.unavailable()))


def _restore(ctl: Controller, saved: Any, before: OperatingPoint, rec: PowerRecord) -> PowerRecord:
    """Put the device back as it was; the record with what was read back (or why it could not be)."""
    error = None
    try:
        ctl.restore(saved)
    except PowerError as exc:
        error = str(exc)
        log.warning("could not restore the %s operating point: %s", ctl.name, exc)
    try:
        restored = ctl.read().to_json()
    except PowerError as exc:
        return replace(rec, restore_error=(error + "; " if error else "") + f"read back: {exc}")
    was = before.to_json()
    return replace(rec, restore_error=error, restored=restored,
                   restore_mismatches=[f"{k}: was {was[k]!r}, restored {restored[k]!r}" for k in RESTORED_FIELDS
                                       if was[k] != restored[k]])


def operating_point_for(spec: Any, clock: Clock = SYSTEM_CLOCK) -> OperatingPointWindow:
    """The executor's default: ``spec.settings.power`` applied around the group on the run's GPUs; nothing
    requested, the operating point found is recorded where this host can read it (see apply_operating_point)."""
    return apply_operating_point(spec.settings.power, gpus=spec.gpus, device=spec.device, clock=clock)
