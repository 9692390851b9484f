# PYTHON_ARGCOMPLETE_OK  (argcomplete's marker: this program answers completion requests)
"""The `edgeasr` command: parse, dispatch to runner/commands/<name>.py, turn UserErrors into one clear message.

Exit codes: 0 success, 1 finished with failures, 2 bad input. Tracebacks of
unexpected errors go to the debug log file, not the terminal, unless -v.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import traceback
from pathlib import Path

from .commands.completion import enable as enable_completion
from .errors import Interrupted, UserError, interrupt_exit_code
from .untrusted import visible

COMMANDS = {
    "run": "transcribe a dataset in a backend container and report WER, RTF, latency and memory",
    "models": "install or list models",
    "images": "build the base and backend images",
    "check-image": "check that an image honours the entrypoint contract",
    "tegrastats": "parse tegrastats logs (one JSON object per line)",
    "energy": "integrate the energy of a window of a recorded tegrastats log",
    "noise": "preview a noise condition: one utterance as the model hears it",
    "sweep": "run an experiment file (backends x models x quants x noise x repeats), resumable",
    "report": "aggregate sweep and run folders into a table, figures and report.html",
    "compare": "compare a baseline's results with candidates': deltas, noise, regression gates (exit 1)",
    "data": "build study datasets: an input-length ladder of real speech",
    "schema": "print the JSON Schema of experiment files (for editors)",
    "doctor": "what this host can measure and what stands in the way, each with its fix (--json for bug reports)",
}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("edgeasr")
    except Exception:  # not installed (a checkout on PYTHONPATH)
        return "unknown"


def _common(defaults: bool) -> argparse.ArgumentParser:
    """-v and -q, accepted before and after the command (``edgeasr -v run`` and ``edgeasr run -v``).

    After the command they default to SUPPRESS, so that a flag given before it is not reset."""
    common = argparse.ArgumentParser(add_help=False)
    default = False if defaults else argparse.SUPPRESS
    common.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="show tracebacks of unexpected errors (default: off; they go to the debug log)")
    common.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="print only results and errors: no progress, no notes (default: off)")
    return common


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeasr", description="Benchmark ASR models where they will be deployed.",
                                     parents=[_common(True)])
    parser.add_argument("--version", action="version", version=f"edgeasr {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[_common(False)])
        module = importlib.import_module(f"runner.commands.{name.replace('-', '_')}")
        module.add_arguments(p)
        if name == "run":
            p.add_argument("--json", action="store_true",
                           help="print the summary as one JSON line on stdout, also when the run failed; "
                                "tables and progress go to stderr (default: off)")
    _state_defaults(parser)
    return parser


_MODELS_DIR_DEFAULT = "$EDGEASR_MODELS_DIR, else ./models"


def _state_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's help says its default (the settings' options say it with their units already): the ones
    written by hand get "(default: X)" appended where they do not say it, in every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _state_defaults(sub)
            continue
        if not action.option_strings or action.help in (None, argparse.SUPPRESS) or "default" in action.help:
            continue
        if action.dest == "models_dir":
            action.help += f" (default: {_MODELS_DIR_DEFAULT})"
        elif isinstance(action, (argparse._StoreTrueAction,)):
            action.help += " (default: off)"
        elif action.default not in (None, argparse.SUPPRESS, [], ()):
            shown = ", ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else action.default
            action.help += f" (default: {shown})"


def _sigterm(_signum, _frame):
    # Turn SIGTERM into an interruption (a KeyboardInterrupt) so that `finally` blocks remove containers;
    # commands catch it to record what finished (status interrupted) and name the signal.
    raise Interrupted("SIGTERM")


def debug_log_path() -> Path:
    """A per-user debug log ($XDG_CACHE_HOME/edgeasr/debug.log), never one shared path in /tmp."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "edgeasr" / "debug.log"


def _write_debug_log(text: str) -> Path | None:
    path = debug_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return path
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    enable_completion(parser)  # shell completion when argcomplete is installed; nothing otherwise
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        module = importlib.import_module(f"runner.commands.{args.command.replace('-', '_')}")
        return module.main(args)
    except UserError as exc:
        # a message quotes file names, ids, what an image said: shown visibly (the lines of a problem list kept)
        print(visible(f"edgeasr: {exc}", lines=True), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        stop = Interrupted.of(exc)
        print(visible(f"edgeasr: interrupted by {stop.signal}; {stop.hint or 'containers were removed'}"),
              file=sys.stderr)
        return interrupt_exit_code(stop)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _unexpected(args)
        where = f" while writing {exc.filename}" if exc.filename else ""
        print(visible(f"edgeasr: no space left on the device{where}; free some space and run the command again "
                      f"(files already written are complete; no partial file was left)"), file=sys.stderr)
        return 1
    except Exception:
        return _unexpected(args)


def _unexpected(args: argparse.Namespace) -> int:
    log = _write_debug_log(traceback.format_exc())
    if args.verbose:
        traceback.print_exc()
    where = f"traceback in {log}" if log else "run again with -v for the traceback"
    print(visible(f"edgeasr: unexpected error ({sys.exc_info()[1]!r}); {where}"), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
