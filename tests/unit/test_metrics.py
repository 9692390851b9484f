"""Scoring: Whisper normalization, WER/CER with S/D/I, RTF and latency percentiles."""

import pytest

from runner.scoring import metrics


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


# -- issue 24 item 3: repetition and insertion figures ---------------------------------------------------------------


def test_repeated_ngrams_count_each_ngram_that_an_earlier_one_of_the_same_text_equals():
    """Overlapping trigrams; the first occurrence is never a repeat, every later one is."""
    assert metrics.repeated_ngrams("a b c a b c a b c".split()) == (4, 7)  # abc bca cab abc bca cab abc: 4 repeats
    assert metrics.repeated_ngrams("a a a a".split()) == (1, 2)
    assert metrics.repeated_ngrams("the cat sat on the mat".split()) == (0, 4)
    assert metrics.repeated_ngrams("a b".split()) == (0, 0)  # fewer words than n: no trigram at all
    assert metrics.repeated_ngrams("a b a b".split(), n=2) == (1, 3)


def test_repetition_counts_only_the_repeats_beyond_the_references_own_pooled_over_the_corpus():
    """Per pair max(0, hyp repeats - ref repeats), summed, over all hypothesis trigrams: a speaker's own
    repetition is not the model's, and one looping hypothesis counts by its length."""
    refs = ["a b c a b c", "x y z", ""]
    hyps = ["a b c a b c", "x y z x y z x y z", "thank you thank you thank you"]
    r = metrics.repetition(refs, hyps)
    # pair 1: hyp 1 of 4 trigrams repeated, ref 1 -> 0 beyond; pair 2: 4 of 7, ref 0 -> 4; pair 3: 2 of 4 -> 2
    assert (r.ngram_n, r.hyp_ngrams, r.hyp_repeated, r.ref_repeated, r.excess_repeated) == (3, 15, 7, 1, 6)
    assert r.rate == pytest.approx(6 / 15)
    assert metrics.repetition(["a b c a b c"], ["a b c"]).rate == 0.0  # fewer repeats than the reference: 0, not < 0
    assert metrics.repetition(["a b"], ["a b"]).rate is None  # no hypothesis trigram: not a rate of 0


def test_compression_ratio_is_whispers_and_the_share_over_its_threshold_is_exact():
    """len(UTF-8 bytes) / len(zlib.compress(bytes)), on the raw text, as Whisper computes it; > 2.4 is a loop."""
    import zlib

    text = "thank you. " * 20
    assert metrics.compression_ratio(text) == len(text.encode()) / len(zlib.compress(text.encode()))
    assert metrics.compression_ratio(text) > metrics.COMPRESSION_RATIO_THRESHOLD == 2.4
    assert metrics.compression_ratio("the cat sat on the mat") < 1.0
    assert metrics.compression_ratio("") == 0.0  # nothing said: no loop (zlib's 8-byte frame of nothing)
    assert metrics.compression_over_share([text, "the cat sat on the mat", ""]) == pytest.approx(1 / 3)
    assert metrics.compression_over_share([]) is None


def test_insertion_rate_is_insertions_over_reference_words():
    c = metrics.error_counts(["a b c d", "e f"], ["a x c d", "e f g h"])
    assert (c.insertions, c.ref_words) == (2, 6)
    assert c.insertion_rate == pytest.approx(2 / 6)


def test_gap_insertions_count_the_words_the_alignment_places_where_non_speech_lies():
    """Segment-aware insertions (issue 24): of the inserted words, those the word alignment puts between the
    speech segments where a non-speech segment lies (None in the parts); insertions inside speech are not."""
    assert metrics.gap_insertions(["a b", None, "c d"], "x a b y z c d w") == 2  # y z over the gap; x, w not
    assert metrics.gap_insertions([None, "a b", None, "c d", None], "x a b y z c d w") == 4
    assert metrics.gap_insertions(["a b", None, "c d"], "a b c d") == 0
    assert metrics.gap_insertions(["a b", "c d"], "a b y c d") == 0  # no non-speech segment: nothing is a gap's
    assert metrics.gap_insertions([None], "thank you") == 2  # all non-speech: every word is the gap's
