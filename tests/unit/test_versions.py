"""Library versions: `images build --set` rewrites pins and labels, `images versions` compares pins with the
index (a fake index here: the comparison is pure), and an unreachable index never crashes it."""

import argparse
import subprocess
import tarfile

import pytest

from runner.backends import BACKENDS, IMAGES
from runner.errors import UserError
from runner.images import freshness
from runner.images import build as images_mod
from runner.images.freshness import NOT_REACHABLE, Pin, compare, held_reasons, label_pins, query_index, render
from runner.images.build import (_context, parse_overrides, parse_versions_label, pinned_versions, requirements_text,
                                 versions_label)

FW = BACKENDS["faster-whisper"]


# --- --set --------------------------------------------------------------------------------------------------


def test_set_rewrites_the_pin_and_the_versions_label():
    pinned = pinned_versions(requirements_text(FW))  # its own pins and the shared ones
    overrides = parse_overrides(["CTranslate2=4.6.0"])
    assert overrides == {"ctranslate2": "4.6.0"}
    text = requirements_text(FW, overrides)
    assert pinned_versions(text) == {**pinned, "ctranslate2": "4.6.0"}
    label = parse_versions_label(versions_label(FW, overrides))
    assert label["ctranslate2"] == "4.6.0" and label["faster-whisper"] == pinned["faster-whisper"]
    assert versions_label(FW) == versions_label(FW, {})  # no --set: the checkout's pins


def test_set_accepts_double_equals_and_refuses_what_is_not_name_version():
    assert parse_overrides(["faster_whisper==1.1.0"]) == {"faster-whisper": "1.1.0"}
    for bad in ("ctranslate2", "ctranslate2=", "=4.6.0", "ctranslate2=>4.6", "a b=1"):
        with pytest.raises(UserError, match="NAME=VERSION"):
            parse_overrides([bad])


def test_set_refuses_a_library_the_image_does_not_pin():
    with pytest.raises(UserError, match=r"torch: not pinned in containers/faster-whisper/requirements.txt.*ctranslate2"):
        requirements_text(FW, {"torch": "2.9.0"})


def test_set_changes_the_build_context_not_the_checkout():
    before = FW.requirements.read_text()
    with _context(FW, {"ctranslate2": "4.6.0"}) as buf:
        with tarfile.open(fileobj=buf) as tar:
            sent = tar.extractfile("faster-whisper/requirements.txt").read().decode()
            other = tar.extractfile("whisperx/requirements.txt").read().decode()
    assert pinned_versions(sent)["ctranslate2"] == "4.6.0"
    assert other == requirements_text(IMAGES["whisperx"])  # another image's: its own pins and the shared ones only
    assert FW.requirements.read_text() == before


def test_set_without_a_tag_is_refused(monkeypatch):
    from runner.commands import images as cmd

    monkeypatch.setattr(cmd.docker_engine, "connect", lambda: object())
    args = argparse.Namespace(images_cmd="build", backends=["faster-whisper"], overrides=["ctranslate2=4.6.0"],
                              tag=None, platform="x86", base="b", no_wheelhouse=True, log_dir=None)
    with pytest.raises(UserError, match="--set needs --tag"):
        cmd.main(args)


# --- images versions ----------------------------------------------------------------------------------------


def test_compare_says_current_behind_ahead_and_unknown_with_the_reason():
    pins = [Pin(image="fw", source="requirements.txt", library="ctranslate2", pinned="4.6.0"),
            Pin(image="fw", source="requirements.txt", library="soxr", pinned="1.1.0"),
            Pin(image="tb", source="requirements.txt", library="torch", pinned="2.8.0", held="whisperx pins it"),
            Pin(image="x", source="label", library="numpy", pinned="2.10.0"),
            Pin(image="x", source="label", library="jiwer", pinned="4.0.0")]
    newest = {"ctranslate2": "4.8.5", "soxr": "1.1.0", "torch": "2.15.0", "numpy": "2.9.1", "jiwer": None}
    rows = {(r.image, r.library): r for r in compare(pins, newest, {"jiwer": f"{NOT_REACHABLE} (timeout)"})}
    assert rows["fw", "ctranslate2"].status == "behind" and rows["fw", "ctranslate2"].newest == "4.8.5"
    assert rows["fw", "soxr"].status == "current"
    assert rows["tb", "torch"].status == "behind" and rows["tb", "torch"].note == "held: whisperx pins it"
    assert rows["x", "numpy"].status == "ahead"  # 2.10 > 2.9: versions, not strings, are compared
    assert rows["x", "jiwer"].status == "unknown" and rows["x", "jiwer"].note == f"{NOT_REACHABLE} (timeout)"


def test_held_reason_is_read_from_the_requirements_line():
    text = "torch==2.8.0  # held: whisperx 3.8.6 requires torch~=2.8.0\nsoxr==1.1.0\n# a comment\n"
    assert held_reasons(text) == {"torch": "whisperx 3.8.6 requires torch~=2.8.0"}
    assert pinned_versions(text) == {"torch": "2.8.0", "soxr": "1.1.0"}


def test_label_pins_read_the_versions_label():
    pins = label_pins("edgeasr/faster-whisper:ct2-4.6.0",
                      {"org.edgeasr.versions": "faster-whisper=1.2.1,ctranslate2=4.6.0"})
    assert [(p.library, p.pinned, p.source) for p in pins] == [("faster-whisper", "1.2.1", "label"),
                                                               ("ctranslate2", "4.6.0", "label")]
    assert label_pins("x", {}) == [] and label_pins("x", None) == []


def test_an_unreachable_index_gives_a_line_per_pin_and_exit_0(monkeypatch, capsys):
    """Offline: every line says the index was not reachable; nothing raises."""
    def no_network(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: x\nERROR: Could not fetch URL: connection refused")

    monkeypatch.setattr(freshness.subprocess, "run", no_network)
    newest, why = query_index(["ctranslate2", "soxr"])
    assert newest == {"ctranslate2": None, "soxr": None}
    assert why["soxr"].startswith(NOT_REACHABLE) and "connection refused" in why["soxr"]
    args = argparse.Namespace(images=["faster-whisper"], offline=False, json=False)
    assert freshness.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    pinned = pinned_versions(requirements_text(FW))  # its own pins and the shared ones
    assert len(out) == 1 + len(pinned)
    assert all(NOT_REACHABLE in line for line in out[1:])


def test_pip_newest_reads_pips_answer(monkeypatch):
    seen = {}

    def fake(cmd, **kw):
        seen["cmd"], seen["env"] = cmd, kw["env"]
        return subprocess.CompletedProcess(cmd, 0, "ctranslate2 (4.8.5)\nAvailable versions: 4.8.5, 4.6.0\n", "")

    monkeypatch.setattr(freshness.subprocess, "run", fake)
    assert freshness.pip_newest("ctranslate2") == ("4.8.5", "")
    assert seen["cmd"][-6:-4] == ["versions", "ctranslate2"] and seen["env"]["PIP_FIND_LINKS"] == ""


def test_render_aligns_and_appends_notes():
    rows = compare([Pin(image="fw", source="requirements.txt", library="ctranslate2", pinned="4.6.0", held="why")],
                   {"ctranslate2": "4.8.5"}, {})
    lines = render(rows)
    assert lines[0].split() == ["image", "from", "library", "pinned", "newest", "status"]
    assert lines[1].split()[:6] == ["fw", "requirements.txt", "ctranslate2", "4.6.0", "4.8.5", "behind"]
    assert lines[1].endswith("(held: why)")


def test_every_shipped_pin_is_newest_or_says_why_it_is_held(monkeypatch):
    """The repository's own requirements: with the index answering what it answered when they were last
    reviewed, a pin behind it must carry a `# held:` reason (the reviewed newest versions are in the test)."""
    reviewed = {"ctranslate2": "4.8.5", "faster-whisper": "1.2.1", "torch": "2.15.0", "torchaudio": "2.11.0",
                "transformers": "5.24.0", "whisperx": "3.8.6", "onnxruntime-gpu": "1.31.1"}
    pins = [p for p in freshness.requirement_pins(IMAGES.values()) if p.library in reviewed]
    rows = compare(pins, reviewed, {})
    unexplained = [(r.image, r.library, r.pinned) for r in rows if r.status == "behind" and not r.note]
    assert not unexplained
    fw = {r.library: r.status for r in rows if r.image == "faster-whisper"}
    assert fw == {"faster-whisper": "current", "ctranslate2": "current"}


def test_a_variants_own_requirements_are_listed_as_that_variants_pins(capsys):
    """The onnxruntime CUDA image installs onnxruntime-gpu from requirements-cuda.txt in place of onnxruntime:
    `images versions` lists that pin too (its `from` names the file, so the platform), with the file's `# held:`
    reason, and says a variant's pin is behind like any other."""
    ort = IMAGES["onnxruntime"]
    cuda = images_mod.variant_requirements(ort, "cuda")
    pins = [p for p in freshness.requirement_pins([ort]) if p.source == cuda.path.name]
    assert [(p.image, p.library, p.pinned) for p in pins] == [("onnxruntime", "onnxruntime-gpu",
                                                               cuda.pins["onnxruntime-gpu"])]
    assert "CUDA 12" in pins[0].held
    assert freshness.main(argparse.Namespace(images=["onnxruntime"], offline=True, json=False)) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["onnxruntime", "requirements-cuda.txt", "onnxruntime-gpu", cuda.pins["onnxruntime-gpu"]] in [
        row[:4] for row in rows]


def test_a_variant_pin_behind_without_a_reason_is_named_in_the_summary(monkeypatch, capsys):
    pin = Pin(image="onnxruntime", source="requirements-cuda.txt", library="onnxruntime-gpu", pinned="1.0")
    monkeypatch.setattr(freshness, "requirement_pins", lambda images: [pin])
    monkeypatch.setattr(freshness, "query_index", lambda libs: ({"onnxruntime-gpu": "2.0"}, {}))
    assert freshness.main(argparse.Namespace(images=["onnxruntime"], offline=False, json=False)) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith("1 pin(s) behind") and "onnxruntime/onnxruntime-gpu" in summary


def test_images_module_keeps_pin_names_normalised():
    assert pinned_versions("Faster_Whisper==1.2.1\n") == {"faster-whisper": "1.2.1"}
    assert images_mod._normalize("CTranslate2") == "ctranslate2"


def test_without_an_engine_the_requirements_still_answer(monkeypatch, capsys):
    monkeypatch.setattr(freshness, "query_index", lambda libs: ({}, {}))
    from runner.launch import docker_engine

    def no_engine():
        raise UserError("cannot reach the Docker Engine at unix:///x (DockerException)")

    monkeypatch.setattr(docker_engine, "connect", no_engine)
    assert freshness.main(argparse.Namespace(images=[], offline=False, json=False)) == 0
    captured = capsys.readouterr()
    assert "faster-whisper" in captured.out and "built images not read: cannot reach" in captured.err
