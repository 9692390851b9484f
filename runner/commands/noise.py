"""`edgeasr noise preview`: write one utterance as a sweep condition would hear it, for listening.

The same mixer and the same seed as inside the containers (seed key = the noise
type, as the sweep uses), so the file is exactly what the model was given.
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

import soundfile as sf
from edgeasr_entrypoint.audio import AudioError, load_audio
from edgeasr_entrypoint.contract import NOISE_TYPES, SAMPLE_RATE
from edgeasr_entrypoint.noise import (NoiseError, NoiseSpec, apply_noise, babble_sources_for, measured_snr_db,
                                      peak_normalize_for_export)

from ..data.dataset import AUDIO_EXTS
from ..data.load import load_dataset
from ..errors import UserError
from ..trust.untrusted import visible


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="noise_cmd", required=True)
    pv = sub.add_parser("preview", help="write one noisy utterance to a WAV file")
    pv.add_argument("--data", default="data/default", help="dataset (default: data/default)")
    pv.add_argument("--id", default=None, help="utterance id (default: the first)")
    pv.add_argument("--type", required=True, help="the noise: " + " | ".join(NOISE_TYPES))
    pv.add_argument("--snr", type=float, required=True, help="signal-to-noise ratio in dB")
    pv.add_argument("--files", type=Path, default=None, help="folder of noise recordings (type file)")
    pv.add_argument("--babble-talkers", type=int, default=4, metavar="N",
                    help="talkers mixed for --type babble, at least 1 (default: 4)")
    pv.add_argument("--out", type=Path, required=True,
                    help=f"file to write: {' or '.join(f.upper() for f in WRITE_FORMATS.values())} "
                         f"({', '.join(WRITE_FORMATS)})")


#: The formats `noise preview` writes (16-bit PCM), by file suffix; anything else is refused before any work.
WRITE_FORMATS = {".wav": "wav", ".flac": "flac"}


def check_out(out: Path) -> str:
    """The soundfile format for ``out``'s suffix, or a UserError naming the formats written."""
    fmt = WRITE_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise UserError(f"--out {out}: noise preview writes WAV or FLAC (a name ending in "
                        f"{' or '.join(WRITE_FORMATS)}), not {out.suffix or 'a file without a suffix'}; "
                        f"for example --out {out.with_suffix('.wav')}")
    return fmt


def check_flags(args: argparse.Namespace) -> None:
    """The flags' own problems, named by their flags (not the settings' names), before any audio is read."""
    if args.type not in NOISE_TYPES:
        near = difflib.get_close_matches(args.type, NOISE_TYPES, n=1)
        raise UserError(f"--type {args.type}: not a noise type" + (f"; did you mean {near[0]}?" if near else "")
                        + f" (one of {', '.join(NOISE_TYPES)})")
    if args.babble_talkers < 1:
        raise UserError(f"--babble-talkers {args.babble_talkers}: babble needs at least 1 talker")


def main(args: argparse.Namespace) -> int:
    check_flags(args)
    fmt = check_out(args.out)
    ds = load_dataset(args.data)
    utts = {u.id: u for u in ds.utterances}
    uid = args.id or ds.utterances[0].id
    if uid not in utts:
        raise UserError(f"--id {uid!r} is not in {args.data}; ids start: {', '.join(list(utts)[:5])}")
    files: tuple[str, ...] = ()
    if args.type == "file":
        if args.files is None or not args.files.is_dir():
            raise UserError("--type file needs --files FOLDER with noise recordings")
        files = tuple(str(p) for p in sorted(args.files.rglob("*")) if p.suffix.lower() in AUDIO_EXTS)
    try:
        spec = NoiseSpec(args.type, args.snr, files=files,
                         babble_talkers=args.babble_talkers if args.type == "babble" else 4)
        speech = load_audio(str(utts[uid].audio))
        sources = ()
        if args.type == "babble":
            pool = {}
            for u in ds.utterances:
                try:
                    pool[u.id] = load_audio(str(u.audio))
                except AudioError:
                    continue
            sources = babble_sources_for(uid, pool)
        mixed = apply_noise(speech, spec, uid, args.type, babble_sources=sources)
    except (NoiseError, AudioError) as exc:
        raise UserError(str(exc)) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(args.out, peak_normalize_for_export(mixed), SAMPLE_RATE, subtype="PCM_16", format=fmt.upper())
    print(visible(f"{args.out}: {uid} with {args.type} noise at {measured_snr_db(speech, mixed):.2f} dB SNR "
                  f"(asked {args.snr:g} dB), {len(mixed) / SAMPLE_RATE:.2f} s"))
    return 0
