"""Scoring: Whisper normalization, WER/CER with S/D/I, RTF and latency percentiles."""

import pytest

from runner import metrics


def test_normalization_makes_formatting_irrelevant():
    assert metrics.normalize("It's easy, Mr. Smith!") == metrics.normalize("it is easy mister smith")


def test_error_counts_by_hand():
    c = metrics.error_counts(["a b c d", "e f"], ["a x c d", "e f g"])
    assert (c.substitutions, c.deletions, c.insertions, c.hits, c.ref_words) == (1, 0, 1, 5, 6)
    assert c.wer == pytest.approx(2 / 6)


def test_deletions_when_hypothesis_is_empty():
    c = metrics.error_counts(["one two three"], [""])
    assert c.deletions == 3 and c.wer == 1.0


def test_rtf_and_percentiles():
    assert metrics.rtf([1.0, 2.0], [10.0, 20.0]) == pytest.approx(0.1)
    p = metrics.latency_percentiles_ms([0.1] * 9 + [1.0])
    assert p["p50"] == pytest.approx(100.0) and p["p99"] > 900.0
