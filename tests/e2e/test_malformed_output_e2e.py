"""Issue 20, item 4 on the real engine: malformed container output is a failed condition, never a crash and never
a number, and one bad group never stops a sweep.

The images are built FROM the shipped faster-whisper image with an entrypoint of their own (tests/e2e: never
shipped): it runs the real job, then spoils what it wrote. Tagged edgeasr-test/malformed-<mode>, removed when
the module ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from helpers import ROOT, build_test_image, subset_manifest

pytestmark = pytest.mark.e2e

IMAGE = "edgeasr/faster-whisper:latest"
#: The image's error: markup rich would act on, a sequence that retitles a terminal.
ERROR_TEXT = "RuntimeError: [link=https://example.invalid]HOSTILE[/link] \x1b]0;pwned\x07 the backend failed late"

ENTRYPOINT = r'''
"""A backend image that does the real job, then spoils its output (MALFORMED_MODE)."""
import json, os, subprocess, sys

MODE, OUT = os.environ["MALFORMED_MODE"], "/out"
code = subprocess.call([sys.executable, "-m", "edgeasr_entrypoint", *sys.argv[1:]])


def rows(name):
    with open(os.path.join(OUT, name)) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write(name, records):
    with open(os.path.join(OUT, name), "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)


if MODE == "error-after":  # complete events and results, then an error status and exit code 1
    with open(os.path.join(OUT, "status.json")) as fh:
        status = json.load(fh)
    status.update(status="error", error=__ERROR__)
    with open(os.path.join(OUT, "status.json"), "w") as fh:
        json.dump(status, fh)
    sys.exit(1)
if MODE == "garbage":  # a negative processing time, seconds as text, NaN, a clock that runs backwards; exit 0
    results = rows("transcripts.jsonl")
    again = dict(results[0], duration_s="1.0", latency_s=float("nan"))
    results[0]["processing_s"] = -5.0
    write("transcripts.jsonl", results + [again])
    events = rows("events.jsonl")
    events[-1]["mono_ns"] = 0
    write("events.jsonl", events)
    sys.exit(code)
sys.exit(f"unknown MALFORMED_MODE {MODE}")
'''
MODES = ("error-after", "garbage")


@pytest.fixture(scope="module", autouse=True)
def models_installed():
    r = subprocess.run([sys.executable, "-m", "runner.cli", "models", "install", "tiny.en"], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def images():
    """{mode: tag}; removed afterwards."""
    client = docker.from_env()
    tags = {}
    try:
        for mode in MODES:
            dockerfile = (f"FROM {IMAGE}\nENV MALFORMED_MODE={mode}\n"
                          "COPY malformed.py /opt/malformed.py\n"
                          'ENTRYPOINT ["/opt/venv/bin/python", "/opt/malformed.py"]\n').encode()
            tags[mode] = f"edgeasr-test/malformed-{mode}:latest"
            build_test_image(client, tags[mode], {
                "Dockerfile": dockerfile, "malformed.py": ENTRYPOINT.replace("__ERROR__", repr(ERROR_TEXT)).encode()})
        yield tags
    finally:
        for tag in tags.values():
            try:
                client.images.remove(tag, force=True)
            except docker.errors.ImageNotFound:
                pass


def edgeasr(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_an_error_status_after_complete_events_fails_the_run_and_says_the_error(images, tmp_path):
    """Today: status ok, exit 0, the image's error nowhere. Now the run fails (exit 1) with the image's error
    in summary.json as it was, and on the terminal with its control characters written out and its markup
    shown as text."""
    out = tmp_path / "run"
    r = edgeasr("run", "--image", images["error-after"], "--data", str(subset_manifest(tmp_path, n=1)),
                "--out", str(out), "--telemetry", "none", "--warmup", "0", "--beam-size", "1")
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "unexpected error" not in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "error"
    assert summary["error"] == f"the container failed after this condition had finished: {ERROR_TEXT}"
    terminal = " ".join(r.stderr.split())
    assert "run failed" in terminal and "[link=https://example.invalid]HOSTILE[/link]" in terminal
    assert "\\x1b]0;pwned\\x07" in terminal and "\x1b" not in r.stderr + r.stdout


def test_a_sweep_goes_on_past_groups_whose_output_is_bad_on_every_run(images, tmp_path):
    """Three groups, the two bad ones first: each bad one is an error record saying why, the shipped image's
    condition is ok; a rerun and a --retry-failed rerun run everything they should, and never stop early."""
    data = subset_manifest(tmp_path, n=1)
    exp = tmp_path / "bad-groups.yaml"
    exp.write_text(f"name: bad-groups\ndefaults:\n  model: tiny.en\n  quant: int8\n  dataset: {data}\n  warmup: 0\n"
                   "  decode: {beam_size: 1, language: en}\n  telemetry: {sampler: none}\n"
                   f"grid:\n  images: [{images['garbage']}, {images['error-after']}, {IMAGE}]\n")
    out = tmp_path / "out"

    def records() -> dict[str, dict]:
        rows = [json.loads(x) for x in (out / "conditions.jsonl").read_text().splitlines()]
        return {r["condition"]["image"]: r for r in rows}

    for attempt in ((), ("--retry-failed",)):
        r = edgeasr("sweep", str(exp), "--out", str(out), *attempt)
        assert r.returncode == 1, r.stderr[-3000:]
        assert "Traceback" not in r.stderr and "\x1b" not in r.stderr
        got = records()
        assert set(got) == {images["garbage"], images["error-after"], IMAGE}, r.stderr[-3000:]
        assert got[IMAGE]["status"] == "ok"
        garbage = got[images["garbage"]]
        assert garbage["status"] == "error"
        assert garbage["error"].startswith("the container's output broke the contract: ")
        assert "processing_s is -5.0, below 0" in garbage["error"] and "runs backwards" in garbage["error"]
        assert "NaN" not in (out / "conditions.jsonl").read_text()
        late = got[images["error-after"]]
        assert late["status"] == "error" and ERROR_TEXT in late["error"]
        terminal = " ".join(r.stderr.split())
        assert "3 conditions recorded" in terminal and "2 not ok" in terminal
    again = edgeasr("sweep", str(exp), "--out", str(out))
    assert again.returncode == 1 and "3 already done" in " ".join(again.stderr.split()), again.stderr[-3000:]
