"""What a dataset is once read: its utterances (id, audio path on the host, reference text or None).

The records every reader returns (runner/data/local.py for folders and manifests, runner/data/hf.py through
its FLAC cache) and every stage after them reads (the plan, the merge, the length ladder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AUDIO_EXTS = (".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a", ".webm", ".aac")
MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: Path  # absolute, resolved host path
    #: None: no reference, transcribed but not scored. "": non-speech (silence, noise): nothing should be said,
    #: and what is said is scored apart from WER (words per minute, runner/merge.py; issue 24).
    reference: str | None
    problem: str | None = None  # why the audio is not read (outside the roots, missing, ...): a per-utterance error
    #: A generated non-speech item's type (silence, white, ...; runner/data/nonspeech.py); None: the dataset's own
    nonspeech: str | None = None
    #: Its segment map where its manifest row has one (runner/data/lengths.py Segment: speech and non-speech
    #: parts in order, issue 24): the merge counts the words inserted where the non-speech lies. () where none.
    segments: tuple = ()


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    layout: str  # librispeech | manifest | folder
    utterances: tuple[Utterance, ...]
    roots: tuple[Path, ...] = ()  # folders audio may come from: the dataset's own, then --audio-root ones

    @property
    def readable(self) -> tuple[Utterance, ...]:
        """The utterances whose audio the container is given (the others are errors decided on the host)."""
        return tuple(u for u in self.utterances if u.problem is None)


#: A Hugging Face dataset reference starts so: ``hf:NAME[:CONFIG]:SPLIT`` (runner/data/hf.py).
HF_PREFIX = "hf:"


def is_hf_ref(value: object) -> bool:
    """Whether a --data value names a Hugging Face dataset rather than a local folder or manifest."""
    return isinstance(value, str) and value.startswith(HF_PREFIX)
