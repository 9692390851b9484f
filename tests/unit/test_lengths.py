"""`edgeasr data lengths`: an input-length ladder made of whole utterances of real speech."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from runner.cli import main
from runner.data.lengths import parse_seconds, plan_items
from runner.data.load import load_dataset
from runner.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def test_items_join_whole_utterances_to_the_length_nearest_the_target():
    """Utterances are added while that brings the total nearer the target, gaps counted; references joined."""
    durs = [("a", 2.0, "one"), ("b", 3.0, "two"), ("c", 4.0, "three")]
    items = plan_items(durs, [1.0, 5.0, 9.0], per_length=1, gap_s=0.5)
    assert [i.sources for i in items] == [("a",), ("a", "b"), ("a", "b", "c")]
    assert [i.duration_s for i in items] == [2.0, 5.5, 10.0]
    assert items[1].text == "one two"


def test_items_of_one_length_start_at_different_utterances_and_a_missing_reference_is_not_invented():
    """Item k starts k utterances later, wrapping around; an item with an unreferenced source has no text."""
    durs = [("a", 2.0, "one"), ("b", 2.0, None), ("c", 2.0, "three")]
    items = plan_items(durs, [4.0], per_length=3, gap_s=0.0)
    assert [i.sources for i in items] == [("a", "b"), ("b", "c"), ("c", "a")]
    assert [i.text for i in items] == [None, None, "three one"]


def test_a_length_beyond_the_whole_dataset_and_a_bad_list_are_clear_errors():
    """No item repeats an utterance, so a target longer than all the speech is refused, naming the total."""
    with pytest.raises(UserError, match="holds 4.0 s of audio in all"):
        plan_items([("a", 2.0, "x"), ("b", 2.0, "y")], [30.0], per_length=1, gap_s=0.0)
    # the utterances' audio holds pauses and the joins add gaps: audio, never "speech" (issue 28 item 7)
    with pytest.raises(UserError) as exc:
        plan_items([("a", 2.0, "x"), ("b", 2.0, "y")], [30.0], per_length=1, gap_s=0.5)
    assert "4.5 s of audio in all (2 utterances and the 0.5 s gaps between them)" in str(exc.value)
    assert "speech" not in str(exc.value)
    with pytest.raises(UserError, match="'x' is not a number"):
        parse_seconds("1,x")
    with pytest.raises(UserError, match="positive"):
        parse_seconds("0,2")
    assert parse_seconds("10, 1,2,2") == (1.0, 2.0, 10.0)


def test_the_command_writes_a_manifest_dataset_that_run_can_read(tmp_path, capsys):
    """From data/default: FLAC items whose length is the sum of their sources plus gaps, read back by
    load_dataset with the joined references."""
    out = tmp_path / "ladder"
    assert main(["data", "lengths", "--from", str(ROOT / "data/default"), "--seconds", "5,10",
                 "--out", str(out), "--per-length", "2"]) == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["target_s"] for r in rows] == [5.0, 5.0, 10.0, 10.0]
    for row in rows:
        info = sf.info(out / row["audio"])
        assert info.samplerate == 16000 and info.channels == 1
        assert abs(info.duration - row["duration_s"]) < 0.01
        assert abs(row["duration_s"] - row["target_s"]) < 2.0
    ds = load_dataset(out)
    assert len(ds.readable) == 4 and ds.utterances[0].reference.count(".") == len(rows[0]["sources"])
    assert "run it with --data" in capsys.readouterr().out
    assert main(["data", "lengths", "--from", str(ROOT / "data/default"), "--seconds", "5",
                 "--out", str(out)]) == 2  # never overwrites a dataset
