"""Security and data safety on the real engine: what a live backend container gets, folder locks,
reaping of dead owners' containers, check-image under the hardened settings. (Content-keyed resume and corrupt
results redone need no container: tests/unit/test_sweep.py.)

The review that prompted these found a manifest entry outside the dataset making the runner mount the
host's `/` into the container (Docker socket included), running as uid 0.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from helpers import ROOT, subset_manifest, write_tone

pytestmark = pytest.mark.e2e

IMAGE = "edgeasr/faster-whisper:latest"
OWNER_FOLDER = "org.edgeasr.owner.folder"


@pytest.fixture(scope="module", autouse=True)
def models_installed():
    """tiny.en installed (and readable by the containers' unprivileged user: `models install` sees to it)."""
    r = subprocess.run([sys.executable, "-m", "runner.cli", "models", "install", "tiny.en"], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr


def edgeasr(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_container(client, folder: Path, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = client.containers.list(filters={"label": f"{OWNER_FOLDER}={folder}"})
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no container for {folder} started within {timeout} s")


def test_live_container_of_an_escaping_manifest_sees_only_its_own_folders(tmp_path):
    """A manifest naming /etc/passwd, a ../ escape and a symlink to /etc/shadow: the live container has
    exactly three mounts (the audio folder, the model, the output), runs confined, and cannot see the host's
    Docker socket; the escaping entries end as per-utterance errors that say why."""
    data = tmp_path / "data"
    manifest = subset_manifest(tmp_path, ["harvard-01-01", "harvard-01-02"])
    audio_dir = manifest.parent
    write_tone(tmp_path / "outside.flac")
    (audio_dir / "shadow.flac").symlink_to("/etc/shadow")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows += [{"id": "abs", "audio": "/etc/passwd", "text": "x"}, {"id": "up", "audio": "../outside.flac", "text": "x"},
             {"id": "link", "audio": "shadow.flac", "text": "x"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    proc = start("run", "--data", str(manifest), "--out", str(out), "--warmup", "30", "--telemetry", "none")
    client = docker.from_env()
    try:
        c = wait_for_container(client, out)
        attrs = client.api.inspect_container(c.id)
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        assert {m["Source"] for m in mounts.values()} == {str(audio_dir), str(ROOT / "models" / "tiny.en"),
                                                          str(out / "raw")}
        assert not mounts["/data/0"]["RW"] and not mounts["/models/tiny.en"]["RW"] and mounts["/out"]["RW"]
        hc = attrs["HostConfig"]
        assert hc["CapDrop"] == ["ALL"] and hc["SecurityOpt"] == ["no-new-privileges"]
        assert hc["ReadonlyRootfs"] is True and hc["PidsLimit"] and hc["PidsLimit"] > 0
        assert hc["NetworkMode"] == "none" and hc["Memory"] > 0 and "/tmp" in hc["Tmpfs"]
        user = attrs["Config"]["User"]
        assert user and not user.startswith("0:") and user != "0"
        # from inside: not root, no socket, no writable root filesystem
        probe = ("import os, pathlib\n"
                 "print(os.getuid(), os.path.exists('/var/run/docker.sock'), os.path.exists('/run/docker.sock'))\n"
                 "try:\n pathlib.Path('/opt/x').write_text('x'); print('wrote')\n"
                 "except OSError as e: print('refused', e.errno)")
        code, output = c.exec_run(["/opt/venv/bin/python", "-c", probe])
        assert code == 0, output
        uid, sock1, sock2, *write = output.decode().split()
        assert uid != "0" and sock1 == sock2 == "False" and write[0] == "refused"
    finally:
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err  # finished, with the three refused entries failed
    utts = {json.loads(line)["id"]: json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()}
    assert utts["harvard-01-01"]["status"] == utts["harvard-01-02"]["status"] == "ok"
    assert "system file" in utts["abs"]["error"] and "/etc/passwd" in utts["abs"]["error"]
    assert "outside the dataset's root" in utts["up"]["error"] and "--audio-root" in utts["up"]["error"]
    assert "system file" in utts["link"]["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hardening"]["read_only_rootfs"] is True and summary["hardening"]["cap_drop"] == ["ALL"]


def test_two_sweeps_at_once_into_one_folder(tmp_path):
    """The second sweep into a folder in use is refused at once (exit 2, naming the holder); the first
    finishes with every condition ok and its container untouched."""
    exp = tmp_path / "twice.yaml"
    exp.write_text("name: twice\ndefaults:\n  model: tiny.en\n  quant: int8\n  dataset: data/default\n  limit: 2\n"
                   "  warmup: 30\n  repeats: 2\n  decode: {beam_size: 1, language: en}\n"
                   "  telemetry: {sampler: none}\n")
    out = tmp_path / "out"
    first = start("sweep", str(exp), "--out", str(out))
    client = docker.from_env()
    try:
        wait_for_container(client, out)
        second = edgeasr("sweep", str(exp), "--out", str(out), timeout=120)
        assert second.returncode == 2, second.stderr
        last = second.stderr.strip().splitlines()[-1]
        assert last.startswith(f"edgeasr: {out} is in use by edgeasr sweep (pid {first.pid} on ")
        assert "Traceback" not in second.stderr
        assert client.containers.list(filters={"label": f"{OWNER_FOLDER}={out}"}), "the first sweep's container"
    finally:
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    records = [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)


def test_two_runs_into_one_folder(tmp_path):
    out = tmp_path / "run"
    first = start("run", "--out", str(out), "--warmup", "30", "--telemetry", "none",
                  "--data", str(subset_manifest(tmp_path, n=1)))
    try:
        wait_for_container(docker.from_env(), out)
        second = edgeasr("run", "--out", str(out), timeout=120)
        assert second.returncode == 2
        assert f"is in use by edgeasr run (pid {first.pid} on " in second.stderr
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads((out / "summary.json").read_text())["status"] == "ok"


def test_kill_9_of_a_run_leaves_a_container_that_the_next_run_reaps(tmp_path):
    out = tmp_path / "killed"
    proc = start("run", "--out", str(out), "--warmup", "200", "--telemetry", "none")
    client = docker.from_env()
    container = wait_for_container(client, out)
    proc.send_signal(signal.SIGKILL)  # no cleanup of any kind runs
    proc.wait()
    assert client.containers.list(filters={"label": f"{OWNER_FOLDER}={out}"}), "kill -9 leaves the container"
    nxt = edgeasr("run", "--out", str(tmp_path / "next"), "--data", str(subset_manifest(tmp_path, n=1)),
                  "--warmup", "0", "--telemetry", "none")
    assert nxt.returncode == 0, nxt.stderr
    assert (f"removed leftover container {container.name} of edgeasr run (pid {proc.pid}" in
            " ".join(nxt.stderr.split()))
    assert not client.containers.list(all=True, filters={"label": f"{OWNER_FOLDER}={out}"})


def test_an_image_that_needs_a_writable_root_fails_check_image_naming_the_setting(tmp_path):
    """check-image runs the tiny job under the hardened settings and says which one breaks an image."""
    client = docker.from_env()
    adapter = (b"import edgeasr_backend_faster_whisper as real\n"
               b"def load(job):\n    open('/var/tmp/scratch', 'w').write('x')  # /var/tmp is 1777: only the read-only root stops it\n"
               b"    return real.load(job)\n")
    context = io.BytesIO()
    import tarfile
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, body in (("Dockerfile", b"FROM edgeasr/faster-whisper:latest\nCOPY needs_rw.py /opt/edgeasr/\n"
                                          b"ENV EDGEASR_ADAPTER=needs_rw\n"), ("needs_rw.py", adapter)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    context.seek(0)
    tag = "edgeasr/needs-writable-root-for-test:latest"
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    try:
        r = edgeasr("check-image", tag)
        assert r.returncode == 1
        line = next(l for l in r.stdout.splitlines() if "hardened settings" in l)
        assert line.startswith("FAIL") and "a read-only root filesystem" in line, r.stdout
    finally:
        client.images.remove(tag, force=True)


def test_a_full_disk_during_a_run_is_one_sentence_and_leaves_no_tmp(tmp_path):
    """--out on a 24 KiB tmpfs fills up mid-run: one sentence, exit 1, no *.tmp, no container left."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.getuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(disk)],
                                          capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        out = disk / "run"
        r = edgeasr("run", "--out", str(out), "--telemetry", "none", "--warmup", "0", "--beam-size", "1")
        assert r.returncode == 1, r.stderr
        assert "no space left on the device" in r.stderr and "Traceback" not in r.stderr
        assert not list(disk.rglob("*.tmp"))
        client = docker.from_env()
        assert not client.containers.list(all=True, filters={"label": f"{OWNER_FOLDER}={out}"})
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_sigterm_of_a_sweep_keeps_what_finished_and_says_how_to_resume(tmp_path):
    exp = tmp_path / "term.yaml"
    exp.write_text("name: term\ndefaults:\n  model: tiny.en\n  quant: int8\n  dataset: data/default\n  limit: 2\n"
                   "  warmup: 0\n  repeats: 6\n  decode: {beam_size: 1, language: en}\n"
                   "  telemetry: {sampler: none}\n")
    out = tmp_path / "out"
    proc = start("sweep", str(exp), "--out", str(out))
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.glob("conditions/*/summary.json"))) < 2:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    text = " ".join(err.split())
    assert "interrupted by SIGTERM" in text and "rerun the same command to resume" in text
    done = len([json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()])
    assert 2 <= done < 6 and f"{done} of 6 condition(s) are recorded" in text
    assert not docker.from_env().containers.list(all=True, filters={"label": f"{OWNER_FOLDER}={out}"})
    again = edgeasr("sweep", str(exp), "--out", str(out))
    assert again.returncode == 0 and f"{done} already done" in " ".join(again.stderr.split())
