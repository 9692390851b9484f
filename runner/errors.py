"""The one exception type for problems a person can fix.

The CLI prints its message (one clear sentence, or several bullet lines when a
spec has several problems) to stderr without a traceback and exits with
``exit_code``; anything else is a bug and keeps its traceback in the debug log.
"""

from __future__ import annotations


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


def signal_name(exc: BaseException) -> str:
    """SIGTERM for the KeyboardInterrupt that the CLI's SIGTERM handler raises, else SIGINT (Ctrl-C)."""
    return getattr(exc, "signame", "SIGINT")


def interrupt_exit_code(exc: BaseException) -> int:
    """128 + the signal number, as shells report it: 130 for SIGINT, 143 for SIGTERM."""
    return 143 if signal_name(exc) == "SIGTERM" else 130
