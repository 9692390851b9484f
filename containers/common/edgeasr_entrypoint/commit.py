"""LocalAgreement-2: the commit policy that lets an offline model (Whisper) serve live audio.

Written here from the published description (Machacek, Dabre, Bojar, "Turning Whisper into Real-Time
Transcription System", 2023, the whisper_streaming project): after each new chunk, the utterance's whole audio
buffer so far is transcribed again; the words on which the last two hypotheses agree, as a common prefix, are
committed, and a committed word is never taken back. What is shown meanwhile is the committed words plus the
newest hypothesis' words after them (tentative: they may still change).

Simplifications, each stated: agreement is on whole words as the model writes them (split on white space; a
change of case or punctuation is a disagreement, as in the original); with no word timestamps, the newest
hypothesis is aligned to the committed words by position (its first ``len(committed)`` words stand for them);
the buffer is the current utterance only (the entrypoint's oracle endpointing ends it), so it is never trimmed.
At the utterance's end ``finish()`` transcribes the whole buffer and the final text is the committed words
followed by that hypothesis' words after them: what was committed stays, so the cost of committing early shows
in the final's WER against the whole-utterance (offline) transcript.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np

NAME = "local-agreement-2"


def agreed_prefix(previous: Sequence[str], current: Sequence[str]) -> int:
    """The number of leading words two hypotheses share."""
    n = 0
    for a, b in zip(previous, current):
        if a != b:
            break
        n += 1
    return n


class LocalAgreement2:
    """One stream's session over ``transcribe(float32 audio) -> str`` (the loaded model's whole-utterance call).

    ``accept(chunk)`` adds the chunk to the utterance's buffer, transcribes the buffer and returns the partial text
    (committed + tentative); ``committed`` is the committed text; ``finish()`` returns the final text and starts
    the next utterance afresh."""

    def __init__(self, transcribe: Callable[[np.ndarray], str]):
        self._transcribe = transcribe
        self._reset()

    def _reset(self) -> None:
        self._audio: List[np.ndarray] = []
        self._samples = 0
        self._committed: List[str] = []
        self._previous: Optional[List[str]] = None  # the hypothesis before the newest
        self._newest: Optional[List[str]] = None
        self._newest_samples = -1  # the buffer length the newest hypothesis was made from

    @property
    def committed(self) -> str:
        return " ".join(self._committed)

    @property
    def committed_words(self) -> List[str]:
        return list(self._committed)

    def update(self, hypothesis: str) -> str:
        """One policy step on a new hypothesis of the whole buffer: commit what it and the one before agree on,
        beyond what is committed already; return the text to show (committed + tentative)."""
        words = hypothesis.split()
        if self._newest is not None:
            agreed = agreed_prefix(self._newest, words)
            if agreed > len(self._committed):
                self._committed.extend(words[len(self._committed):agreed])
        self._previous, self._newest = self._newest, words
        return " ".join(self._committed + words[len(self._committed):])

    def _buffer(self) -> np.ndarray:
        if len(self._audio) > 1:
            self._audio = [np.concatenate(self._audio)]
        return self._audio[0] if self._audio else np.zeros(0, dtype=np.float32)

    def accept(self, chunk: np.ndarray) -> str:
        self._audio.append(np.asarray(chunk, dtype=np.float32))
        self._samples += len(chunk)
        text = self.update(self._transcribe(self._buffer()))
        self._newest_samples = self._samples
        return text

    def finish(self) -> str:
        """The utterance's final text: the committed words, then the whole buffer's hypothesis after them (the
        newest one when no audio came since it was made: the same call on the same audio gives the same text)."""
        if self._newest is not None and self._newest_samples == self._samples:
            words = self._newest
        else:
            words = self._transcribe(self._buffer()).split() if self._samples else []
        final = " ".join(self._committed + words[len(self._committed):])
        self._reset()
        return final
