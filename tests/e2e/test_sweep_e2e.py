"""Sweeps end to end on the real engine: compose (runner in a container), kill -9 and resume, failure isolation."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest
from helpers import ROOT, decode_axes_experiment

pytestmark = pytest.mark.e2e

SWEEP_LABEL = "org.edgeasr.sweep"


def _compose() -> list[str]:
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    return ["docker", "compose"] if v2 else ["docker-compose"]


def _experiment(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + body)
    return path


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]


def sweep(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", "sweep", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _base_image(client) -> str:
    """BASE_IMAGE for the runner image's build: the environment's, else the local debootstrapped base where
    the engine holds it (no registry needed), else the public one."""
    from runner.images.build import LOCAL_BASE, PUBLIC_BASE, image_exists

    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    return PUBLIC_BASE if image_exists(client, PUBLIC_BASE) or not image_exists(client, LOCAL_BASE) else LOCAL_BASE


def test_docker_compose_up_sweep(tmp_path):
    """`docker compose up sweep` from a state where the runner image is absent (a throwaway tag): compose
    builds it, the runner runs in it against the host engine, and produces results, a manifest and the
    report's figures in the project's results folder, all of them the project owner's (a root-owned project, as
    in CI, keeps a root runner, whose backend container runs as the unprivileged uid 10001)."""
    client = docker.from_env()
    tag = f"edgeasr/runner:e2e-{uuid.uuid4().hex[:8]}"
    rel = f"results/e2e-compose-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, EXPERIMENT="test-tiny", EDGEASR_RESULTS_DIR=rel, PWD=str(ROOT),
               EDGEASR_RUNNER_IMAGE=tag, BASE_IMAGE=_base_image(client))
    try:
        r = subprocess.run([*_compose(), "up", "--exit-code-from", "sweep", "sweep"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=900)
        subprocess.run([*_compose(), "down"], cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert client.images.get(tag).labels.get("org.edgeasr.image") == "runner"  # compose built it
        out = ROOT / rel / "sweeps" / "test-tiny"
        records = _records(out)
        assert len(records) == 4 and len({r["condition"]["key"] for r in records}) == 4
        assert all(r["status"] == "ok" for r in records)
        owner = ROOT.stat()
        ids = (0, 0) if owner.st_uid == 0 else (owner.st_uid, owner.st_gid)  # root: root's own group
        assert {(p.lstat().st_uid, p.lstat().st_gid) for p in [out, *out.rglob("*")]} == {ids}
        users = {r["summary"]["hardening"]["user"] for r in records}
        assert users == ({"10001:10001"} if owner.st_uid == 0 else {"%d:%d" % ids})
        by = {(r["condition"]["noise_type"], r["condition"]["repeat"]): r["summary"] for r in records}
        assert by[("white", 0)]["wer"] >= by[("clean", 0)]["wer"]  # 10 dB white noise does not help
        assert by[("clean", 0)]["wer"] == by[("clean", 1)]["wer"]  # deterministic decoding
        assert by[("white", 0)]["wer"] == by[("white", 1)]["wer"]  # seeded noise: identical repeats
        # one container: every condition reports the same model load
        assert len({s["load_s"] for s in by.values()}) == 1
        csv_lines = (out / "results.csv").read_text().splitlines()
        assert len(csv_lines) == 5 and csv_lines[0].startswith("key,group_key,backend,model,model_ref,quant")
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["name"] == "test-tiny" and manifest["finished_at"]
        assert manifest["git_commit"] or (ROOT / ".git").is_file()  # a git worktree: its .git is outside the mount
        assert manifest["experiment"]["counts"] and manifest["host"]["cpu_count"] >= 1
        image = next(iter(manifest["images"].values()))
        assert image["labels"]["org.edgeasr.backend"] == "faster-whisper"
        pngs = sorted(p.name for p in (out / "report").glob("*.png"))
        # the study figures with data (insertions against SNR: issue 24), then the latency ones its per-utterance
        # files allow; telemetry none: the two energy figures have no data and are no PNG (issue 22, item 15)
        assert pngs == ["insertions_by_noise.png", "latency_distribution.png", "latency_vs_length.png",
                        "rtf_ram_by_model_quant.png", "wer_by_noise.png"]
        # telemetry none: the two energy figures have no data; the page lists them as not drawn
        page = (out / "report" / "report.html").read_text()
        assert page.count("data:image/png;base64,") == 5
        assert page.count(": not drawn (") == 2
        assert not client.containers.list(all=True, filters={"label": f"org.edgeasr.owner.folder={out}"})
    finally:
        shutil.rmtree(ROOT / rel, ignore_errors=True)
        try:
            client.images.remove(tag)
        except docker.errors.ImageNotFound:
            pass


RESUME = """
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: data/default
  limit: 2
  decode: {beam_size: 1, language: en}
  warmup: 0
  repeats: 2
  noise: {types: [white, pink], snr_db: [20, 5], clean: true}
  telemetry: {sampler: none}
"""


def test_kill_9_mid_sweep_then_rerun_loses_and_duplicates_nothing(tmp_path):
    exp = _experiment(tmp_path, "resume", RESUME)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "sweep", str(exp), "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.glob("conditions/*/summary.json"))) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # no cleanup of any kind runs
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("conditions/*/summary.json")}
    assert 3 <= len(finished) < 10, "kill the sweep part-way"

    r = sweep(str(exp), "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{len(finished)} already done" in r.stderr.replace("\n", " ")
    records = _records(out)
    keys = [rec["condition"]["key"] for rec in records]
    assert len(records) == 10 and len(set(keys)) == 10  # (clean + 2 types x 2 SNR) x 2 repeats
    assert all(rec["status"] == "ok" for rec in records)
    for key, mtime in finished.items():  # finished conditions were skipped, not redone
        assert (out / "conditions" / key / "summary.json").stat().st_mtime_ns == mtime
    assert len((out / "results.csv").read_text().splitlines()) == 11
    client = docker.from_env()
    # the orphan was removed (this sweep's: the engine may be shared)
    assert not client.containers.list(all=True, filters={"label": f"org.edgeasr.owner.folder={out}"})

    again = sweep(str(exp), "--out", str(out))
    assert again.returncode == 0 and "10 already done" in again.stderr.replace("\n", " ")
    assert [rec["condition"]["key"] for rec in _records(out)] == keys


ISOLATION = """
defaults:
  backend: faster-whisper
  model: tiny.en
  device: cpu
  dataset: data/default
  limit: 2
  decode: {beam_size: 1, language: en}
  warmup: 0
  telemetry: {sampler: none}
grid:
  quants: [fp32, int8]
entries:
  - match: {quant: fp32}
    set: {mem_limit: 60m}
"""


def test_a_failing_condition_is_recorded_and_the_sweep_goes_on(tmp_path):
    exp = _experiment(tmp_path, "isolation", ISOLATION)
    out = tmp_path / "out"
    r = sweep(str(exp), "--out", str(out))
    assert r.returncode == 1, r.stderr[-3000:]  # some condition failed
    records = {rec["condition"]["quant"]: rec for rec in _records(out)}
    assert records["fp32"]["status"] == "error"
    assert records["fp32"]["error"] == "out of memory: the kernel killed the container (mem_limit 60m)"
    assert records["fp32"]["summary"]["wer"] is None
    assert records["int8"]["status"] == "ok" and records["int8"]["summary"]["wer"] is not None
    assert (out / "report" / "report.html").exists()


AXES = decode_axes_experiment("data/default")


def test_decode_axes_vary_inside_one_loaded_model_and_threads_make_groups(tmp_path):
    """Issue 10: beam size is an axis the entrypoint varies inside one loaded model (one load_start per
    container, two conditions each, every one decoded with its own settings); threads changes the container, and
    so does the batch size, which changes the memory a loaded model holds (issue 22, item 1): four groups.
    (What --plan shows of it: tests/unit/test_sweep.py.)"""
    exp = _experiment(tmp_path, "axes", AXES)
    out = tmp_path / "out"
    r = sweep(str(exp), "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    records = _records(out)
    assert len(records) == 8 and all(rec["status"] == "ok" for rec in records)
    points = {(rec["condition"]["axes"]["decode.threads"], rec["condition"]["decode"]["batch_size"],
               rec["condition"]["decode"]["beam_size"]) for rec in records}
    assert points == {(t, b, k) for t in (1, 2) for b in (1, 2) for k in (1, 5)}
    group_dirs = sorted((out / "groups").iterdir())
    assert len(group_dirs) == 4
    for gdir in group_dirs:
        events = [json.loads(line) for line in (gdir / "raw" / "events.jsonl").read_text().splitlines()]
        assert [e["event"] for e in events].count("load_start") == 1  # the model is loaded once
        starts = [e for e in events if e["event"] == "condition_start"]
        assert len({e["decode"]["batch_size"] for e in starts}) == 1  # one batch size per container
        assert sorted(e["decode"]["beam_size"] for e in starts) == [1, 5]
    for rec in records:  # each condition's summary carries the decoding it really ran
        assert rec["summary"]["decode"]["beam_size"] == rec["condition"]["decode"]["beam_size"]
    batched = [rec for rec in records if rec["condition"]["decode"]["batch_size"] == 2]
    header = (out / "results.csv").read_text().splitlines()[0]
    assert "axes.decode.batch_size" in header and "axes.decode.beam_size" in header
    assert batched and all(rec["summary"]["wer"] is not None for rec in batched)
