"""Stream mode's figures (runner/scoring/stream_metrics.py) on synthetic event timelines with exact expected numbers.

Every timeline is built as the container writes it (contract.STREAM_EVENTS) and passed through the contract's
own record check (EventRecord.from_json), so a timeline the host would refuse cannot make a test pass.
"""

from __future__ import annotations

import pytest
from edgeasr_entrypoint.contract import Event, EventRecord
from stream_timelines import MS, end, ev, paced, start, utterance

from runner.scoring.stream_metrics import Percentiles, changed_words, stream_block, stream_energy, stream_metrics


def test_a_steady_stream_keeps_its_lag_bounded():
    m = stream_metrics([start(), *paced(20, work_ms=100), end(n_chunks=20, audio_s=10.0)], "c0")
    assert m is not None and m.lag is not None
    assert m.lag.max_s == 0.0 and m.lag.end_s == 0.0 and m.lag.middle_s == 0.0
    assert m.lag.bounded is True
    assert m.chunk_latency_ms == Percentiles(20, 100.0, 100.0, 100.0, 100.0)
    assert m.n_streams == 1 and m.audio_s == 10.0 and m.chunk_ms == 500 and m.policy == "native"
    assert m.sustain_s == 60.0 and m.concurrency == 1 and m.batching.startswith("none: ")
    assert m.to_json()["lag_s"]["bounded"] is True


def test_a_slow_stream_falls_behind_and_its_lag_is_not_bounded():
    # 600 ms of work per 500 ms chunk: chunk j waits j * 100 ms. Window 0.5 s .. 20 s, middle 10.25 s: chunk 19
    # (delivered at 10 s) waited 1.9 s; at the end chunk 39 waited 3.9 s: 2.0 s of growth > 2 chunks (1.0 s).
    m = stream_metrics([start(), *paced(40, work_ms=600), end(n_chunks=40, audio_s=20.0)], "c0")
    assert m.lag.max_s == pytest.approx(3.9)
    assert m.lag.end_s == pytest.approx(3.9)
    assert m.lag.middle_s == pytest.approx(1.9)
    assert m.lag.growth_s == pytest.approx(2.0)
    assert m.lag.bound_s == 1.0
    assert m.lag.bounded is False
    assert m.lag.window_s == (0.0, pytest.approx(19.5))
    # the chunk's latency is its wait plus its work: chunk 39 was done 3.9 + 0.6 s after its delivery
    assert m.chunk_latency_ms.max == pytest.approx(4500.0)


def test_growth_of_exactly_two_chunks_is_still_bounded():
    # 20 chunks: middle 5.25 s -> chunk 9 (0.9 s), end chunk 19 (1.9 s): growth 1.0 s = 2 x 500 ms
    m = stream_metrics([start(), *paced(20, work_ms=600)], "c0")
    assert m.lag.growth_s == pytest.approx(1.0)
    assert m.lag.bounded is True


def test_finalization_first_partial_and_partial_stability_of_one_utterance():
    m = stream_metrics([start(), *paced(4, 50), *utterance(),
                        ev(Event.FINAL, 4400 * MS, stream=0, id="u2", play=0, text="bye",
                           first_delivered_ns=2500 * MS, last_delivered_ns=4000 * MS)], "c0")
    assert m.n_finals == 2
    assert m.finalization_ms.n == 2 and m.finalization_ms.max == pytest.approx(400.0)
    assert sorted(m.finalization_values_ms) == [pytest.approx(150.0), pytest.approx(400.0)]
    # first partial 0.8 s, the utterance's first chunk delivered at 0.5 s; u2 had no partial: counted, not 0
    assert m.first_partial_ms.n == 1 and m.first_partial_ms.p50 == pytest.approx(300.0)
    assert m.n_without_partial == 1
    # "hello"(1) kept; "hello word"(2): "word" changed; "hello world how"(3): "how" changed -> 2 of 6
    assert (m.stability.words_shown, m.stability.words_changed, m.stability.n_partials) == (6, 2, 3)
    assert m.stability.changed_share == pytest.approx(1 / 3)
    block = m.to_json()
    assert block["first_partial_ms"]["n_without_partial"] == 1
    assert block["partial_stability"]["changed_share"] == pytest.approx(1 / 3)


def test_partial_stability_counts_a_word_withdrawn_and_shown_again_as_changed():
    # "a b" then "a" then final "a b": the "b" of the first partial was taken back, whatever came after
    assert changed_words(["a b", "a"], "a b") == (3, 1)
    assert changed_words(["a", "a b", "a b c"], "a b c d") == (6, 0)  # only growth: nothing changed
    assert changed_words(["x y z"], "a b c") == (3, 3)
    assert changed_words([], "a") == (0, 0)


def test_partials_are_matched_to_their_stream_and_play():
    # the same utterance heard by stream 0 (play 0) and stream 1 (play 1): each final takes its own partials
    events = [start(0, concurrency=2), start(1, concurrency=2), *utterance(0, "u1", 0),
              ev(Event.PARTIAL, 3000 * MS, stream=1, id="u1", play=1, text="hi"),
              ev(Event.FINAL, 3600 * MS, stream=1, id="u1", play=1, text="hi", first_delivered_ns=2750 * MS,
                 last_delivered_ns=3500 * MS)]
    m = stream_metrics(events, "c0")
    assert m.n_streams == 2
    assert m.first_partial_ms.n == 2
    assert m.first_partial_ms.max == pytest.approx(300.0) and m.first_partial_ms.p50 == pytest.approx(275.0)
    assert m.stability.words_shown == 7 and m.stability.words_changed == 2


def test_p99_over_few_values_is_interpolated_and_says_its_n():
    p = Percentiles.of([100.0 * k for k in range(1, 11)])  # 100 .. 1000 ms
    assert (p.n, p.p50, p.p90, p.p99, p.max) == (10, 550.0, 910.0, pytest.approx(991.0), 1000.0)
    assert p.small_n is True
    assert Percentiles.of([]) == Percentiles(0)


def test_the_lag_window_is_where_every_stream_was_delivering():
    # stream 1 joins at 5 s and leaves at 7.5 s: the window is 5.5 .. 7.5 s, not stream 0's whole span
    s0 = paced(20, 0, stream=0)
    s1 = [ev(Event.CHUNK, (5500 + 600 * j + 100) * MS, stream=1, seq=j, delivered_ns=(5500 + 500 * j) * MS,
             start_ns=(5500 + 500 * j + 100 * j) * MS) for j in range(5)]
    m = stream_metrics([start(0, concurrency=2), start(1, concurrency=2), *s0, *s1], "c0")
    assert m.lag.window_s == (pytest.approx(5.0), pytest.approx(7.0))
    assert m.lag.end_s == pytest.approx(0.4)  # stream 1's chunk 4, delivered at 7.5 s
    assert m.lag.middle_s == pytest.approx(0.2)  # 6.5 s: stream 1's chunk 2
    assert [s.stream for s in m.lag_series] == [0, 1]


def test_no_stream_events_is_none_and_other_conditions_are_left_out():
    offline = [EventRecord.from_json({"event": Event.UTTERANCE_END, "t_ns": 1, "mono_ns": 1, "condition": "c0",
                                      "id": "u1", "duration_s": 1.0, "processing_s": 0.1})]
    assert stream_metrics(offline, "c0") is None
    assert stream_metrics([start(), *paced(3, 10)], "other") is None
    assert stream_metrics([start(), *paced(3, 10)], None).n_chunks == 3


def test_a_stream_without_finals_says_why_its_figures_are_missing():
    m = stream_metrics([start(), *paced(3, 10)], "c0")
    assert m.finalization_ms == Percentiles(0)
    assert m.unavailable["finalization_ms"] == "no utterance reached its final text"
    assert "first_partial_ms" in m.unavailable and "partial_stability" in m.unavailable
    assert m.to_json()["partial_stability"]["changed_share"] is None
    assert m.unavailable["audio_s"].startswith("1 of 1 streams did not end")


def test_the_lag_series_is_downsampled_keeping_each_buckets_peak():
    m = stream_metrics([start(), *paced(1000, work_ms=501)], "c0")
    (series,) = m.lag_series
    assert len(series.t_s) == 200
    assert series.lag_s[-1] == pytest.approx(m.lag.max_s)  # the last bucket's peak is the last chunk's lag


def test_energy_per_audio_second_and_power_per_stream():
    block = {"total_j": 120.0, "dynamic_j": 60.0, "avg_w": 12.0, "baseline_w": 6.0, "scope": "board input",
             "unavailable": {}}
    e = stream_energy(block, audio_s=40.0, n_streams=2)
    assert (e.j_per_audio_s, e.dynamic_j_per_audio_s, e.w_per_stream, e.dynamic_w_per_stream) == (3.0, 1.5, 6.0, 3.0)
    assert e.scope == "board input" and e.unavailable == {}


def test_energy_unavailable_says_why_never_zero():
    none = stream_energy(None, 40.0, 2)
    assert none.to_json()["j_per_audio_s"] is None
    assert none.unavailable["w_per_stream"] == "no energy block (no sampler ran)"
    unmeasured = {"total_j": None, "dynamic_j": None, "avg_w": None, "baseline_w": None,
                  "unavailable": {"total_j": "no sensor", "avg_w": "no sensor", "baseline_w": "no sensor",
                                  "dynamic_j": "no sensor"}}
    e = stream_energy(unmeasured, 40.0, 2)
    assert e.unavailable == dict.fromkeys(("j_per_audio_s", "dynamic_j_per_audio_s", "w_per_stream",
                                           "dynamic_w_per_stream"), "no sensor")
    no_base = stream_energy({"total_j": 10.0, "avg_w": 5.0, "dynamic_j": None, "baseline_w": None,
                             "unavailable": {"baseline_w": "not measured", "dynamic_j": "not measured"}}, 0.0, 1)
    assert no_base.j_per_audio_s is None and no_base.unavailable["j_per_audio_s"] == "no audio was delivered"
    assert no_base.w_per_stream == 5.0 and no_base.unavailable["dynamic_w_per_stream"] == "not measured"


def test_the_stream_block_carries_its_energy():
    m = stream_metrics([start(), *paced(4, 50), *utterance(), end(n_chunks=4, audio_s=2.0)], "c0")
    block = stream_block(m, {"total_j": 4.0, "avg_w": 2.0, "dynamic_j": 2.0, "baseline_w": 1.0})
    assert block["energy"]["j_per_audio_s"] == 2.0 and block["energy"]["w_per_stream"] == 2.0
    assert block["finalization_ms"]["p99"] == pytest.approx(150.0)
