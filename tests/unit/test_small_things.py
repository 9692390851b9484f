"""Issue 28 item 7: small things a user sees at once, each with its test."""

import io
import json
import re
from pathlib import Path

import pytest
from helpers import ROOT, command_args
from helpers import run_folder as _run_folder
from rich.console import Console

from runner import settings
from runner.commands import noise as noise_cmd
from runner.commands import report as report_cmd
from runner.errors import UserError
from runner.report import worst
from runner.report.table import print_summary
from runner.results import SCHEMA_VERSION

BAD = {"id": "u2", "status": "ok", "wer": 1.0, "latency_s": 0.5, "duration_s": 2.0, "reference": "a b",
       "hypothesis": "c d"}


def test_the_readme_says_the_summary_schema_the_files_carry():
    readme = (ROOT / "README.md").read_text()
    said = re.findall(r"\*\*`summary.json`\*\* \(schema version (\d+)\)", readme)
    assert said == [str(SCHEMA_VERSION)]


def test_zero_threads_is_refused_with_its_flag():
    args = command_args(settings, "--threads", "0")
    _, problems = settings.from_args(args)
    assert len(problems) == 1 and "--threads" in problems[0]
    assert settings.from_args(command_args(settings, "--threads", "2"))[1] == []


def test_a_misspelt_noise_type_names_the_flag_and_the_nearest_type(tmp_path):
    args = command_args(noise_cmd, "preview", "--type", "pinkk", "--snr", "10", "--out", str(tmp_path / "x.wav"))
    with pytest.raises(UserError) as exc:
        noise_cmd.main(args)
    text = str(exc.value)
    assert "--type pinkk" in text and "pink" in text and "noise.type" not in text and "[" not in text


def test_every_noise_preview_option_has_help():
    import argparse

    p = argparse.ArgumentParser()
    noise_cmd.add_arguments(p)
    preview = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices["preview"]
    for action in preview._actions:
        assert action.help, action.option_strings


def test_fewer_than_one_babble_talker_is_refused(tmp_path):
    args = command_args(noise_cmd, "preview", "--type", "babble", "--snr", "10", "--babble-talkers", "0",
                        "--out", str(tmp_path / "x.wav"))
    with pytest.raises(UserError, match="--babble-talkers"):
        noise_cmd.main(args)


def test_report_of_a_plain_file_says_it_is_a_file(tmp_path):
    f = tmp_path / "summary.json"
    f.write_text("{}")
    with pytest.raises(UserError) as exc:
        report_cmd.main(command_args(report_cmd, str(f), "--no-figures"))
    assert "does not exist" not in str(exc.value) and "is a file" in str(exc.value)
    assert str(tmp_path) in str(exc.value)  # says which folder to pass


def test_the_worst_list_counts_repeats_from_1_and_shows_an_utterance_once(tmp_path):
    """Two repeats with the same bad utterance: one line, at its worst, its repeat counted as progress does."""
    w = worst.worst([("", [BAD], 1), ("", [dict(BAD, latency_s=0.9)], 2)], n=3)
    assert [u.id for u in w.by_wer] == ["u2"] and [u.id for u in w.by_latency] == ["u2"]
    text = "\n".join(worst.lines(w))
    assert "repeat 2 of 2" in text and "repeat 0" not in text


def test_the_run_view_of_repeats_shows_each_bad_utterance_once(tmp_path):
    reps = [_run_folder(tmp_path, f"r{i}", utts=[BAD]) for i in range(3)]
    folder = _run_folder(tmp_path, "run", utts=[])
    s = json.loads((folder / "summary.json").read_text())
    s["repeats"] = {"n": 3, "folders": [str(r) for r in reps]}
    out = io.StringIO()
    print_summary(s, Console(file=out, width=200), folder=folder)
    text = out.getvalue()
    assert text.count("u2 ·") == 2  # once by WER, once by latency
    assert "repeat 0" not in text and "of 3" in text


def test_a_failed_sweep_condition_names_its_repeat_from_1(tmp_path):
    from runner.commands.sweep import print_outcome

    from runner.results import ConditionRecord
    from runner.sweep import SweepOutcome

    rec = ConditionRecord.of({"backend": "b", "model": "tiny.en", "quant": "int8", "noise_type": "clean",
                              "snr_db": None, "repeat": 0}, {"status": "error", "error": "boom"})

    out = io.StringIO()
    print_outcome(SweepOutcome(tmp_path, (rec,), 0, 1.0), Console(file=out, width=200))
    assert "repeat 1: boom" in out.getvalue()


def test_check_image_says_how_to_add_a_missing_label_never_none():
    from runner.commands.check_image import label_checks

    checks = {name: (ok, detail) for name, ok, detail in label_checks({})}
    ok, detail = checks["label org.edgeasr.backend"]
    assert not ok and "None" not in detail and "LABEL org.edgeasr.backend=" in detail
    ok, detail = checks["label org.edgeasr.versions"]
    assert not ok and "LABEL org.edgeasr.versions=" in detail
    _, ok, detail = label_checks({"org.edgeasr.backend": "faster-whisper"})[1]
    assert ok and "'faster-whisper'" in detail


def test_check_image_takes_an_older_contract_label_and_writes_its_test_job_in_it():
    """Issue 21 item 2: an image of an older contract (not below the oldest a job is written in) passes the label
    check, saying what it lacks; its tiny job is written in the contract it speaks, so it can read it."""
    from edgeasr_entrypoint.contract import CONTRACT_VERSION, MIN_CONTRACT_VERSION, features_after

    from runner.backends import BACKENDS
    from runner.commands.check_image import label_checks, tiny_job

    name, ok, detail = label_checks({"org.edgeasr.contract": "3"})[0]
    assert name == "label org.edgeasr.contract" and ok
    assert f"this runner speaks {MIN_CONTRACT_VERSION} to {CONTRACT_VERSION}" in detail
    assert all(f in detail for f in features_after(3))
    _, ok, detail = label_checks({"org.edgeasr.contract": str(CONTRACT_VERSION)})[0]
    assert ok and "lacks" not in detail
    for bad in ("1", "four"):
        _, ok, detail = label_checks({"org.edgeasr.contract": bad})[0]
        assert not ok and repr(bad) in detail
    fw = BACKENDS["faster-whisper"]
    assert tiny_job(fw, "/models/m", "int8", version=3)["contract_version"] == 3
    assert tiny_job(fw, "/models/m", "int8")["contract_version"] == CONTRACT_VERSION


def test_models_list_has_a_header_and_names_pocketsphinx_en_us(tmp_path, capsys):
    from runner.commands import models as models_cmd

    assert models_cmd.main(command_args(models_cmd, "list", "--models-dir", str(tmp_path))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["MODEL", "STATE", "NOTE"]
    en_us = next(x for x in lines if x.startswith("en-us"))
    assert "pocketsphinx" in en_us and "not installed" not in en_us


def test_the_run_view_piped_never_wraps_a_path_or_a_quote(tmp_path, capsys, monkeypatch):
    """Piped (not a terminal): rich's 80 columns split "run folder:" from its path and wrapped hypotheses
    inside their quotes; the real width is used where there is one, else lines are never wrapped."""
    from runner.commands import run as run_cmd

    monkeypatch.delenv("COLUMNS", raising=False)
    deep = tmp_path / ("x" * 90)
    deep.mkdir()
    long_bad = dict(BAD, reference="word " * 14, hypothesis="other " * 12)
    folder = _run_folder(deep, "run", utts=[long_bad])
    s = json.loads((folder / "summary.json").read_text())
    err = io.StringIO()
    run_cmd.show_result(s, folder, Console(file=err), as_json=False, fmt="table")
    assert f"run folder: {folder}" in err.getvalue()
    out = capsys.readouterr().out
    worst_lines = [x for x in out.splitlines() if "ref \"" in x]
    assert worst_lines and all(x.rstrip().endswith('"') for x in worst_lines)


def test_build_log_lines_show_no_source_location():
    from runner.commands import images as images_cmd

    console = images_cmd.build_console(quiet=False)
    console.file = io.StringIO()
    console.log("building edgeasr/faster-whisper")
    text = console.file.getvalue()
    assert "building edgeasr/faster-whisper" in text and ".py:" not in text


def test_model_completion_offers_model_names_not_files(tmp_path, monkeypatch):
    import argparse

    from runner.commands.completion import setting_completer
    from runner.settings import LEAVES

    rule = next(lf.rule for lf in LEAVES.values() if lf.rule.flag == "--model")
    complete = setting_completer(rule)
    mine = tmp_path / "my-model"
    mine.mkdir()
    (mine / "config.json").write_text("{}")
    (mine / "model.bin").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    names = complete(prefix="", parsed_args=argparse.Namespace(models_dir=tmp_path))
    assert "tiny.en" in names and "en-us" in names and "my-model" in names and "notes.txt" not in names
    assert complete(prefix="ti", parsed_args=argparse.Namespace(models_dir=tmp_path))[0] == "tiny.en"
    assert complete(prefix="./") == ["./my-model/"]


def test_after_an_interrupt_the_utterances_that_never_ran_are_not_counted_as_failed(tmp_path, monkeypatch):
    from helpers import recorded_group

    from runner import execute
    from runner.report.table import summary_rows

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    job, g = recorded_group(tmp_path, keys=("kA", "kC"))  # kC: a condition the container never reached
    cut = execute.finalize(g, job.conditions[1], "interrupted by SIGINT", interrupted=True)
    assert cut["status"] == "interrupted" and cut["n_failed"] == 0 and cut["n_not_run"] == 2
    rows = [json.loads(x) for x in (tmp_path / "conditions" / "kC" / "utterances.jsonl").read_text().splitlines()]
    assert {r["status"] for r in rows} == {"not_run"}
    assert "2 not run" in dict(summary_rows(cut))["utterances"]
    err = execute.finalize(g, job.conditions[1], "the container ended before this condition")
    assert err["n_failed"] == 2 and err["n_not_run"] == 0  # not an interrupt: they failed


def test_make_run_installs_only_the_model_of_its_backend(tmp_path, capsys):
    """`make run BACKEND=pocketsphinx` hashed every Whisper model; now it installs what the run uses."""
    from runner.commands import models as models_cmd

    assert models_cmd.for_run("pocketsphinx", None) == ([], False)
    assert models_cmd.for_run("faster-whisper", None) == (["tiny.en"], False)
    assert models_cmd.for_run("faster-whisper", ["base"]) == (["base"], False)
    assert models_cmd.for_run("faster-whisper", ["/my/model"]) == ([], False)
    assert models_cmd.for_run("transformers", ["tiny.en"])[1] is True  # loads the Hugging Face conversion
    with pytest.raises(UserError, match="not a backend"):
        models_cmd.for_run("nope", None)
    assert models_cmd.main(command_args(models_cmd, "install", "--for", "pocketsphinx",
                                        "--models-dir", str(tmp_path / "m"))) == 0
    assert not (tmp_path / "m").exists() and "nothing to install" in capsys.readouterr().err
    make = (ROOT / "Makefile").read_text()
    assert "run: venv run-model " in make and "models install --for $(BACKEND)" in make


def test_run_help_groups_its_options():
    """94 lines of options in one list: grouped by what they set, each settings flag and run option in one."""
    from runner import cli

    parser = cli._parser()
    run = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices["run"]
    groups = {g.title: [o for a in g._group_actions for o in a.option_strings] for g in run._action_groups}
    for title in ("model", "data", "decode", "telemetry", "power", "container", "output"):
        assert groups.get(title), title
    assert "--beam-size" in groups["decode"] and "--data" in groups["data"] and "--power-mode" in groups["power"]
    assert {"--out", "--format", "--json"} <= set(groups["output"])
    assert {"--models-dir", "--offline"} <= set(groups["model"]) and "--mem-limit" in groups["container"]
    grouped = {o for t, opts in groups.items() if t not in ("options", "positional arguments") for o in opts}
    every = {lf.rule.flag for lf in settings.LEAVES.values() if lf.rule.flag}
    assert every <= grouped  # no settings flag left ungrouped


def test_a_resumed_sweep_leaves_no_empty_progress_lines(tmp_path):
    """Nothing left to run: no "sweep 0/0" bar; the current condition's bar appears when one starts."""
    from types import SimpleNamespace

    from runner.commands.sweep import SweepConsoleView
    from runner.sweep import SweepStart

    view = SweepConsoleView(Console(file=io.StringIO()))
    with view.running(SweepStart("x", tmp_path, (), ())):
        assert not any(t.visible for t in view.progress.tasks)
    view = SweepConsoleView(Console(file=io.StringIO()))
    job = SimpleNamespace(label="g", conditions=("c1", "c2"), spec=None)
    with view.running(SweepStart("x", tmp_path, (job,), ((job, ["c1", "c2"]),))):
        overall, current = view.progress.tasks
        assert overall.visible and not current.visible
        view.callbacks(job).on_condition_start(SimpleNamespace(ids=("a", "b"), label="clean"))
        assert view.progress.tasks[1].visible and view.progress.tasks[1].total == 2
