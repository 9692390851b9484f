"""--data as a Dataset: a local folder or manifest (runner/data/local.py), or a Hugging Face dataset
(runner/data/hf.py), which is written once as FLAC and a manifest and then read like any local one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .dataset import Dataset, is_hf_ref
from .local import load_local


def load_dataset(path: str | Path, audio_roots: tuple[str | Path, ...] = (), limit: int | None = None,
                 text_limit_bytes: int | None = None) -> Dataset:
    """Read a dataset; a path that does not exist or holds nothing is a UserError.

    ``audio_roots`` are extra folders the user trusts (``--audio-root``), for manifests whose
    entries are absolute paths elsewhere (NeMo-style). ``limit``: the first N utterances only, cut before
    anything is checked (a manifest's later lines are not even read); for ``hf:...``, a Hugging Face dataset,
    it bounds what is streamed. ``text_limit_bytes`` caps each text file of the dataset (a manifest, a
    ``*.trans.txt``, a reference ``.txt``; default: limits.data_text_mib)."""
    if not is_hf_ref(path):
        return load_local(path, audio_roots, limit, text_limit_bytes)
    from . import hf  # the optional `datasets` stack and the audio codecs only for an hf: reference

    ref = hf.parse_ref(str(path), limit)
    return replace(load_local(hf.materialize(ref), audio_roots, text_limit_bytes=text_limit_bytes), name=ref.label)
