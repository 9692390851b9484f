"""Read a local dataset (a folder or a manifest) into utterances: id, audio path on the host, reference or None.

Three layouts: a LibriSpeech-style tree (``*.trans.txt`` beside the audio), a
JSONL manifest (``{"id", "audio", "text"}``, audio paths relative to the
manifest; a folder holding ``manifest.jsonl`` counts as the manifest), and a
plain folder of audio files with same-name ``.txt`` references. Audio is not
decoded here: the container decodes it, so a corrupt file becomes a per-utterance
error record and the rest of the run goes on.

A reference that is there but empty (``"text": ""``, an empty ``.txt``, a ``*.trans.txt`` line of an id alone)
is non-speech: the item should produce no words, and the words it does produce are scored apart from WER
(issue 24). A reference that is not there (no ``"text"``, ``null``, no ``.txt``) is still "not scored".

Every audio path is resolved (symlinks followed) and must be a regular file under
one of the dataset's roots: its own folder (the manifest's folder, the LibriSpeech
root, the audio folder) or a folder the user trusts with ``--audio-root``. An entry
outside them, or a system file, is a per-utterance error that says why
(runner/launch/paths.py): a dataset from a stranger cannot make the runner show a backend
container anything else of the host.

The text files (the manifest, ``*.trans.txt``, a reference ``.txt``) obey the same rules, and are read by
runner/trust/safe_io.py: resolved, under the dataset's own root, regular, at most ``limits.data_text_mib``, never
through a link, never waited on (a FIFO) and never another owner's file by a hard link. A link to a host
file would otherwise put its contents into the results and onto the terminal, and one to ``/dev/zero`` or a
FIFO would exhaust memory or hang the load. A refused manifest or ``*.trans.txt`` stops the load with its
sentence (its utterances cannot be listed); a refused reference is its utterance's error.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from ..errors import UserError
from ..launch.paths import audio_problem, check_audio_root
from ..trust.safe_io import Unsafe, open_dataset_text, read_dataset_text
from ..settings import LimitsSettings, limit_name
from .dataset import AUDIO_EXTS, MANIFEST_NAME, Dataset, Utterance


def _clean_ref(text: str | None) -> str | None:
    """The reference stripped: None (no reference: not scored) stays None, and an empty or blank one is ""
    (non-speech: every word said over it is counted apart from WER, issue 24), never read as None."""
    return None if text is None else text.strip()


@dataclass(frozen=True)
class _Text:
    """How this dataset's text files are read: beneath which root, and up to how many bytes."""

    root: Path
    limit_bytes: int

    def read(self, path: Path, encoding: str = "utf-8") -> str:
        """The file's text; Unsafe when the rules refuse it (see the module's docstring)."""
        return read_dataset_text(path, (self.root,), limit=self.limit_bytes, limit_name=limit_name("data_text_mib"),
                                 encoding=encoding)

    def read_or_stop(self, path: Path, encoding: str = "utf-8") -> str:
        try:
            return self.read(path, encoding)
        except Unsafe as exc:
            raise UserError(str(exc)) from None

    @contextlib.contextmanager
    def open_or_stop(self, path: Path, encoding: str = "utf-8") -> Iterator[TextIO]:
        """The file opened by the same rules, to be read a line at a time; what they refuse is a UserError."""
        try:
            with open_dataset_text(path, (self.root,), limit=self.limit_bytes,
                                   limit_name=limit_name("data_text_mib"), encoding=encoding) as fh:
                yield fh
        except Unsafe as exc:
            raise UserError(str(exc)) from None


class _Resolver:
    """``Path.resolve`` with each folder resolved once: a 100,000-line manifest names a few folders, and
    resolving every path component by component cost seconds. A path with ``..`` is resolved whole (the
    component before it may be a link)."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def __call__(self, path: Path) -> Path:
        if ".." in path.parts:
            return path.resolve()
        head, name = os.path.split(os.path.abspath(path))
        real = self._folders.get(head)
        if real is None:
            real = self._folders[head] = os.path.realpath(head)
        full = os.path.join(real, name)
        return Path(os.path.realpath(full)) if os.path.islink(full) else Path(full)


def _read_manifest(path: Path, files: _Text, limit: int | None = None) -> list[Utterance]:
    """The manifest's utterances; with ``limit``, its first ``limit`` only (the rest is not even read)."""
    base = path.parent
    resolve = _Resolver()
    utts: list[Utterance] = []
    lineno = 0
    # -sig: a byte-order mark some editors write is accepted
    with files.open_or_stop(path, "utf-8-sig") as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if limit and len(utts) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict) or "audio" not in row:
                    raise UserError(f"{path}:{lineno}: each line needs an object with an \"audio\" path")
                if not isinstance(row["audio"], str) or not row["audio"].strip():
                    raise UserError(f"{path}:{lineno}: \"audio\" must be a non-empty path, got {row['audio']!r}")
                if "\0" in row["audio"]:  # no file system path holds one (os.stat raises ValueError)
                    raise UserError(f"{path}:{lineno}: \"audio\" holds a NUL byte ({row['audio']!r}); no path can")
                audio = Path(row["audio"]).expanduser()
                audio = resolve(audio if audio.is_absolute() else base / audio)
                raw_id = row.get("id")
                uid = audio.stem if raw_id is None or raw_id == "" else str(raw_id)  # "id": 0 stays "0"
                text = row.get("text")
                if text is not None and not isinstance(text, str):
                    raise UserError(f"{path}:{lineno}: \"text\" must be a string")
                utts.append(Utterance(uid, audio, _clean_ref(text), segments=_segments(row, path, lineno)))
        except UnicodeDecodeError:
            raise UserError(f"{path}:{lineno + 1}: not UTF-8 text; not read") from None
    return utts


def _segments(row: dict, path: Path, lineno: int) -> tuple:
    """The row's segment map (runner/data/lengths.py), checked; () where it has none."""
    if row.get("segments") is None:
        return ()
    from .lengths import read_segments

    try:
        return read_segments(row)
    except UserError as exc:
        raise UserError(f"{path}:{lineno}: {exc}") from None


def _read_librispeech(root: Path, trans_files: list[Path], files: _Text) -> list[Utterance]:
    utts = []
    for trans in trans_files:
        for lineno, line in enumerate(files.read_or_stop(trans).splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.partition(" ")
            if "\0" in uid:  # the id names the audio file, and no path holds one
                raise UserError(f"{trans}:{lineno}: the utterance id holds a NUL byte ({uid!r}); no file name can")
            audio = next((trans.parent / (uid + ext) for ext in AUDIO_EXTS if (trans.parent / (uid + ext)).exists()),
                         trans.parent / (uid + ".flac"))
            utts.append(Utterance(uid, audio.resolve(), _clean_ref(text)))
    return utts


def _read_folder(root: Path, files: _Text) -> list[Utterance]:
    utts = []
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTS and p.is_file()):
        ref_file = audio.with_suffix(".txt")
        ref, problem = None, None
        if os.path.lexists(ref_file):  # a link to nowhere, a FIFO: there, and refused with the reason
            try:
                ref = files.read(ref_file)
            except Unsafe as exc:
                problem = f"refused: the reference {exc}"
        uid = audio.relative_to(root).with_suffix("").as_posix()
        utts.append(Utterance(uid, audio.resolve(), _clean_ref(ref), problem))
    return utts


def load_local(path: str | Path, audio_roots: tuple[str | Path, ...] = (), limit: int | None = None,
               text_limit_bytes: int | None = None) -> Dataset:
    """Detect the layout and read it; a path that does not exist or holds nothing is a UserError.

    ``audio_roots`` are extra folders the user trusts (``--audio-root``), for manifests whose
    entries are absolute paths elsewhere (NeMo-style). ``limit``: the first N utterances only, cut before
    anything is checked (a manifest's later lines are not even read). ``text_limit_bytes`` caps each text file
    (default: limits.data_text_mib)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"data path {path} does not exist")
    p = p.resolve()
    root = check_audio_root(p if p.is_dir() else p.parent, "the dataset's folder")
    extra = tuple(check_audio_root(Path(r), "--audio-root") for r in audio_roots)
    files = _Text(root, LimitsSettings().data_text_bytes if text_limit_bytes is None else text_limit_bytes)
    if p.is_file():
        if p.suffix != ".jsonl":
            raise UserError(f"data path {path} is a file but not a .jsonl manifest")
        layout, utts, name = ("manifest", _read_manifest(p, files, limit),
                              p.stem if p.stem != "manifest" else p.parent.name)
    elif os.path.lexists(p / MANIFEST_NAME):  # a manifest.jsonl that is a link or a FIFO is refused, not skipped
        layout, utts, name = "manifest", _read_manifest(p / MANIFEST_NAME, files, limit), p.name
    else:
        trans = sorted(p.rglob("*.trans.txt"))
        if trans:
            layout, utts = "librispeech", _read_librispeech(p, trans, files)
        else:
            layout, utts = "folder", _read_folder(p, files)
        name = p.name
    if not utts:
        raise UserError(f"no utterances found in {path}: expected a {MANIFEST_NAME}, *.trans.txt files, "
                        f"or audio files ({', '.join(AUDIO_EXTS)})")
    utts = utts[:limit] if limit else utts
    seen: set[str] = set()
    dupes = sorted({u.id for u in utts if u.id in seen or seen.add(u.id)})
    if dupes:
        raise UserError(f"{path}: utterance ids must be unique; repeated: {', '.join(dupes[:5])}")
    roots = (root, *extra)
    utts = [Utterance(u.id, u.audio, u.reference, u.problem or audio_problem(u.audio, roots), segments=u.segments)
            for u in utts]
    return Dataset(name=name, path=p, layout=layout, utterances=tuple(utts), roots=roots)
