# PYTHON_ARGCOMPLETE_OK  (argcomplete's marker: this program answers completion requests)
"""The `edgeasr` command: parse, dispatch to runner/commands/<name>.py, turn UserErrors into one clear message.

Exit codes: 0 success, 1 finished with failures, 2 bad input. Tracebacks of
unexpected errors go to the debug log file, not the terminal, unless -v.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import importlib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import Interrupted, UserError, interrupt_exit_code
from .trust.untrusted import visible

COMMANDS = {
    "run": "transcribe a dataset in a backend container and report WER, RTF, latency and memory",
    "models": "install or list models",
    "images": "build the base and backend images",
    "check-image": "check that an image honours the entrypoint contract",
    "tegrastats": "parse tegrastats logs (one JSON object per line)",
    "energy": "integrate the energy of a window of a recorded tegrastats log",
    "noise": "preview a noise condition: one utterance as the model hears it",
    "sweep": "run an experiment file (backends x models x quants x noise x repeats), resumable",
    "capacity": "find the most live streams this device sustains under a p99 finalization latency target "
                "(stream mode; doubling, then bisection), resumable",
    "report": "aggregate sweep and run folders into a table, figures and report.html",
    "compare": "compare a baseline's results with candidates': deltas, noise, regression gates (exit 1)",
    "data": "build study datasets: an input-length ladder of real speech",
    "schema": "print the JSON Schema of experiment files (for editors)",
    "doctor": "what this host can measure and what stands in the way, each with its fix (--json for bug reports)",
}


def error_object(message: str, exit_code: int, problems: list[str] | None = None) -> str:
    """What ``--json`` prints on stdout when a command fails before it has a result of its own (bad input, a
    refused flag, an interrupt, an unexpected error): one JSON line, as a summary would be, so a script that reads
    stdout always gets an object; the exit code is the command's own. JSON escapes every control character."""
    return json.dumps({"status": "error", "error": message, "problems": list(problems or []),
                       "exit_code": exit_code})


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are also a JSON error object on stdout when ``--json`` was given
    (``json_wanted``, set by main from the command line), exit code 2 kept."""

    json_wanted = False

    def error(self, message: str):  # type: ignore[override]
        if _Parser.json_wanted:
            print(error_object(f"{self.prog}: {message}", 2), flush=True)
        super().error(message)


class _VersionAction(argparse.Action):
    """``--version``: the installed version, read (importlib.metadata, tens of ms) only when asked for, not at
    every start."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        print(f"edgeasr {_version()}")
        parser.exit()


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


def command_named(argv: Sequence[str]) -> str | None:
    """The command a command line names: its first word that is not an option (the top-level options take no
    value), None where there is none or it names no command (argparse then says so)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line's parser; ``commands`` limits the subcommands whose options are added (their
    modules imported) to those named, None meaning all.

    Why: each command's module imports what it runs (docker, numpy, the report's matplotlib); ``main`` adds only
    the command being run, so ``edgeasr --help`` or ``edgeasr sweep`` does not pay the other commands' imports
    at every start (tests/unit/test_cli_imports.py pins it)."""
    wanted = None if commands is None else set(commands)
    parser = _Parser(prog="edgeasr", description="Benchmark ASR models where they will be deployed.",
                     parents=[_common(True)])
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[_common(False)])
        if wanted is not None and name not in wanted:
            continue
        module = importlib.import_module(f"runner.commands.{name.replace('-', '_')}")
        module.add_arguments(p)
        if name == "run":
            output = next((g for g in p._action_groups if g.title == "output"), p)
            output.add_argument("--json", action="store_true",
                                help="print the summary as one JSON line on stdout, also when the run failed "
                                     "(where it failed before it had one, bad input included, a JSON error "
                                     "object); tables and progress go to stderr (default: off)")
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
    words = sys.argv[1:] if argv is None else argv
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: every command's options, then exit
        from .commands.completion import enable as enable_completion

        enable_completion(_parser())  # argcomplete answers and exits; nothing happens without argcomplete
    command = command_named(words)
    parser = _parser([command] if command else [])
    _Parser.json_wanted = "--json" in words
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    as_json = bool(getattr(args, "json", False))

    def failed(message: str, code: int, problems: list[str] | None = None) -> int:
        """The one clear message on stderr and, with --json, its JSON error object on stdout (unless the
        command printed its own result already)."""
        # a message quotes file names, ids, what an image said: shown visibly (the lines of a problem list kept)
        print(visible(f"edgeasr: {message}", lines=True), file=sys.stderr)
        if as_json and not getattr(args, "result_printed", False):  # run --json printed its summary already
            print(error_object(message.split("\n", 1)[0] if problems else message, code, problems), flush=True)
        return code

    try:
        module = importlib.import_module(f"runner.commands.{args.command.replace('-', '_')}")
        return module.main(args)
    except UserError as exc:
        return failed(str(exc), exc.exit_code, exc.problems)
    except KeyboardInterrupt as exc:
        stop = Interrupted.of(exc)
        return failed(f"interrupted by {stop.signal}; {stop.hint or 'containers were removed'}",
                      interrupt_exit_code(stop))
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _unexpected(args, failed)
        where = f" while writing {exc.filename}" if exc.filename else ""
        return failed(f"no space left on the device{where}; free some space and run the command again "
                      f"(files already written are complete; no partial file was left)", 1)
    except Exception:
        return _unexpected(args, failed)


def _unexpected(args: argparse.Namespace, failed) -> int:
    log = _write_debug_log(traceback.format_exc())
    if args.verbose:
        traceback.print_exc()
    where = f"traceback in {log}" if log else "run again with -v for the traceback"
    return failed(f"unexpected error ({sys.exc_info()[1]!r}); {where}", 1)


def run() -> None:
    """`edgeasr` as a program: main(), then the process ends with its code once its output is flushed and the
    exit hooks (atexit) have run, without the interpreter's teardown of every module and object, which measured
    0.2-0.5 s at the end of each sweep (the report's stack is loaded by then; issue 26 item 2). Every file a
    command writes is closed before main() returns (atomic writes), so nothing is lost; where a thread that is
    not a daemon still runs, the interpreter waits for it as ever. main() itself returns (the tests call it)."""
    code = main()
    running = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not isinstance(code, int) or running:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe: nothing more can be said through it
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
