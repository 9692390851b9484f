"""The one place that normalizes text and computes WER/CER, RTF and latency percentiles.

Containers return raw hypotheses; scoring happens here only, with Whisper's
English text normalizer applied to reference and hypothesis alike (as the Open
ASR Leaderboard does), so that every backend is scored the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jiwer
import numpy as np


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normalization, whitespace collapsed."""
    return " ".join(_normalizer()(text).split())


@dataclass(frozen=True)
class ErrorCounts:
    """Corpus-level word (and character) error figures over the scored utterances."""

    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    ref_words: int


def error_counts(references: list[str], hypotheses: list[str]) -> ErrorCounts:
    """WER/CER over normalized pairs; references must be non-empty (checked by the caller)."""
    words = jiwer.process_words(references, hypotheses)
    chars = jiwer.process_characters(references, hypotheses)
    ref_words = words.hits + words.substitutions + words.deletions
    return ErrorCounts(wer=float(words.wer), cer=float(chars.cer), substitutions=words.substitutions,
                       deletions=words.deletions, insertions=words.insertions, hits=words.hits,
                       ref_words=ref_words)


def utterance_wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(reference, hypothesis))


def rtf(processing_s: list[float], audio_s: list[float]) -> float:
    """Real-time factor: total processing seconds over total audio seconds (lower is faster)."""
    return float(sum(processing_s) / sum(audio_s))


def latency_percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    arr = np.asarray(latencies_s, dtype=float) * 1000.0
    return {f"p{q}": float(np.percentile(arr, q)) for q in (50, 90, 99)}
