"""Shared test helpers: the repository root, real audio files written with soundfile, shared experiments, tone
studies, a sweep view that writes down what it is told, and the stream scheduler's scripted stand-ins."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def write_tone(path: Path, seconds: float = 1.0, sr: int = 16000, channels: int = 1, fmt: str | None = None) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.1 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, format=fmt)
    return path


def build_test_image(client, tag: str, files: dict[str, bytes]) -> None:
    """Build ``tag`` from an in-memory context (a Dockerfile and the files it copies): the e2e tests' throwaway
    images (hostile, malformed, slow backends), never shipped."""
    import io
    import tarfile

    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)


def subset_manifest(folder: Path, ids: list[str] | None = None, n: int | None = None) -> Path:
    """A manifest of some embedded utterances, with their audio copied beside it: audio must sit under the
    manifest's own folder (runner/launch/paths.py), so a manifest elsewhere pointing into data/default would be refused."""
    import json
    import shutil

    rows = [json.loads(line) for line in (ROOT / "data/default/manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if ids is None or r["id"] in ids][:n]
    folder = folder / "subset"
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copy(ROOT / "data/default" / r["audio"], folder / Path(r["audio"]).name)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(dict(r, audio=Path(r["audio"]).name)) + "\n" for r in rows))
    return path


def summary_record(wer=0.10, rtf=0.05, p50=200.0, rss=600.0, j=None, model="tiny.en", image="edgeasr/fw:1",
                   dataset="default", **extra) -> dict:
    """A run's summary.json as the merge writes it (the figures given, energy measured when ``j`` is)."""
    s = {"backend": "faster-whisper", "model": model, "quant": "int8", "device": "cpu", "dataset": dataset,
         "model_ref": f"/models/{model}", "data_path": "/data/default", "status": "ok", "error": None,
         "n_utterances": 2, "n_failed": 0, "n_scored": 2, "n_unreferenced": 0, "audio_s": 4.0, "wer": wer,
         "rtf": rtf, "sub": 1, "del": 0, "ins": 0, "latency_ms": {"p50": p50, "p90": p50, "p99": p50}, "peak_rss_mib": rss,
         "image": {"ref": image, "labels": {}}, "unavailable": {},
         "energy": ({"total_j": j * 4, "j_per_audio_s": j, "avg_w": 5.0, "source": "rapl", "scope": "CPU"}
                    if j is not None else {"total_j": None, "j_per_audio_s": None, "source": None,
                                           "unavailable": {"total_j": "no power sensor found (rapl: no)",
                                                           "j_per_audio_s": "no power sensor found (rapl: no)"}})}
    s["condition"] = {"key": "k1", "backend": s["backend"], "model": model, "quant": "int8", "device": "cpu",
                      "dataset": dataset, "model_ref": s["model_ref"], "data_path": s["data_path"],
                      "noise_type": "clean", "snr_db": None, "repeat": 0, "image": image, "axes": {}}
    s.update(extra)
    return s


def run_folder(tmp_path: Path, name: str, utts=(), **kw) -> Path:
    """A run folder (summary.json, utterances.jsonl) named ``name`` under ``tmp_path``."""
    import json

    folder = tmp_path / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary_record(**kw)))
    (folder / "utterances.jsonl").write_text("".join(json.dumps(u) + "\n" for u in utts))
    return folder


def command_args(module, *argv: str):
    """The argparse Namespace of a command module (runner/commands/<name>.py) for ``argv``."""
    import argparse

    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(list(argv))


def decode_axes_experiment(dataset: str) -> str:
    """Issue 10's sweep: batch size and beam size vary inside one loaded model, threads make two containers."""
    return f"""
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: {dataset}
  limit: 4
  decode: {{language: en}}
  warmup: 1
  telemetry: {{sampler: none}}
grid:
  decode.batch_size: [1, 2]
  decode.beam_size: [1, 5]
  decode.threads: [1, 2]
"""


def two_quant_experiment(name: str, telemetry: str = "{sampler: none}") -> str:
    """The sweep the recorded-engine tests plan over a tone_study: faster-whisper tiny.en on cpu over dataset d,
    no warm-up, two repeats, one group per quant (int8, fp32); ``telemetry`` is its telemetry mapping."""
    return f"""name: {name}
defaults:
  backend: faster-whisper
  model: tiny.en
  device: cpu
  dataset: d
  warmup: 0
  repeats: 2
  telemetry: {telemetry}
grid:
  quants: [int8, fp32]
"""


def tone_study(folder: Path, ids: tuple[str, ...] = ("a", "b")) -> Path:
    """What a run or a sweep on the recorded engine plans from, under ``folder``: a tiny.en model folder
    (models/tiny.en, placeholder model.bin and config.json) and a one-second tone per id with its reference
    "<id> tone" (d/<id>.wav, d/<id>.txt). Returns ``folder``."""
    models = folder / "models" / "tiny.en"
    models.mkdir(parents=True, exist_ok=True)
    (models / "model.bin").write_bytes(b"x")
    (models / "config.json").write_text("{}")
    for uid in ids:
        write_tone(folder / "d" / f"{uid}.wav")
        (folder / "d" / f"{uid}.txt").write_text(f"{uid} tone")
    return folder


class RecordingView:
    """A SweepView (runner/sweep.py) that writes down what it is told: its notes (level, text), the sweep's starts
    and the groups a planner added; each group gets the executor's default callbacks."""

    def __init__(self):
        self.notes, self.starts, self.added_todo = [], [], []

    def note(self, text, level="info"):
        self.notes.append((level, text))

    @contextlib.contextmanager
    def running(self, start):
        self.starts.append(start)
        yield

    def added(self, todo, info=""):
        self.added_todo.append(todo)

    def callbacks(self, job):
        from runner.execute import Callbacks

        return Callbacks()

    def status(self, text):
        return contextlib.nullcontext()


def tone_spec(tmp_path: Path, out: str = "run", engine: str | None = None, **changes):
    """A resolved spec over two one-second tones (ids a, b) with references; ``changes`` replace settings
    (``power=PowerSettings(...)``), ``engine`` names the engine it is planned for."""
    from dataclasses import replace

    from runner.spec import Settings, TelemetrySettings, build_run_spec

    tone_study(tmp_path)
    settings = replace(Settings(backend="faster-whisper", model="tiny.en", quant="int8", device="cpu",
                                dataset=str(tmp_path / "d"), telemetry=TelemetrySettings(sampler="none")), **changes)
    extra = {} if engine is None else {"engine": engine}
    return build_run_spec(settings, out=str(tmp_path / out), models_dir=tmp_path / "models", **extra)


def recorded_group(tmp_path: Path, keys=("kA", "kB")):
    """Two conditions (``keys``) of one recorded container (tests/fixtures/group_raw) and the executor's group."""
    import shutil

    from runner import execute, plan
    from runner.experiment import Condition
    from runner.telemetry.samplers.base import NullSampler

    spec = tone_spec(tmp_path, "sweep")
    raw = tmp_path / "g" / "raw"
    shutil.copytree(ROOT / "tests/fixtures/group_raw", raw)
    conds = tuple(plan.PlannedCondition(k, "g", Condition(dataset=str(spec.dataset.path), noise_type="clean",
                                                          snr_db=None, repeat=i), {"type": "clean", "snr_db": None},
                                        "clean", ("a", "b"), result_dir=tmp_path / "conditions" / k,
                                        axes={"repeat": i})
                  for i, k in enumerate(keys))
    job = plan.GroupJob("g", spec, None, conds, tmp_path / "g")
    g = execute._Group(job, list(conds), raw, NullSampler("off"), "telemetry turned off", {"cpu_count": 2},
                       "docker", {})
    return job, g


# -- the stream scheduler's scripted stand-ins (edgeasr_entrypoint/stream.py, on tests/fake_clock.py's clock) --------


class Recorder:
    """The scheduler's emit, recording each event as EventLog would write it (clocks from the fake clock)."""

    def __init__(self, clock):
        self.clock = clock
        self.events = []

    def __call__(self, name, **fields):
        record = {"event": name, "t_ns": self.clock.time_ns(), "mono_ns": self.clock.monotonic_ns(), **fields}
        self.events.append(record)
        return record

    def named(self, name, **match):
        return [e for e in self.events if e["event"] == name and all(e.get(k) == v for k, v in match.items())]


class WordSession:
    """A scripted incremental decoder: one word per chunk piece it hears ("wN", N samples), and the words so far as
    the final. ``cost_s``: the fake seconds each call takes (advanced on ``clock``: a slow backend)."""

    def __init__(self, clock=None, cost_s=0.0):
        self.clock, self.cost_s = clock, cost_s
        self.words = []
        self.closed = False

    def _work(self):
        if self.clock is not None and self.cost_s:
            self.clock.advance(self.cost_s)

    def accept(self, chunk):
        self._work()
        self.words.append("w{}".format(len(chunk)))
        return " ".join(self.words)

    def finish(self):
        text, self.words = " ".join(self.words), []
        return text

    def close(self):
        self.closed = True


@contextlib.contextmanager
def engine_lock(name: str):
    """An exclusive lock across test processes (`make test` runs two pytest workers, a file's tests in one): for a
    test that watches the engine for what another file's test does (test_doctor_e2e's "no CUDA image was built"
    beside test_cuda_image_e2e's build of one). A file in the temporary folder, held with flock: released however
    the holder ends."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / f"edgeasr-tests-{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
