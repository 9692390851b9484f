"""Read a dataset into utterances (id, audio path on the host, reference text or None).

Three layouts: a LibriSpeech-style tree (``*.trans.txt`` beside the audio), a
JSONL manifest (``{"id", "audio", "text"}``, audio paths relative to the
manifest; a folder holding ``manifest.jsonl`` counts as the manifest), and a
plain folder of audio files with same-name ``.txt`` references. Audio is not
decoded here: the container decodes it, so a corrupt file becomes a per-utterance
error record and the rest of the run goes on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

AUDIO_EXTS = (".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a", ".webm", ".aac")
MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: Path  # absolute host path (may not exist: that is a per-utterance error later)
    reference: str | None  # None: no reference, transcribed but left out of WER


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    layout: str  # librispeech | manifest | folder
    utterances: tuple[Utterance, ...]

    @property
    def mount_root(self) -> Path:
        """The deepest folder holding every audio file: mounted read-only at /data."""
        return Path(os.path.commonpath([str(u.audio.parent) for u in self.utterances]))

    def container_path(self, utt: Utterance) -> str:
        return "/data/" + utt.audio.relative_to(self.mount_root).as_posix()


def _clean_ref(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text or None


def _read_manifest(path: Path) -> list[Utterance]:
    base = path.parent
    utts = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "audio" not in row:
                raise UserError(f"{path}:{lineno}: each line needs an object with an \"audio\" path")
            audio = Path(row["audio"])
            audio = (audio if audio.is_absolute() else base / audio).resolve()
            uid = str(row.get("id") or audio.stem)
            text = row.get("text")
            if text is not None and not isinstance(text, str):
                raise UserError(f"{path}:{lineno}: \"text\" must be a string")
            utts.append(Utterance(uid, audio, _clean_ref(text)))
    return utts


def _read_librispeech(root: Path, trans_files: list[Path]) -> list[Utterance]:
    utts = []
    for trans in trans_files:
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.partition(" ")
            audio = next((trans.parent / (uid + ext) for ext in AUDIO_EXTS if (trans.parent / (uid + ext)).exists()),
                         trans.parent / (uid + ".flac"))
            utts.append(Utterance(uid, audio.resolve(), _clean_ref(text)))
    return utts


def _read_folder(root: Path) -> list[Utterance]:
    utts = []
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTS and p.is_file()):
        ref_file = audio.with_suffix(".txt")
        ref = ref_file.read_text(encoding="utf-8") if ref_file.is_file() else None
        uid = audio.relative_to(root).with_suffix("").as_posix()
        utts.append(Utterance(uid, audio.resolve(), _clean_ref(ref)))
    return utts


def load_dataset(path: str | Path) -> Dataset:
    """Detect the layout and read it; a path that does not exist or holds nothing is a UserError."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"data path {path} does not exist")
    p = p.resolve()
    if p.is_file():
        if p.suffix != ".jsonl":
            raise UserError(f"data path {path} is a file but not a .jsonl manifest")
        layout, utts, name = "manifest", _read_manifest(p), p.stem if p.stem != "manifest" else p.parent.name
    elif (p / MANIFEST_NAME).is_file():
        layout, utts, name = "manifest", _read_manifest(p / MANIFEST_NAME), p.name
    else:
        trans = sorted(p.rglob("*.trans.txt"))
        if trans:
            layout, utts = "librispeech", _read_librispeech(p, trans)
        else:
            layout, utts = "folder", _read_folder(p)
        name = p.name
    if not utts:
        raise UserError(f"no utterances found in {path}: expected a {MANIFEST_NAME}, *.trans.txt files, "
                        f"or audio files ({', '.join(AUDIO_EXTS)})")
    seen: set[str] = set()
    dupes = sorted({u.id for u in utts if u.id in seen or seen.add(u.id)})
    if dupes:
        raise UserError(f"{path}: utterance ids must be unique; repeated: {', '.join(dupes[:5])}")
    return Dataset(name=name, path=p, layout=layout, utterances=tuple(utts))
