"""Content hashes of audio files and model folders, cached by (path, size, mtime, inode).

A sweep resumes by condition key; a key built from names and sizes would call a
re-recorded file of the same size "done". So keys cover the sha256 of every audio
file and of the model folder. Hashing streams the file in blocks (memory does not
grow with its length), and the cache makes a rerun cheap: a file is re-read only
when its size, mtime or inode changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .results import write_text_atomic

BLOCK_BYTES = 1 << 20


def cache_path() -> Path:
    """Per user: $XDG_CACHE_HOME/edgeasr/content-hashes.json."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgeasr" / "content-hashes.json"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


class HashCache:
    """sha256 by file identity; ``save()`` writes the cache back atomically (lost updates only cost a rehash)."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_path()
        self._entries: dict[str, list] = {}
        self._dirty = False
        try:
            data = json.loads(self.path.read_text())
            if isinstance(data, dict):
                self._entries = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 4}
        except (OSError, ValueError):
            pass

    def file(self, path: Path) -> str | None:
        """The file's sha256, or None when it cannot be read (a per-utterance error elsewhere)."""
        try:
            st = os.stat(path)
            key = str(Path(path).resolve())
            ident = [st.st_size, st.st_mtime_ns, st.st_ino]
            entry = self._entries.get(key)
            if entry and entry[:3] == ident:
                return entry[3]
            digest = file_sha256(path)
        except OSError:
            return None
        self._entries[key] = [*ident, digest]
        self._dirty = True
        return digest

    def folder(self, folder: Path) -> str:
        """One hash over every file's relative name and content (sorted), e.g. a model folder."""
        h = hashlib.sha256()
        for p in sorted(q for q in Path(folder).rglob("*") if q.is_file()):
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + (self.file(p) or "unreadable").encode())
        return h.hexdigest()

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(self._entries))
            self._dirty = False
        except OSError:
            pass  # a cache that cannot be written only makes the next run hash again
