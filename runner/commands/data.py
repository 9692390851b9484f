"""`edgeasr data lengths`: build datasets for particular studies from an existing one.

``lengths`` joins whole utterances of ``--from`` into items near each of ``--seconds``
(runner/data/lengths.py), for latency-against-length studies; the result is a manifest
dataset that ``edgeasr run --data`` and experiment files read like any other. Between the utterances it puts
non-speech (``--gap-type``: silence or a noise type at ``--gap-dbfs``, of a seeded duration from ``--gap-s`` to
``--gap-max-s``), and each manifest row records where every speech and non-speech segment lies (issue 24).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from ..data.dataset import MANIFEST_NAME
from ..data.lengths import DEFAULT_GAP_DBFS, DEFAULT_GAP_S, build_ladder, parse_seconds
from ..data.nonspeech import NONSPEECH_KINDS
from ..data.load import load_dataset
from ..trust.untrusted import visible


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_cmd", required=True)
    ln = sub.add_parser("lengths", help="join whole utterances into items of given lengths (real speech)",
                        description="Join whole utterances of a dataset (and their references) into items near "
                                    "each length, for latency-against-length studies.")
    ln.add_argument("--from", dest="source", required=True, metavar="DATA",
                    help="the dataset to take speech from (a folder or manifest, as for run --data; hf:... too)")
    ln.add_argument("--seconds", required=True, metavar="LIST",
                    help="target lengths in seconds, comma-separated, e.g. 1,2,5,10,20,30")
    ln.add_argument("--out", type=Path, required=True, metavar="DIR",
                    help="a new folder for manifest.jsonl and audio/*.flac")
    ln.add_argument("--per-length", type=int, default=3, metavar="N",
                    help="items per length, each starting at a different utterance (default: 3)")
    ln.add_argument("--gap-s", type=float, default=DEFAULT_GAP_S, metavar="S",
                    help=f"non-speech between joined utterances in seconds; with --gap-max-s, the shortest "
                         f"(default: {DEFAULT_GAP_S:g})")
    ln.add_argument("--gap-max-s", type=float, default=None, metavar="S",
                    help="draw each gap's length uniformly from --gap-s to this, seeded (default: every gap --gap-s)")
    ln.add_argument("--gap-type", default="silence", metavar="KIND",
                    help=f"what the gaps hold: {', '.join(NONSPEECH_KINDS)} (default: silence)")
    ln.add_argument("--gap-dbfs", type=float, default=DEFAULT_GAP_DBFS, metavar="DBFS",
                    help=f"RMS level of noise gaps in dBFS (default: {DEFAULT_GAP_DBFS:g})")
    ln.add_argument("--seed", type=int, default=0, metavar="N",
                    help="seed of the gap lengths and noise (the same seed makes the same items; default: 0)")
    ln.add_argument("--noise-files", default=None, metavar="DIR",
                    help="noise recordings for --gap-type file")
    ln.add_argument("--audio-root", action="append", default=[], metavar="DIR",
                    help="a folder the source's absolute audio paths may come from (repeatable)")


def main(args: argparse.Namespace) -> int:
    targets = parse_seconds(args.seconds)
    source = load_dataset(args.source, tuple(args.audio_root))
    items = build_ladder(source, targets, args.out, per_length=args.per_length, gap_s=args.gap_s,
                         gap_max_s=args.gap_max_s, gap_type=args.gap_type, gap_dbfs=args.gap_dbfs, seed=args.seed,
                         noise_files=args.noise_files)
    by_target: dict[float, list[float]] = defaultdict(list)
    for item in items:
        by_target[item.target_s].append(item.duration_s)
    if not getattr(args, "quiet", False):
        for target, got in by_target.items():
            print(f"{target:g} s: {len(got)} item(s) of {', '.join(f'{d:.1f}' for d in got)} s")
    print(visible(f"dataset: {args.out / MANIFEST_NAME} ({len(items)} items from {source.name}); "
          f"run it with --data {args.out}"))
    return 0
