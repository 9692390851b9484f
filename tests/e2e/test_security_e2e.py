"""Security and data safety on the real engine: what a live backend container gets, folder locks,
reaping of dead owners' containers, check-image under the hardened settings. (Content-keyed resume and corrupt
results redone need no container: tests/unit/test_sweep.py.)

The review that prompted these found a manifest entry outside the dataset making the runner mount the
host's `/` into the container (Docker socket included), running as uid 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from helpers import ROOT, build_test_image, subset_manifest, write_tone

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
    exactly its two audio files (each mounted alone: not their folder, which holds the manifest and its
    references), the model and the output, runs confined, and cannot see the host's Docker socket; the
    escaping entries end as per-utterance errors that say why."""
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
        audio = [str(audio_dir / f"harvard-01-0{i}.flac") for i in (1, 2)]
        assert {m["Source"] for m in mounts.values()} == {*audio, str(ROOT / "models" / "tiny.en"), str(out / "raw")}
        assert not any(mounts[f"/data/0/harvard-01-0{i}.flac"]["RW"] for i in (1, 2))
        assert not mounts["/models/tiny.en"]["RW"] and mounts["/out"]["RW"]
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
                 "except OSError as e: print('refused', e.errno)\n"
                 "print(','.join(sorted(os.listdir('/data/0'))))")
        code, output = c.exec_run(["/opt/venv/bin/python", "-c", probe])
        assert code == 0, output
        uid, sock1, sock2, *write, listed = output.decode().split()
        assert uid != "0" and sock1 == sock2 == "False" and write[0] == "refused"
        assert listed == "harvard-01-01.flac,harvard-01-02.flac"  # no manifest, no references, no neighbours
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
    tag = "edgeasr/needs-writable-root-for-test:latest"
    dockerfile = b"FROM edgeasr/faster-whisper:latest\nCOPY needs_rw.py /opt/edgeasr/\nENV EDGEASR_ADAPTER=needs_rw\n"
    build_test_image(client, tag, {"Dockerfile": dockerfile, "needs_rw.py": adapter})
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


# --- hostile images (issue 20, items 1 and 2) ---------------------------------------------------------------
#
# Each is built FROM the shipped faster-whisper image with its own entrypoint (tests/e2e: never shipped; the
# entrypoint in edgeasr-test/hostile-base, the mode an ENV on it), tagged edgeasr-test/hostile-<mode>, and removed
# when the module ends. HOSTILE_SECRET and HOSTILE_VICTIM are host files the image names in the links it plants:
# the runner (root here) must never read the one nor write the other.

HOSTILE_ENTRYPOINT = r'''
"""A hostile backend image: it does the real job (or not), then plays one trick on the host runner."""
import os, subprocess, sys, time

MODE, SECRET, VICTIM, OUT = os.environ["HOSTILE_MODE"], os.environ["HOSTILE_SECRET"], os.environ["HOSTILE_VICTIM"], "/out"


def real():
    return subprocess.call([sys.executable, "-m", "edgeasr_entrypoint", *sys.argv[1:]])


def plant(name, make):
    path = os.path.join(OUT, name)
    if os.path.lexists(path):
        os.unlink(path)
    make(path)


if MODE == "links":  # finished outputs swapped for links to a root-only host file and to /dev/zero
    code = real()
    plant("status.json", lambda p: os.symlink(SECRET, p))
    plant("transcripts.jsonl", lambda p: os.symlink("/dev/zero", p))
    sys.exit(code)
if MODE == "fifo":  # finished outputs swapped for FIFOs: a reader that opens one waits forever
    code = real()
    plant("status.json", os.mkfifo)
    plant("transcripts.jsonl", os.mkfifo)
    sys.exit(code)
if MODE == "plant":  # links where the runner writes, left for the next attempt; then fail, so that it reruns
    plant("job.json.tmp", lambda p: os.symlink(VICTIM, p))
    plant("container.log", lambda p: os.symlink(VICTIM, p))
    os.mkfifo(os.path.join(OUT, "events.jsonl.tmp"))
    sys.exit(1)
if MODE == "flood-log":  # 40 MB of log, then the traceback that says what went wrong
    line = b"noise " * 15 + b"\n"
    for _ in range(40 * 1024 * 1024 // len(line)):
        sys.stdout.buffer.write(line)
    sys.stdout.flush()
    sys.stderr.write("Traceback (most recent call last):\nHOSTILE-FINAL-TRACEBACK: the real reason\n")
    sys.exit(1)
if MODE == "long-event":  # an event line without end
    sys.stdout.buffer.write(b"EDGEASR_EVENT {\"event\": \"utterance_end\", \"hypothesis\": \"")
    for _ in range(64):
        sys.stdout.buffer.write(b"x" * (1 << 20))
        sys.stdout.flush()
    time.sleep(600)
if MODE == "fill":  # an output folder that only grows
    for i in range(2048):
        with open(os.path.join(OUT, f"fill-{i}"), "wb") as fh:
            fh.write(os.urandom(1 << 20))
        time.sleep(0.02)
    time.sleep(600)
sys.exit(f"unknown HOSTILE_MODE {MODE}")
'''
HOSTILE_MODES = ("links", "fifo", "plant", "flood-log", "long-event", "fill")
SECRET_TEXT = "HOSTILE-SECRET-CONTENT"
VICTIM_TEXT = "root's file, which no image may change\n"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """{mode: image tag}, and the secret and victim files; the images are removed afterwards."""
    host = tmp_path_factory.mktemp("hostile-host")
    secret, victim = host / "secret.json", host / "victim.txt"
    secret.write_text(json.dumps({"status": "ok", "error": None, "versions": {"leak": SECRET_TEXT}}))
    victim.write_text(VICTIM_TEXT)
    for f in (secret, victim):
        f.chmod(0o600)
    client = docker.from_env()
    # The entrypoint in one image the modes share, each mode one ENV step on it: every build step commits a
    # container by walking the whole image on this engine (fuse-overlayfs), a few seconds each (issue 26).
    base = "edgeasr-test/hostile-base:latest"
    tags = {"base": base}
    try:
        dockerfile = (f"FROM {IMAGE}\nCOPY hostile.py /opt/hostile.py\n"
                      'ENTRYPOINT ["/opt/venv/bin/python", "/opt/hostile.py"]\n')
        build_test_image(client, base, {"Dockerfile": dockerfile.encode(), "hostile.py": HOSTILE_ENTRYPOINT.encode()})
        for mode in HOSTILE_MODES:
            tags[mode] = f"edgeasr-test/hostile-{mode}:latest"
            env = f"ENV HOSTILE_MODE={mode} HOSTILE_SECRET={secret} HOSTILE_VICTIM={victim}\n"
            build_test_image(client, tags[mode], {"Dockerfile": f"FROM {base}\n{env}".encode()})
        yield {"images": tags, "secret": secret, "victim": victim}
    finally:
        for tag in reversed(tags.values()):
            try:
                client.images.remove(tag, force=True)
            except docker.errors.ImageNotFound:
                pass


def hostile_run(hostile, mode: str, tmp_path: Path, *extra: str, timeout: float = 300):
    out = tmp_path / "run"
    r = edgeasr("run", "--image", hostile["images"][mode], "--data", str(subset_manifest(tmp_path, n=1)),
                "--out", str(out), "--telemetry", "none", "--warmup", "0", "--beam-size", "1", *extra,
                timeout=timeout)
    return r, out


def regular_files_text(folder: Path) -> str:
    """Every regular file under ``folder`` (links not followed), as text: what the run wrote."""
    parts = []
    for here, _, names in os.walk(folder):
        for name in names:
            p = Path(here, name)
            if p.is_file() and not p.is_symlink():
                parts.append(p.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_links_an_image_leaves_are_refused_never_read(hostile, tmp_path):
    """status.json a link to a root-only host file (its contents were copied into summary.json) and
    transcripts.jsonl a link to /dev/zero (it exhausted memory): neither is read; the run fails with a
    sentence naming each, and the secret is nowhere in what the run wrote or printed."""
    r, out = hostile_run(hostile, "links", tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "error"
    assert "raw/status.json is a symbolic link (left by the image); not read" in summary["error"]
    assert "raw/transcripts.jsonl is a symbolic link (left by the image); not read" in summary["error"]
    assert SECRET_TEXT not in regular_files_text(out) and SECRET_TEXT not in r.stdout + r.stderr
    assert "leak" not in summary["versions"]


def test_fifos_an_image_leaves_never_block_the_run(hostile, tmp_path):
    """A FIFO in place of status.json hung the run forever (a reader waits for a writer)."""
    t0 = time.monotonic()
    r, out = hostile_run(hostile, "fifo", tmp_path, timeout=240)
    assert r.returncode == 1, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert "raw/status.json is a FIFO (named pipe) (left by the image); not read" in summary["error"]
    assert time.monotonic() - t0 < 200


def test_check_image_of_an_image_that_leaves_fifos_fails_without_hanging(hostile):
    r = edgeasr("check-image", hostile["images"]["fifo"], timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    line = next(line for line in r.stdout.splitlines() if "tiny job: output files" in line)
    assert line.startswith("FAIL") and "out/status.json is a FIFO (named pipe) (left by the image)" in line


def test_a_rerun_never_writes_through_what_the_last_attempt_planted(hostile, tmp_path):
    """The first attempt leaves raw/job.json.tmp and raw/container.log as links to a root-only host file: the
    rerun's atomic write of the job went through the first and overwrote it. Each attempt now gets a new
    output folder; the job is created there before the container starts and the log is kept outside it."""
    exp = tmp_path / "plant.yaml"
    data = subset_manifest(tmp_path, n=1)
    exp.write_text(f"name: plant\ndefaults:\n  model: tiny.en\n  quant: int8\n  dataset: {data}\n  warmup: 0\n"
                   f"  image: {hostile['images']['plant']}\n  decode: {{beam_size: 1, language: en}}\n"
                   "  telemetry: {sampler: none}\n")
    out = tmp_path / "out"
    first = edgeasr("sweep", str(exp), "--out", str(out))
    assert first.returncode == 1, first.stderr[-3000:]
    (group,) = (out / "groups").iterdir()
    assert (group / "raw" / "job.json.tmp").is_symlink()  # what the image left
    again = edgeasr("sweep", str(exp), "--out", str(out), "--retry-failed")
    assert again.returncode == 1, again.stderr[-3000:]
    assert hostile["victim"].read_text() == VICTIM_TEXT
    job = group / "raw" / "job.json"
    assert job.is_file() and not job.is_symlink() and json.loads(job.read_text())["backend"] == "faster-whisper"
    assert (group / "container.log").is_file() and not (group / "container.log").is_symlink()
    assert sorted(p.name for p in group.iterdir() if p.name.startswith(".")) == []  # nothing parked


def test_a_flood_of_log_keeps_its_start_its_end_and_says_what_was_cut(hostile, tmp_path):
    """40 MB of log: the engine's rotation dropped the last 70 % of it and the final traceback. The runner
    keeps the first 1 MiB and the last 4 MiB, with a line saying how much was cut between them."""
    r, out = hostile_run(hostile, "flood-log", tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    log = (out / "container.log").read_bytes()
    assert len(log) < 5 * 2**20 + 1024
    cut = log.index(b"bytes of this log were cut here; it keeps the first 1 MiB and the last 4 MiB")
    # the traceback is in the kept end, after the cut; not necessarily its last bytes: the engine copies
    # stdout and stderr from two pipes, so up to a pipe's worth of stdout may still follow it
    assert log.startswith(b"noise noise") and b"HOSTILE-FINAL-TRACEBACK: the real reason" in log[cut:]


def test_an_event_line_without_end_stops_the_container(hostile, tmp_path):
    """64 MiB without a newline after the event prefix (the reader was quadratic in it, and held it all):
    past limits.event_line_mib the container is stopped and the run fails with the sentence."""
    t0 = time.monotonic()
    r, out = hostile_run(hostile, "long-event", tmp_path, "--timeout", "240")
    assert r.returncode == 1 and (out / "summary.json").is_file(), r.stderr[-3000:]
    error = json.loads((out / "summary.json").read_text())["error"]
    assert error == ("the container printed an event line of more than 1 MiB (limits.event_line_mib); "
                     "the container was stopped")
    assert time.monotonic() - t0 < 200  # stopped, not timed out
    assert not docker.from_env().containers.list(all=True, filters={"label": f"{OWNER_FOLDER}={out}"})


def test_an_output_folder_that_only_grows_stops_the_container(hostile, tmp_path):
    """Past --output-limit-mib the container is stopped (it would fill the host's disk) and the run says why."""
    r, out = hostile_run(hostile, "fill", tmp_path, "--output-limit-mib", "16", "--timeout", "240")
    assert r.returncode == 1, r.stderr[-3000:]
    error = json.loads((out / "summary.json").read_text())["error"]
    assert error == ("the container's output folder grew past 16 MiB (limits.output_mib, --output-limit-mib); "
                     "the container was stopped")
    used = sum(p.stat().st_size for p in (out / "raw").iterdir())
    assert used < 48 * 2**20, used
