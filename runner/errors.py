"""The one exception type for problems a person can fix.

The CLI prints its message (one clear sentence, or several bullet lines when a
spec has several problems) to stderr without a traceback and exits with
``exit_code``; anything else is a bug and keeps its traceback in the debug log.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """Bad input or a missing prerequisite, explained so that a person can fix it.

    ``exit_code`` follows the CLI convention: 2 for bad input (the default),
    1 for a run that started and finished with failures.
    """

    def __init__(self, message: str, *, exit_code: int = 2, problems: list[str] | None = None):
        self.problems = list(problems or [])
        text = message
        if self.problems:
            text = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)
        self.exit_code = exit_code


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM ended the work; what was kept is on disk.

    A KeyboardInterrupt, so that every ``finally`` (container removal, an operating point's restore) runs on
    its way up. The facts travel as fields, never as attributes pinned on a bare exception: ``signal``
    (``SIGINT`` or ``SIGTERM``), ``hint`` (what was kept and how to go on, for the CLI's last line) and
    ``power`` (the operating point's record, runner/power.PowerRecord, when one was set around the work)."""

    def __init__(self, signal: str = "SIGINT", hint: str | None = None, power: Any = None) -> None:
        super().__init__(signal)
        self.signal = signal
        self.hint = hint
        self.power = power

    @classmethod
    def of(cls, exc: BaseException) -> Interrupted:
        """``exc`` as an Interrupted: itself, or a bare KeyboardInterrupt (Python's own, on Ctrl-C) as SIGINT."""
        return exc if isinstance(exc, Interrupted) else cls("SIGINT")

    def with_hint(self, hint: str) -> Interrupted:
        """The same interruption, told what was kept and how to go on."""
        return Interrupted(self.signal, hint, self.power)

    def with_power(self, power: Any) -> Interrupted:
        """The same interruption, with the operating point's record of the work it ended."""
        return Interrupted(self.signal, self.hint, power)


def signal_name(exc: BaseException) -> str:
    """SIGTERM for the interruption that the CLI's SIGTERM handler raises, else SIGINT (Ctrl-C)."""
    return Interrupted.of(exc).signal


def interrupt_exit_code(exc: BaseException) -> int:
    """128 + the signal number, as shells report it: 130 for SIGINT, 143 for SIGTERM."""
    return 143 if signal_name(exc) == "SIGTERM" else 130
