"""jtop sampler: Jetson power and RAM through the jetson-stats service (optional).

jetson-stats' `jtop` service reads the same INA3221 rails as tegrastats and
serves them over a socket; where it runs, it spares us a tegrastats child
process. It is optional: without the package or the service socket, probe()
says which is missing.

The service sends its readings at its own pace. Reading ``jtop.power`` on a
timer of our own would return the last update again and again, each copy
stamped at a different time, so a reading here waits for the service's next
update (``jtop.ok()``, which returns when one has arrived) and is stamped then:
one sample per update, at the update.

jtop lists ``/sys/class/power_supply`` monitors (a USB-C source, a battery)
among the INA3221 rails. They measure what comes into the board from outside,
not a part of it: a sum of rails that included one would count the board twice,
so they are left out of the rails (and so of every sum, the per-rail figure's
stack too) and kept in ``extras["power_supply_w"]`` (``is_power_supply``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any

from ...host.clock import SYSTEM_CLOCK, Clock
from .base import DEFAULT_INTERVAL_MS, Availability, Sample, now_ns
from .polling import PollingSampler
from .tegrastats_parse import INPUT_RAIL_NAMES

SOCKET = "/run/jtop.sock"
#: Names jtop gives /sys/class/power_supply monitors (it strips "ucsi-source-psy-" from a USB-C source's folder).
_POWER_SUPPLY_NAME = re.compile(r"^(ucsi|usbc|usb|bat|battery|ac|adp)", re.IGNORECASE)


def is_power_supply(name: str, rail: dict[str, Any]) -> bool:
    """Whether jtop's rail ``name`` is a /sys/class/power_supply monitor, not an INA3221 rail: it carries the
    power_supply ``status`` (INA3221 rails never do), or its name is a USB-C source's or a battery's."""
    return "status" in rail or bool(_POWER_SUPPLY_NAME.match(name))


def power_fields(power: dict[str, Any]) -> tuple[dict[str, float], float | None, str]:
    """(rails W, total W, total kind) from jtop's ``power`` dict, by the tegrastats parser's input-rail rule.

    jtop's ``tot`` is the input rail on boards that have one and a sum of rails on those that do
    not (AGX Xavier, AGX Orin); only a rail named in ``INPUT_RAIL_NAMES`` is an input rail, so a
    sum is labelled ``partial_sum_of_rails``, never ``input_rail``. The rails and the sum are the INA3221
    rails only: jtop's own ``tot`` adds the power_supply monitors in (see ``power_supply_w``).
    """
    raw = power.get("rail") or {}
    rails = {name: r["power"] / 1000.0 for name, r in raw.items() if "power" in r and not is_power_supply(name, r)}
    for name in INPUT_RAIL_NAMES:
        if name in rails:
            return rails, rails[name], f"input_rail:{name}"
    tot = power.get("tot") or {}
    if tot.get("name") in INPUT_RAIL_NAMES and "power" in tot:
        return rails, tot["power"] / 1000.0, f"input_rail:{tot['name']}"
    if rails:
        return rails, sum(rails.values()), "partial_sum_of_rails"
    return rails, None, "jtop reported no power rails"


def power_supply_w(power: dict[str, Any]) -> dict[str, float]:
    """The power_supply monitors jtop lists among its rails (W): what comes into the board, kept apart."""
    return {name: r["power"] / 1000.0 for name, r in (power.get("rail") or {}).items()
            if "power" in r and is_power_supply(name, r)}


def _jtop_class() -> Callable[..., Any]:
    from jtop import jtop  # jetson-stats, imported only where it is used

    return jtop


class JtopSampler(PollingSampler):
    name = "jtop"

    def __init__(self, interval_ms: int = DEFAULT_INTERVAL_MS, socket_path: str = SOCKET,
                 jtop_class: Callable[..., Any] | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(interval_ms, clock)
        self._socket = socket_path
        self._jtop_class = jtop_class  # tests inject a fake of jtop's client
        self._jtop = None

    def probe(self) -> Availability:
        if self._jtop_class is None:
            try:
                import jtop  # noqa: F401  (jetson-stats)
            except ImportError:
                return Availability.no("jetson-stats is not installed (pip install jetson-stats)")
        if not os.path.exists(self._socket):
            return Availability.no(f"the jtop service socket {self._socket} does not exist (is jtop.service running?)")
        return Availability.yes()

    def _open(self) -> None:
        self._jtop = (self._jtop_class or _jtop_class())(interval=self.interval_ms / 1000.0)
        self._jtop.start()

    def _close(self) -> None:
        if self._jtop is not None:
            self._jtop.close()
            self._jtop = None

    def _start(self) -> None:
        # Paced by the service: each reading waits for its next update (jtop.ok()), so no cadence of the clock's
        # (a timer beside the service's own would skip every other update after a blocking read).
        self._open()
        self._wake = threading.Event()
        self.sample_now()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-sampler", daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=max(2.0, 5 * self.interval_ms / 1000.0))
        try:
            self.sample_now()
        finally:
            self._close()

    def _run(self) -> None:
        while not self._wake.is_set():
            if self.sample_now() is None:
                self._wake.wait(self.interval_ms / 1000.0)  # the service is gone: do not spin

    def _read(self) -> Sample:
        if not self._jtop.ok():  # blocks until the service's next update
            raise RuntimeError("the jtop service sent no update (jtop.ok() is False): is jtop.service running?")
        t_ns, mono_ns = now_ns(self.clock)  # stamped by the update it waited for
        power = self._jtop.power
        rails, total_w, kind = power_fields(power)
        mem = self._jtop.memory.get("RAM", {})
        used_mib = mem["used"] / 1024.0 if "used" in mem else None  # jtop reports kB
        supplies = power_supply_w(power)
        return Sample(t_ns=t_ns, mono_ns=mono_ns, power_w=rails, total_w=total_w, total_kind=kind, mem_used_mib=used_mib,
                      extras={"power_supply_w": supplies} if supplies else {})
