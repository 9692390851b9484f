"""jtop sampler: Jetson power and RAM through the jetson-stats service (optional).

jetson-stats' `jtop` service reads the same INA3221 rails as tegrastats and
serves them over a socket; where it runs, it spares us a tegrastats child
process. It is optional: without the package or the service socket, probe()
says which is missing.
"""

from __future__ import annotations

import os

from typing import Any

from .base import DEFAULT_INTERVAL_MS, Availability, Sample, now_ns
from .polling import PollingSampler
from .tegrastats_parse import INPUT_RAIL_NAMES

SOCKET = "/run/jtop.sock"


def power_fields(power: dict[str, Any]) -> tuple[dict[str, float], float | None, str]:
    """(rails W, total W, total kind) from jtop's ``power`` dict, by the tegrastats parser's input-rail rule.

    jtop's ``tot`` is the input rail on boards that have one and a sum of rails on those that do
    not (AGX Xavier, AGX Orin); only a rail named in ``INPUT_RAIL_NAMES`` is an input rail, so a
    sum is labelled ``partial_sum_of_rails``, never ``input_rail``.
    """
    rails = {name: r["power"] / 1000.0 for name, r in (power.get("rail") or {}).items() if "power" in r}
    for name in INPUT_RAIL_NAMES:
        if name in rails:
            return rails, rails[name], f"input_rail:{name}"
    tot = power.get("tot") or {}
    if tot.get("name") in INPUT_RAIL_NAMES and "power" in tot:
        return rails, tot["power"] / 1000.0, f"input_rail:{tot['name']}"
    if rails:
        return rails, sum(rails.values()), "partial_sum_of_rails"
    return rails, None, "jtop reported no power rails"


class JtopSampler(PollingSampler):
    name = "jtop"

    def __init__(self, interval_ms: int = DEFAULT_INTERVAL_MS, socket_path: str = SOCKET) -> None:
        super().__init__(interval_ms)
        self._socket = socket_path
        self._jtop = None

    def probe(self) -> Availability:
        try:
            import jtop  # noqa: F401  (jetson-stats)
        except ImportError:
            return Availability.no("jetson-stats is not installed (pip install jetson-stats)")
        if not os.path.exists(self._socket):
            return Availability.no(f"the jtop service socket {self._socket} does not exist (is jtop.service running?)")
        return Availability.yes()

    def _open(self) -> None:
        from jtop import jtop

        self._jtop = jtop(interval=self.interval_ms / 1000.0)
        self._jtop.start()

    def _close(self) -> None:
        if self._jtop is not None:
            self._jtop.close()
            self._jtop = None

    def _read(self) -> Sample:
        rails, total_w, kind = power_fields(self._jtop.power)
        mem = self._jtop.memory.get("RAM", {})
        used_mb = mem["used"] / 1024.0 if "used" in mem else None  # jtop reports kB
        t_ns, mono_ns = now_ns()
        return Sample(t_ns=t_ns, mono_ns=mono_ns, power_w=rails, total_w=total_w, total_kind=kind, mem_used_mb=used_mb)
