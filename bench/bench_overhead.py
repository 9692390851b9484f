"""Harness overhead benchmark: edgeasr's inference window vs a bare faster-whisper script with exactly the
image's library versions, interleaved, so that the ratio measures the harness, not the version or the noise.

- The bare side runs in a host venv holding the versions the image's `org.edgeasr.versions` label names
  (`.venv-bench-<hash>`, made once per set of versions): a bare script on other releases would compare
  CTranslate2 versions (4.6.0 vs 4.8.5 differ by 12-16 % on CPU int8), not the harness.
- N pairs (default 5), interleaved (bare, harness, then harness, bare, ...) so that drift of a shared
  machine hits both sides alike. One pair swings by about +-10 % here; the median of the per-pair ratios and
  the ratio of the two minima (the least disturbed run of each side) are printed, with the spread.
- Threads are equal on both sides (the harness's --threads is the bare script's cpu_threads) and printed.
- A second line compares the harness with a bare script on the newest releases on the index, which is what
  the pin costs or saves; when the image already holds them, it says so.
Both sides use the same model folder, quant, beam size and utterances, and decode audio outside the timed
window. Asserts nothing: targets are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import QUICK_LIMIT, QUICK_REPEATS, ROOT, harness_run, make_spec
from rich.console import Console

from runner.images.build import parse_versions_label
from runner.images.freshness import pip_newest
from runner.launch import docker_engine
from runner.settings import DecodeSettings, Settings, TelemetrySettings

TARGET_RATIO = 1.05
TARGET_OVERHEAD_S = 3.0
BARE_LIBS = ("faster-whisper", "ctranslate2")  # what the bare script's speed depends on
BARE_SCRIPT = ROOT / "bench" / "bare_faster_whisper.py"


def bench_env(pins: dict[str, str], console: Console) -> Path:
    """The python of a venv holding exactly ``pins`` (plus the audio decoders), made once and reused."""
    wanted = sorted(f"{n}=={v}" for n, v in pins.items())
    venv = ROOT / f".venv-bench-{hashlib.sha256(' '.join(wanted).encode()).hexdigest()[:10]}"
    marker = venv / ".installed"
    if marker.is_file() and marker.read_text().split() == wanted:
        return venv / "bin" / "python"
    console.print(f"making {venv.name} with {' '.join(wanted)}")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *wanted, "soundfile", "soxr",
                    "numpy"], check=True)
    marker.write_text(" ".join(wanted) + "\n")
    return venv / "bin" / "python"


def bare_rtf(python: Path, model_dir: Path, compute_type: str, beam: int, threads: int, language: str | None,
             files: list[Path]) -> dict:
    cmd = [str(python), str(BARE_SCRIPT), "--model-dir", str(model_dir), "--compute-type", compute_type,
           "--beam-size", str(beam), "--threads", str(threads), *(["--language", language] if language else []),
           *map(str, files)]
    # the bench venv holds the libraries only; the script reads audio with the entrypoint's decoder, from the checkout
    env = {**os.environ, "PYTHONPATH": str(ROOT / "containers" / "common")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"bare script failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bare_rtf_in_container(client, image: str, model_dir: Path, compute_type: str, beam: int, threads: int,
                          language: str | None, files: list[Path]) -> dict:
    """The bare script inside a container of the image itself: its libraries by construction, and the engine's
    cgroup, which the harness's container shares with every other container on the engine."""
    audio_dir = files[0].parent
    args = ["/bench/bare_faster_whisper.py", "--model-dir", "/model", "--compute-type", compute_type,
            "--beam-size", str(beam), "--threads", str(threads), *(["--language", language] if language else []),
            *(f"/audio/{f.name}" for f in files)]
    out = client.containers.run(image, entrypoint=["/opt/venv/bin/python", *args], remove=True,
                                network_disabled=True, user=f"{os.getuid()}:{os.getgid()}",
                                volumes={str(BARE_SCRIPT.parent): {"bind": "/bench", "mode": "ro"},
                                         str(model_dir): {"bind": "/model", "mode": "ro"},
                                         str(audio_dir): {"bind": "/audio", "mode": "ro"}})
    return json.loads(out.decode().strip().splitlines()[-1])


def subset(data: Path, n: int | None, dest: Path) -> Path:
    """The first n utterances of a manifest dataset, audio copied beside a manifest of their own (audio
    must sit under its manifest's folder)."""
    manifest = data / "manifest.jsonl" if data.is_dir() else data
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()][:n]
    dest.mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copy(manifest.parent / r["audio"], dest / Path(r["audio"]).name)
    out = dest / "manifest.jsonl"
    out.write_text("".join(json.dumps(dict(r, audio=Path(r["audio"]).name)) + "\n" for r in rows))
    return out


def ratios_line(name: str, harness: list[float], bare: list[float], target: bool) -> str:
    per_pair = [h / b for h, b in zip(harness, bare)]
    med, lo, hi = statistics.median(per_pair), min(per_pair), max(per_pair)
    of_min = min(harness) / min(bare)
    verdict = (f"  (target median <= {TARGET_RATIO}: {'OK' if med <= TARGET_RATIO else 'OVER'})" if target else "")
    return (f"harness/bare {name}: median {med:.3f}, of minima {of_min:.3f}, spread {lo:.3f}..{hi:.3f} "
            f"over {len(per_pair)} pairs{verdict}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="edgeasr/faster-whisper:latest")
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--quant", default="int8", choices=["fp32", "int8"])
    ap.add_argument("--data", default=str(ROOT / "data" / "default"))
    ap.add_argument("--limit", type=int, default=8, help="first N utterances (bounds the time; default 8)")
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="both sides (default: the harness's default)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved pairs (default 5)")
    ap.add_argument("--no-newest", action="store_true", help="skip the line against the newest releases")
    ap.add_argument("--bare-in-container", action="store_true",
                    help="also run the bare script in a container of the image (a third side): on a shared engine "
                         "it shares the engine's CPU share with the harness, which the host process does not")
    ap.add_argument("--quick", action="store_true",
                    help=f"CI's check that the bench still runs: {QUICK_REPEATS} pair, {QUICK_LIMIT} utterances, no "
                         "newest line, and the bare script in a container of the image only (no host venv to "
                         "install); its ratio is a smoke figure, not a measurement")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.limit, args.no_newest, args.bare_in_container = QUICK_REPEATS, QUICK_LIMIT, True, True
    console = Console(stderr=True)

    client = docker_engine.connect()
    labels = client.images.get(args.image).labels or {}
    versions = parse_versions_label(labels.get("org.edgeasr.versions"))
    pins = {lib: versions[lib] for lib in BARE_LIBS if lib in versions}
    if len(pins) != len(BARE_LIBS):
        raise SystemExit(f"{args.image} has no org.edgeasr.versions label naming {', '.join(BARE_LIBS)} "
                         f"({labels.get('org.edgeasr.versions')!r}): cannot match its versions")
    same_python = None if args.quick else bench_env(pins, console)
    newest_python, newest = None, {}
    if not args.no_newest:
        newest = {lib: pip_newest(lib) for lib in BARE_LIBS}
        if all(v for v, _ in newest.values()):
            newest = {lib: v for lib, (v, _) in newest.items()}
            newest_python = same_python if newest == pins else bench_env(newest, console)

    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-bench-"))
    harness, bare, bare_new, bare_ctr, overheads, others = [], [], [], [], [], []
    t_start = time.monotonic()
    try:
        data = subset(Path(args.data), args.limit, tmp / "data")
        for i in range(args.repeats):
            spec = make_spec(Settings(backend="faster-whisper", model=args.model, quant=args.quant, device="cpu",
                                      dataset=str(data), image=args.image,
                                      decode=DecodeSettings(beam_size=args.beam_size, threads=args.threads),
                                      telemetry=TelemetrySettings(baseline_s=1.0)),
                             tmp / f"run{i}")
            files = [u.audio for u in spec.dataset.utterances]
            threads = spec.decode.threads

            def run_bare(python: Path) -> float:
                result = bare_rtf(python, spec.model.host_dir, spec.backend_quant, args.beam_size, threads,
                                  spec.decode.language, files)
                assert result["versions"] == (pins if python == same_python else newest), result["versions"]
                return result["rtf"]

            def run_harness() -> float:
                summary = harness_run(spec)
                if summary["status"] != "ok":
                    raise SystemExit(f"harness run failed: {summary['error']}")
                if summary["decode"]["threads"] != threads:
                    raise SystemExit(f"threads differ: harness {summary['decode']['threads']}, bare {threads}")
                overheads.append(summary["overhead_s"])
                return summary["rtf"]

            sides = [("harness", lambda: harness.append(run_harness()))]
            if same_python is not None:
                sides.insert(0, ("bare", lambda: bare.append(run_bare(same_python))))
            if newest_python is not None and newest_python != same_python:
                sides.append(("bare-newest", lambda: bare_new.append(run_bare(newest_python))))
            if args.bare_in_container:
                sides.append(("bare-container", lambda: bare_ctr.append(bare_rtf_in_container(
                    client, args.image, spec.model.host_dir, spec.backend_quant, args.beam_size, threads,
                    spec.decode.language, files)["rtf"])))
            for _name, side in (sides if i % 2 == 0 else sides[::-1]):
                others.append(len(client.containers.list()))  # none of them is ours: the sides run in turn
                side()
            console.print(f"pair {i + 1}/{args.repeats}: harness {harness[-1]:.4f}"
                          + (f"  bare {bare[-1]:.4f}" if bare else "")
                          + (f"  bare-newest {bare_new[-1]:.4f}" if bare_new else "")
                          + (f"  bare-container {bare_ctr[-1]:.4f}" if bare_ctr else "")
                          + f"  ({time.monotonic() - t_start:.0f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"image {args.image}: " + ", ".join(f"{k} {v}" for k, v in pins.items())
          + (f"; bare venv {same_python.parents[1].name} holds the same" if same_python is not None else
             "; the bare script runs in a container of the image (--quick)"))
    print(f"model {args.model} {args.quant}, beam {args.beam_size}, threads {threads} on both sides "
          f"(harness --threads, bare cpu_threads), {len(files)} utterances, {args.repeats} interleaved pairs")
    print(f"RTF harness median {statistics.median(harness):.4f} min {min(harness):.4f}"
          + (f"; bare median {statistics.median(bare):.4f} min {min(bare):.4f}" if bare else ""))
    if bare:
        print(ratios_line("(same versions)", harness, bare, target=True))
    if bare_ctr:
        print(ratios_line("(bare in a container of the image)", harness, bare_ctr, target=True))
    if args.no_newest:
        pass
    elif newest_python is None:
        print("harness/bare (newest releases): index not reachable, not measured")
    elif newest_python == same_python:
        print(f"harness/bare (newest releases): the image already runs them ({', '.join(f'{k} {v}' for k, v in newest.items())})")
    else:
        print(ratios_line("(newest: " + ", ".join(f"{k} {v}" for k, v in newest.items()) + ")", harness, bare_new,
                          target=False))
        per_pair = [n / b for n, b in zip(bare_new, bare)]
        print(f"bare newest/bare image's versions (what the pins cost, no harness in it): median "
              f"{statistics.median(per_pair):.3f}, of minima {min(bare_new) / min(bare):.3f}, spread "
              f"{min(per_pair):.3f}..{max(per_pair):.3f}")
    if any(others):
        print(f"note: other containers were running on this engine during {sum(1 for n in others if n)} of "
              f"{len(others)} sides (up to {max(others)}); they share CPU with the harness's container inside "
              f"the engine's cgroup, not with the bare process, so a busy shared engine inflates the ratio")
    o = {k: statistics.median(d[k] for d in overheads) for k in overheads[0]}
    start_merge = o["engine_start_s"] + o.get("boot_s", 0.0) + o.get("exit_s", 0.0) + o["merge_s"]
    print(f"overhead outside inference (median): engine start {o['engine_start_s']:.2f} s, interpreter boot "
          f"{o.get('boot_s', float('nan')):.2f} s, exit {o.get('exit_s', float('nan')):.2f} s, "
          f"merge {o['merge_s']:.2f} s; container start + merge {start_merge:.2f} s (target <= {TARGET_OVERHEAD_S} s)"
          f"  {'OK' if start_merge <= TARGET_OVERHEAD_S else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
