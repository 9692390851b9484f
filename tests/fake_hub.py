"""A FAKE Hugging Face hub for tests: no hub is reachable here. It stands in for the two calls of ``huggingface_hub``
that runner/models/hub.py makes, with the real shapes:

- ``HfApi().model_info(repo, revision=None, files_metadata=False)``: a ModelInfo-like record, ``sha`` (the commit
  the revision resolves to) and ``siblings`` (RepoSibling-like: ``rfilename``, ``size``, and ``lfs`` with the file's
  ``sha256`` for the large files, as the hub lists LFS files);
- ``snapshot_download(repo, revision=, local_dir=, allow_patterns=)``: the commit's files matching the patterns
  written into ``local_dir``, with huggingface_hub's local-dir bookkeeping (``.cache/huggingface/download/
  <file>.metadata``: the commit, the etag, a time) and, while a file is in flight, ``<file>.<etag>.incomplete``,
  which a later call resumes (as huggingface_hub does).

Knobs for the failures worth testing: ``unreachable`` (every call raises a connection error), ``interrupt_once``
(the first download stops with KeyboardInterrupt half-way through the weights), ``answer_commit`` (model_info
answers another commit than the one asked for) and ``serve_commit`` (the files come from another commit than
asked for). ``calls`` records every call.
"""

from __future__ import annotations

import fnmatch
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

SHA1, SHA2 = "a" * 40, "b" * 40
LFS_FILES = ("model.bin", "model.safetensors")


def ct2_files(commit: str) -> dict[str, bytes]:
    """A CTranslate2 conversion's repository (Systran/faster-whisper-*), with a README the download leaves out."""
    return {"config.json": b'{"alignment_heads": [], "lang_ids": []}', "model.bin": f"ct2 {commit}".encode() * 4096,
            "tokenizer.json": b"{}", "vocabulary.txt": b"a\nb\n", "README.md": b"# model card",
            ".gitattributes": b"*.bin filter=lfs"}


def hf_files(commit: str) -> dict[str, bytes]:
    """A transformers checkpoint's repository (openai/whisper-*): the other frameworks' weights are left out."""
    return {"config.json": b'{"model_type": "whisper"}', "generation_config.json": b"{}",
            "preprocessor_config.json": b"{}", "model.safetensors": f"st {commit}".encode() * 4096,
            "tokenizer.json": b"{}", "vocab.json": b"{}", "merges.txt": b"", "normalizer.json": b"{}",
            "tf_model.h5": b"tensorflow", "flax_model.msgpack": b"flax", "pytorch_model.bin": b"torch"}


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class HubUnreachable(OSError):
    """What huggingface_hub raises without a network is a connection error (an OSError subclass)."""


@dataclass
class FakeHub:
    head: str = SHA1
    unreachable: bool = False
    interrupt_once: bool = False
    answer_commit: str | None = None
    serve_commit: str | None = None
    calls: list = field(default_factory=list)
    resumed: list = field(default_factory=list)

    def files(self, repo: str, commit: str) -> dict[str, bytes]:
        return (hf_files if repo.startswith(("openai/", "distil-whisper/")) else ct2_files)(commit)

    # -- HfApi ----------------------------------------------------------------------------------------------------

    def model_info(self, repo: str, revision: str | None = None, files_metadata: bool = False, **_kw):
        self.calls.append(("model_info", repo, revision))
        if self.unreachable:
            raise HubUnreachable("Failed to resolve 'huggingface.co'")
        sha = self.answer_commit or revision or self.head
        siblings = [SimpleNamespace(rfilename=name, size=len(data) if files_metadata else None, blob_id=None,
                                    lfs=SimpleNamespace(size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                                        pointer_size=134) if name in LFS_FILES else None)
                    for name, data in self.files(repo, sha).items()]
        return SimpleNamespace(id=repo, sha=sha, siblings=siblings)

    # -- snapshot_download ----------------------------------------------------------------------------------------

    def snapshot_download(self, repo: str, *, revision: str, local_dir: str, allow_patterns=None, **_kw) -> str:
        self.calls.append(("snapshot_download", repo, revision))
        if self.unreachable:
            raise HubUnreachable("Failed to resolve 'huggingface.co'")
        commit = self.serve_commit or revision
        root = Path(local_dir)
        meta = root / ".cache" / "huggingface" / "download"
        meta.mkdir(parents=True, exist_ok=True)
        for name, data in self.files(repo, commit).items():
            if allow_patterns is not None and not any(fnmatch.fnmatch(name, p) for p in allow_patterns):
                continue
            incomplete = meta / f"{name}.{_etag(data)}.incomplete"
            if incomplete.exists():
                self.resumed.append(name)
            if self.interrupt_once and name in LFS_FILES:
                self.interrupt_once = False
                incomplete.write_bytes(data[: len(data) // 2])
                raise KeyboardInterrupt
            incomplete.write_bytes(data)
            incomplete.replace(root / name)
            (meta / f"{name}.metadata").write_text(f"{commit}\n{_etag(data)}\n{time.time()}\n")
        return str(root)

    def module(self) -> SimpleNamespace:
        """The stand-in ``huggingface_hub`` module (put it in sys.modules)."""
        return SimpleNamespace(HfApi=lambda: SimpleNamespace(model_info=self.model_info),
                               snapshot_download=self.snapshot_download, __version__="fake")

    def install(self, monkeypatch) -> "FakeHub":
        monkeypatch.setitem(sys.modules, "huggingface_hub", self.module())
        return self
