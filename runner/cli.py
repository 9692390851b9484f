"""The `edgeasr` command: parse, dispatch to runner/commands/<name>.py, turn UserErrors into one clear message.

Exit codes: 0 success, 1 finished with failures, 2 bad input. Tracebacks of
unexpected errors go to the debug log file, not the terminal, unless -v.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from .errors import UserError

COMMANDS = {
    "run": "transcribe a dataset in a backend container and report WER, RTF, latency and memory",
    "models": "install or list models",
    "images": "build the base and backend images",
    "check-image": "check that an image honours the entrypoint contract",
    "tegrastats": "parse tegrastats logs (one JSON object per line)",
    "energy": "integrate the energy of a window of a recorded tegrastats log",
    "noise": "preview a noise condition: one utterance as the model hears it",
    "sweep": "run an experiment file (backends x models x quants x noise x repeats), resumable",
    "report": "aggregate a sweep's results into a table, figures and report.html",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeasr", description="Benchmark ASR models where they will be deployed.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("-q", "--quiet", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(f"runner.commands.{name.replace('-', '_')}")
        module.add_arguments(p)
        if name == "run":
            p.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
    return parser


def _sigterm(_signum, _frame):
    # Turn SIGTERM into KeyboardInterrupt so that `finally` blocks remove containers.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        module = importlib.import_module(f"runner.commands.{args.command.replace('-', '_')}")
        return module.main(args)
    except UserError as exc:
        print(f"edgeasr: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgeasr: interrupted; containers were removed", file=sys.stderr)
        return 130
    except Exception:
        log = Path(tempfile.gettempdir()) / "edgeasr-debug.log"
        log.write_text(traceback.format_exc())
        if args.verbose:
            traceback.print_exc()
        print(f"edgeasr: unexpected error ({sys.exc_info()[1]!r}); traceback in {log}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
