"""Issue 24 item 1: long recordings of real speech with non-speech segments (silence or noise at a level in
dBFS RMS, of a seeded duration) between the joined utterances, and the segment map in the manifest."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import write_tone

from runner.cli import main
from runner.data.dataset import Dataset, Utterance
from runner.data.lengths import Segment, build_ladder, plan_items, read_segments
from runner.data.load import load_dataset
from runner.errors import UserError


def test_seeded_gap_durations_lie_in_their_range_and_add_up():
    """Each gap is drawn from [gap_s, gap_max_s] by the item's own seed: the same seed gives the same gaps,
    another seed others, and an item's duration is its utterances plus its gaps."""
    durs = [("a", 2.0, "one"), ("b", 3.0, "two"), ("c", 4.0, "three"), ("d", 1.0, "four")]
    items = plan_items(durs, [10.0], per_length=2, gap_s=0.5, gap_max_s=2.0, seed=7)
    assert plan_items(durs, [10.0], per_length=2, gap_s=0.5, gap_max_s=2.0, seed=7) == items
    assert plan_items(durs, [10.0], per_length=2, gap_s=0.5, gap_max_s=2.0, seed=8) != items
    for item in items:
        assert len(item.gaps_s) == len(item.sources) - 1
        assert all(0.5 <= g <= 2.0 for g in item.gaps_s)
        assert item.duration_s == pytest.approx(sum(d for i, d, _ in durs if i in item.sources) + sum(item.gaps_s),
                                                abs=1e-3)
    fixed = plan_items(durs, [5.0], per_length=1, gap_s=0.5)
    assert fixed[0].gaps_s == (0.5,)  # no range: every gap is gap_s, as before


def _tones(tmp_path: Path) -> Dataset:
    utts = []
    for i, secs in enumerate((1.0, 1.5, 2.0)):
        path = write_tone(tmp_path / "src" / f"t{i}.flac", seconds=secs).resolve()
        utts.append(Utterance(f"t{i}", path, f"word{i}"))
    return Dataset("src", (tmp_path / "src").resolve(), "folder", tuple(utts), ((tmp_path / "src").resolve(),))


def _rms_dbfs(x: np.ndarray) -> float:
    return 20 * math.log10(math.sqrt(float(np.mean(np.asarray(x, dtype=np.float64) ** 2))))


def test_noise_gaps_are_at_their_level_and_the_segment_map_says_where_everything_is(tmp_path):
    out = tmp_path / "long"
    [item] = build_ladder(_tones(tmp_path), [6.0], out, per_length=1, gap_s=1.0, gap_max_s=1.5,
                          gap_type="white", gap_dbfs=-30.0, seed=1)
    [row] = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert row["text"] == "word0 word1 word2"  # the reference is the joined speech: any word over a gap is inserted
    segs = read_segments(row)
    assert [s.kind for s in segs] == ["speech", "white", "speech", "white", "speech"]
    assert [s.source for s in segs if s.kind == "speech"] == ["t0", "t1", "t2"]
    assert [s.text for s in segs if s.kind == "speech"] == ["word0", "word1", "word2"]
    assert segs[0].start_s == 0.0 and segs[-1].end_s == row["duration_s"]
    assert all(a.end_s == b.start_s for a, b in zip(segs, segs[1:]))  # contiguous, no sample lost or doubled
    assert [round(s.end_s - s.start_s, 6) for s in segs if s.kind == "speech"] == [1.0, 1.5, 2.0]
    assert [round(s.end_s - s.start_s, 6) for s in segs if s.kind == "white"] == [round(g, 6) for g in item.gaps_s]
    audio, sr = sf.read(out / row["audio"], dtype="float64")
    for s in segs:
        part = audio[round(s.start_s * sr):round(s.end_s * sr)]
        if s.kind == "white":
            assert _rms_dbfs(part) == pytest.approx(-30.0, abs=0.05)
            assert s.level_dbfs == -30.0
        else:
            assert _rms_dbfs(part) == pytest.approx(20 * math.log10(0.1 / math.sqrt(2)), abs=0.05)  # the tone
    assert load_dataset(out).utterances[0].reference == "word0 word1 word2"


def test_silence_gaps_are_zeros_and_are_in_the_map_too(tmp_path):
    out = tmp_path / "quiet"
    build_ladder(_tones(tmp_path), [3.0], out, per_length=1, gap_s=0.25)
    [row] = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    segs = read_segments(row)
    assert [(s.kind, s.start_s, s.end_s) for s in segs] == [("speech", 0.0, 1.0), ("silence", 1.0, 1.25),
                                                            ("speech", 1.25, 2.75)]
    audio, sr = sf.read(out / row["audio"])
    assert not np.any(audio[16000:20000]) and segs[1].level_dbfs is None


def test_a_segment_map_that_does_not_add_up_is_refused_with_the_reason():
    row = {"id": "x", "duration_s": 2.0, "segments": [
        {"kind": "speech", "start_s": 0.0, "end_s": 1.0, "source": "a", "text": "hi"},
        {"kind": "silence", "start_s": 1.5, "end_s": 2.0}]}
    with pytest.raises(UserError, match=r"x: segment 1 starts at 1.5 s, not where segment 0 ends \(1 s\)"):
        read_segments(row)
    assert read_segments({"id": "y"}) == ()  # a manifest row without a map: none
    with pytest.raises(UserError, match="segment 0 has kind 'hum'"):
        read_segments({"id": "z", "duration_s": 1.0, "segments": [{"kind": "hum", "start_s": 0.0, "end_s": 1.0}]})


def test_the_command_takes_the_gap_options(tmp_path, capsys):
    _tones(tmp_path)
    out = tmp_path / "cli"
    assert main(["data", "lengths", "--from", str(tmp_path / "src"), "--seconds", "6", "--out", str(out),
                 "--per-length", "1", "--gap-type", "pink", "--gap-s", "0.5", "--gap-max-s", "1",
                 "--gap-dbfs", "-40", "--seed", "3"]) == 0
    [row] = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    kinds = {s.kind for s in read_segments(row)}
    assert kinds == {"speech", "pink"} and {s.level_dbfs for s in read_segments(row) if s.kind == "pink"} == {-40.0}
    assert main(["data", "lengths", "--from", str(tmp_path / "src"), "--seconds", "6", "--out", str(tmp_path / "x"),
                 "--gap-type", "hum"]) == 2
    assert "hum" in capsys.readouterr().err
    assert isinstance(Segment, type)


def test_a_non_speech_source_joins_as_nothing_and_only_a_missing_reference_leaves_the_item_without_one():
    durs = [("a", 2.0, "one"), ("b", 2.0, ""), ("c", 2.0, None)]
    items = plan_items(durs, [4.0], per_length=3, gap_s=0.0)
    assert [(i.sources, i.text) for i in items] == [(("a", "b"), "one"), (("b", "c"), None), (("c", "a"), None)]
    assert plan_items([("s", 1.0, "")], [1.0], per_length=1)[0].text == ""  # all non-speech: a non-speech item
