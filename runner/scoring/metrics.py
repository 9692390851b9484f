"""The one place that normalizes text and computes WER/CER, RTF and latency percentiles.

Containers return raw hypotheses; scoring happens here only, with Whisper's
English text normalizer applied to reference and hypothesis alike (as the Open
ASR Leaderboard does), so that every backend is scored the same way.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
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

    @property
    def insertion_rate(self) -> float:
        """Inserted words over reference words: the part of WER that is words nobody said (hallucination and
        repetition show here first), reported apart from WER; ``ref_words`` > 0 as WER needs."""
        return self.insertions / self.ref_words


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


# -- repetition and loops (issue 24): figures of every hypothesis, apart from WER ------------------------------------

#: Whisper's own repetition test: a decoded text whose compression ratio is above this is a loop (it decodes again
#: at a higher temperature); the same threshold counts loops here.
COMPRESSION_RATIO_THRESHOLD = 2.4
#: The n of the repeated n-gram rate: trigrams, long enough that "of the" said twice is not a repeat.
REPEAT_NGRAM_N = 3


def compression_ratio(text: str) -> float:
    """Whisper's measure: UTF-8 bytes of the raw text over their zlib-compressed length (zlib's default level).
    A loop ("thank you. thank you. ...") compresses well, so its ratio is high; ordinary speech of a sentence is
    below 1.5. The empty text is 0.0 (nothing said is no loop)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def compression_over_share(hypotheses: Sequence[str]) -> float | None:
    """The share of hypotheses (raw texts) whose compression ratio is above COMPRESSION_RATIO_THRESHOLD; None
    for no hypothesis."""
    if not hypotheses:
        return None
    return sum(compression_ratio(h) > COMPRESSION_RATIO_THRESHOLD for h in hypotheses) / len(hypotheses)


def repeated_ngrams(words: Sequence[str], n: int = REPEAT_NGRAM_N) -> tuple[int, int]:
    """(repeated, total) n-grams of one text: ``total`` is its overlapping n-grams (len(words) - n + 1, 0 when
    shorter than n), ``repeated`` those equal to an n-gram starting earlier in the same text (the first
    occurrence is never a repeat): "a b c a b c a b c" has 7 trigrams, 4 of them repeated."""
    seen: set[tuple[str, ...]] = set()
    repeated = total = 0
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        total += 1
        if gram in seen:
            repeated += 1
        else:
            seen.add(gram)
    return repeated, total


@dataclass(frozen=True)
class RepetitionCounts:
    """Repeated n-grams of the hypotheses beyond their references' own, over (reference, hypothesis) pairs.

    ``rate`` = excess_repeated / hyp_ngrams, where for each pair the excess is max(0, repeated n-grams of the
    hypothesis - repeated n-grams of its reference), summed over the pairs, and hyp_ngrams counts every
    hypothesis n-gram: the share of what the model said that is repetition the speaker did not make. Counts,
    not shares, are subtracted, so a hypothesis that drops half the reference is not charged with the
    reference's repeats twice over; pooled, so one long loop weighs by its length (as WER pools words). The
    floor at 0 per pair keeps a hypothesis that repeats less than its speaker from hiding another's loop.
    ``rate`` is None when no hypothesis holds an n-gram (all shorter than n words): no rate, not a rate of 0.
    """

    ngram_n: int
    hyp_ngrams: int
    hyp_repeated: int
    ref_repeated: int
    excess_repeated: int

    @property
    def rate(self) -> float | None:
        return self.excess_repeated / self.hyp_ngrams if self.hyp_ngrams else None


def repetition(references: Sequence[str], hypotheses: Sequence[str], n: int = REPEAT_NGRAM_N) -> RepetitionCounts:
    """RepetitionCounts over normalized pairs (words split on whitespace); an empty reference (non-speech)
    repeats nothing, so every repeat of its hypothesis is beyond it."""
    hyp_ngrams = hyp_rep = ref_rep = excess = 0
    for ref, hyp in zip(references, hypotheses):
        h_rep, h_total = repeated_ngrams(hyp.split(), n)
        r_rep, _ = repeated_ngrams(ref.split(), n)
        hyp_ngrams, hyp_rep, ref_rep = hyp_ngrams + h_total, hyp_rep + h_rep, ref_rep + r_rep
        excess += max(0, h_rep - r_rep)
    return RepetitionCounts(n, hyp_ngrams, hyp_rep, ref_rep, excess)


def gap_insertions(parts: Sequence[str | None], hypothesis: str) -> int:
    """Segment-aware insertions of one item with a segment map (runner/data/lengths.py): ``parts`` are its
    segments in order, a speech segment as its normalized reference and a non-speech one as None; the count is
    the inserted words that the word alignment of the hypothesis against the joined speech places exactly where
    a non-speech segment lies (between the speech words before and after it). Without word timestamps this is
    an attribution by position: a word inserted at the edge of an utterance next to a gap counts as the gap's."""
    words: list[str] = []
    at_gaps: set[int] = set()
    for part in parts:
        if part is None:
            at_gaps.add(len(words))
        else:
            words += part.split()
    hyp = hypothesis.split()
    if not at_gaps or not hyp:
        return 0
    if not words:  # all non-speech: every word said is the gaps'
        return len(hyp)
    out = jiwer.process_words([" ".join(words)], [" ".join(hyp)])
    return sum(c.hyp_end_idx - c.hyp_start_idx for c in out.alignments[0]
               if c.type == "insert" and c.ref_start_idx in at_gaps)
