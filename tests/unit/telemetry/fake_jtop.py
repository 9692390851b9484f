"""A FAKE of jetson-stats' ``jtop`` client, for unit tests (no Jetson and no jtop service exist here).

Not jetson-stats code: a stand-in with the calls the sampler makes (``jtop(interval=)``, ``start``, ``ok``,
``power``, ``memory``, ``close``) and the behaviour that matters for timing. Like the real client, the service
sends an update every ``interval`` seconds; ``ok()`` blocks until the next update has arrived and returns True
(False once closed); ``power`` and ``memory`` hold the last update's values, and reading them again before the
next update returns the same values. ``power`` has the real shape: ``{"rail": {name: {"volt", "curr", "power",
"online", "avg", ...}}, "tot": {...}}``, power in mW; a /sys/class/power_supply monitor (a USB-C source) carries
``status``, as jetson-stats reads it. ``updates`` records each update's (monotonic ns, total mW).
"""

from __future__ import annotations

import threading
import time


class FakeJtop:
    def __init__(self, interval: float = 0.05, profile=None, supply_mw: int | None = None) -> None:
        self.interval = interval
        self.profile = profile or (lambda t_s: 5000)  # input power (mW) at seconds since start
        self.supply_mw = supply_mw
        self.updates: list[tuple[int, int]] = []
        self.power: dict = {}
        self.memory = {"RAM": {"used": 3_000_000, "tot": 7_800_000}}  # kB
        self._cond = threading.Condition()
        self._seq = 0
        self._seen = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._service, daemon=True)
        self._thread.start()

    def _service(self) -> None:
        while not self._closed:
            mw = int(self.profile(time.monotonic() - self._t0))
            rails = {"VDD_GPU_SOC": {"power": mw // 2, "online": True, "avg": mw // 2},
                     "VDD_CPU_CV": {"power": mw - mw // 2, "online": True, "avg": mw - mw // 2}}
            if self.supply_mw is not None:  # a USB-C source on /sys/class/power_supply
                rails["USBC000:001"] = {"power": self.supply_mw, "volt": 20000, "curr": self.supply_mw // 20,
                                        "online": True, "status": "Charging", "avg": self.supply_mw}
            with self._cond:
                self.power = {"rail": rails, "tot": {"power": sum(r["power"] for r in rails.values()), "avg": 0}}
                self._seq += 1
                self.updates.append((time.monotonic_ns(), mw))
                self._cond.notify_all()
            time.sleep(self.interval)

    def ok(self) -> bool:
        with self._cond:
            while self._seq == self._seen and not self._closed:
                self._cond.wait(timeout=1.0)
            self._seen = self._seq
            return not self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
