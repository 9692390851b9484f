"""`edgeasr tegrastats parse FILE|-`: one JSON object per tegrastats line, keyed by name."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import UserError
from ..telemetry.samplers.tegrastats_parse import parse_line


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="tegrastats_cmd", required=True)
    parse = sub.add_parser("parse", help="print one JSON object per line of a tegrastats log")
    parse.add_argument("file", help="a tegrastats log, or - for standard input")


def main(args: argparse.Namespace) -> int:
    try:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read {args.file}: {exc.strerror}") from None
    n_bad = 0
    with stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            record = parse_line(line)
            if record is None:
                n_bad += 1
                print(f"edgeasr: line {lineno} is not tegrastats output; skipped", file=sys.stderr)
                continue
            print(json.dumps(record.to_json()))
    return 1 if n_bad else 0
