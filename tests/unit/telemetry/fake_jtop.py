"""A FAKE of jetson-stats' ``jtop`` client, for unit tests (no Jetson and no jtop service exist here).

Not jetson-stats code: a stand-in with the calls the sampler makes (``jtop(interval=)``, ``start``, ``ok``,
``power``, ``memory``, ``close``) and the behaviour that matters for timing. Like the real client, the service
sends an update every ``interval`` seconds; ``ok()`` blocks until the next update has arrived and returns True
(False once closed); ``power`` and ``memory`` hold the last update's values, and reading them again before the
next update returns the same values. ``power`` has the real shape: ``{"rail": {name: {"volt", "curr", "power",
"online", "avg", ...}}, "tot": {...}}``, power in mW; a /sys/class/power_supply monitor (a USB-C source) carries
``status``, as jetson-stats reads it. ``updates`` records each update's (monotonic ns, total mW).

Stepped by the test (no thread, no sleeping): the service sends one update when the client
starts, then one per ``push()``, which returns once the client has taken it (the profile is read at
``len(updates) * interval`` seconds); after ``finish()`` it answers every ``ok()`` with a fresh update at once, so
that a sampler stopping reads its last sample without waiting.
"""

from __future__ import annotations

import threading
import time


class FakeJtop:
    def __init__(self, interval: float = 0.05, profile=None, supply_mw: int | None = None) -> None:
        self.interval = interval
        self._on_demand = False
        self.profile = profile or (lambda t_s: 5000)  # input power (mW) at seconds since start
        self.supply_mw = supply_mw
        self.updates: list[tuple[int, int]] = []
        self.power: dict = {}
        self.memory = {"RAM": {"used": 3_000_000, "tot": 7_800_000}}  # kB
        self._cond = threading.Condition()
        self._seq = 0
        self._seen = 0
        self._closed = False

    def start(self) -> None:
        self._t0 = time.monotonic()
        with self._cond:
            self._update_locked()

    def push(self, timeout_s: float = 10.0) -> None:
        """Send the next update and return once the client has read it."""
        with self._cond:
            self._update_locked()
            if not self._cond.wait_for(lambda: self._seen == self._seq or self._closed, timeout=timeout_s):
                raise AssertionError("the client did not read the update")

    def finish(self) -> None:
        """From now on every ok() gets a fresh update at once (the client is stopping)."""
        with self._cond:
            self._on_demand = True
            self._cond.notify_all()

    def _update_locked(self) -> None:
        t_s = len(self.updates) * self.interval
        mw = int(self.profile(t_s))
        rails = {"VDD_GPU_SOC": {"power": mw // 2, "online": True, "avg": mw // 2},
                 "VDD_CPU_CV": {"power": mw - mw // 2, "online": True, "avg": mw - mw // 2}}
        if self.supply_mw is not None:  # a USB-C source on /sys/class/power_supply
            rails["USBC000:001"] = {"power": self.supply_mw, "volt": 20000, "curr": self.supply_mw // 20,
                                    "online": True, "status": "Charging", "avg": self.supply_mw}
        self.power = {"rail": rails, "tot": {"power": sum(r["power"] for r in rails.values()), "avg": 0}}
        self._seq += 1
        self.updates.append((time.monotonic_ns(), mw))
        self._cond.notify_all()

    def ok(self) -> bool:
        with self._cond:
            while self._seq == self._seen and not self._closed:
                if self._on_demand:
                    self._update_locked()
                    break
                self._cond.wait(timeout=1.0)
            self._seen = self._seq
            self._cond.notify_all()  # a push() waits for this
            return not self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

