"""`edgeasr schema experiment`: print the JSON Schema of experiment files, for editors to complete and check.

Generated from the settings' metadata each time (runner/experiment/schema.py), so it always matches
the `edgeasr` that prints it; save it where an editor finds it (see README: Editor support).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..experiment.schema import experiment_schema
from ..results import write_text_atomic

SCHEMAS = {"experiment": experiment_schema}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("which", choices=tuple(SCHEMAS), help="the file kind: experiment (experiments/*.yaml)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write it here (default: stdout)")


def main(args: argparse.Namespace) -> int:
    text = json.dumps(SCHEMAS[args.which](), indent=2) + "\n"
    if args.out is None:
        print(text, end="")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, text)
    print(f"schema: {args.out}")
    return 0
