"""`edgeasr check-image IMAGE`: does an image honour the entrypoint contract? Prints each check's verdict.

Checks: the labels; a tiny real job (one speech file and one corrupt file) answered
with the documented outputs (ordered, timestamped events; one transcript record
per utterance, the corrupt one an error record; a status record with the required
fields); and a malformed job answered with an error status and exit code 2.
Every job runs under exactly the confinement runs and sweeps use
(launch/hardening.py); when the tiny job fails, it is tried again with each setting
relaxed in turn, to say which one the image cannot bear.
An image that passes every check is recorded by its id (launch/checked_images.py): one without the
contract label runs only then.
Every container it starts (an ONNX export's for the check model, the test jobs') is removed however it ends,
Ctrl-C and SIGTERM included, before the command says so (launch/docker_engine.removed_on_exit).
A CUDA image (label org.edgeasr.platform cuda, of a backend that runs on CUDA) is checked further
(in run_checks): its org.edgeasr.cuda-libs label names CUDA libraries, its torch / ONNX Runtime are CUDA builds,
the libraries it names are the ones its container finds and each loads there (no GPU needed), and, where this host can hand a GPU to a container, the
tiny job runs on cuda; where it cannot, that check is not run and says why (SKIP: no GPU visible), which is no
failure.
Exit code 0 when every check passes (or is not run for want of a GPU), 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import json

from edgeasr_entrypoint import cuda_libs
from edgeasr_entrypoint.contract import (CONTRACT_VERSION, CUDA_LIBS_LABEL, MIN_CONTRACT_VERSION, DecodeOptions,
                                         Event, Job, UtteranceJob)

from ..backends import BACKENDS, Backend
from ..data.load import load_dataset
from ..errors import UserError
from ..host import gpu_probe
from ..images.build import parse_versions_label
from ..launch import checked_images, docker_engine
from ..launch.engines import CONTAINER_LOG, write_job
from ..launch.hardening import Hardening, chown_for_container
from ..launch.job import OFFLINE_ENV, OUT_TARGET, image_contract
from ..launch.owner import Owner
from ..merge import read_raw
from ..models.onnx_export import export_onnx
from ..models.resolve import default_models_dir, resolve_backend_model
from ..trust.safe_io import fresh_folder, remove
from ..trust.untrusted import visible
from ..trust.validate import sentence as contract_sentence

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "data" / "default" / "harvard-01-01.flac"
REQUIRED_EVENTS = [Event.CONTAINER_START, Event.LOAD_START, Event.LOAD_END, Event.INFERENCE_START,
                   Event.UTTERANCE_START, Event.UTTERANCE_END, Event.UTTERANCE_ERROR, Event.INFERENCE_END,
                   Event.CONTAINER_END]
REQUIRED_STATUS = ["contract_version", "status", "error", "backend", "n_utterances", "n_ok", "n_failed",
                   "peak_rss_mb", "versions"]


@dataclass
class Check:
    """One verdict. ``skipped``: not run, for a reason of this host (no GPU visible), never of the image: it
    counts as no failure (``ok``) and is shown as SKIP."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False

    @property
    def verdict(self) -> str:
        return "SKIP" if self.skipped else "PASS" if self.ok else "FAIL"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="the image to check")
    p.add_argument("--model", default=None,
                   help="model for the test job (default: the backend's check model: "
                        f"{', '.join(f'{b.check_model} for {n}' for n, b in BACKENDS.items())}; "
                        "see `edgeasr models make-tiny`)")
    p.add_argument("--quant", default=None,
                   help="default: the backend's own "
                        f"({', '.join(f'{b.default_quant} for {n}' for n, b in BACKENDS.items())})")
    p.add_argument("--models-dir", type=Path, default=None, help="installed models")
    p.add_argument("--timeout", type=float, default=300, help="seconds before the test container is killed")


def _events_ok(events: list[dict[str, Any]]) -> tuple[bool, str]:
    names = [e.get("event") for e in events]
    missing = [n for n in REQUIRED_EVENTS if n not in names]
    if missing:
        return False, f"missing events: {', '.join(missing)}"
    if any(not isinstance(e.get("t_ns"), int) or not isinstance(e.get("mono_ns"), int) for e in events):
        return False, "every event needs integer t_ns and mono_ns"
    if any(b["mono_ns"] < a["mono_ns"] for a, b in zip(events, events[1:])):
        return False, "events are not in time order"
    order = [names.index(n) for n in (Event.CONTAINER_START, Event.LOAD_START, Event.LOAD_END, Event.INFERENCE_START)]
    if order != sorted(order) or names.index(Event.INFERENCE_END) < names.index(Event.UTTERANCE_END):
        return False, f"events out of the documented order: {names}"
    return True, f"{len(events)} events in order"


def _transcripts_ok(rows: list[dict[str, Any]]) -> tuple[bool, str]:
    by_id = {r.get("id"): r for r in rows}
    good, bad = by_id.get("speech"), by_id.get("corrupt")
    if good is None or bad is None or len(rows) != 2:
        return False, f"expected one record for each of 2 utterances, got {len(rows)}"
    if good.get("status") != "ok" or not isinstance(good.get("hypothesis"), str):
        return False, f"the speech utterance has no hypothesis: {good}"
    if not (isinstance(good.get("duration_s"), (int, float)) and 2.0 < good["duration_s"] < 3.0):
        return False, f"duration_s of the 2.4 s speech file is {good.get('duration_s')}"
    if not (isinstance(good.get("processing_s"), (int, float)) and good["processing_s"] > 0):
        return False, "processing_s missing or not positive"
    if bad.get("status") != "error" or not bad.get("error"):
        return False, f"the corrupt file did not give an error record: {bad}"
    return True, f"speech -> {good['hypothesis'][:40]!r}; corrupt -> error record"


def _status_ok(status: dict[str, Any] | None) -> tuple[bool, str]:
    if status is None:
        return False, "no status.json"
    missing = [k for k in REQUIRED_STATUS if k not in status]
    if missing:
        return False, f"status.json lacks {', '.join(missing)}"
    # status.json in the contract's names: its peak_rss_mb is MiB (ru_maxrss / 1024; runner/merge.CONTRACT_MIB)
    if status["status"] != "ok" or not status["versions"] or not (status["peak_rss_mb"] or 0) > 0:
        return False, f"status {status['status']}, versions {status['versions']}, peak_rss_mb {status['peak_rss_mb']}"
    return True, f"ok, peak RSS {status['peak_rss_mb']:.0f} MiB, {len(status['versions'])} library versions"


def tiny_job(backend: Backend, model: str, quant: str, data_dir: str = "/data",
             version: int = CONTRACT_VERSION, device: str = "cpu") -> dict[str, Any]:
    """The test job: the backend's model on cpu, greedy, English (unless the row's model takes no language), one
    speech file and one corrupt file (speech.flac and corrupt.flac in ``data_dir``, where the container sees them),
    in contract ``version`` (the newest the image and this runner both speak). Everything backend-specific is the
    row's. ``device``: cuda for a CUDA image's GPU check (run_checks)."""
    language = backend.decode_facts.fixed.get("decode.language", "en")
    return Job(contract_version=version, backend=backend.name, model=model, quant=quant,
               backend_quant=backend.backend_quant(device, quant), device=device,
               decode=DecodeOptions(beam_size=1, temperature=0.0, language=language, threads=0, batch_size=1),
               warmup=1, utterances=[UtteranceJob("speech", f"{data_dir}/speech.flac"),
                                     UtteranceJob("corrupt", f"{data_dir}/corrupt.flac")]).to_json()


def write_test_data(data: Path) -> None:
    """speech.flac (the project's 2.4 s Harvard sentence) and corrupt.flac (a FLAC header and noise) in ``data``."""
    data.mkdir(exist_ok=True)
    data.chmod(0o755)
    shutil.copy(SPEECH, data / "speech.flac")
    (data / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)


def _run_job(client, image: str, job: dict, work: Path, mounts: list, timeout: float,
             hardening: Hardening = Hardening(), device: str = "cpu"):
    """One job in the image, as runs and sweeps run it: a new output folder with the job written before the
    container starts, the log kept outside it, bounded outputs, and every output read by runner/trust/safe_io.py's
    rules (a FIFO or a link the image leaves is a failed check that says so, never a hang or a host file)."""
    raw = fresh_folder(work, "out")
    write_job(raw, job)
    chown_for_container(raw)
    run = docker_engine.run_container(client, image, mounts=[*mounts, docker_engine.BindMount(raw, OUT_TARGET, False)],
                                      env=OFFLINE_ENV, log_path=work / CONTAINER_LOG, timeout_s=timeout,
                                      hardening=hardening, owner=Owner.me(work, "check-image"), watch_dir=raw,
                                      device=device)
    return run, read_raw(raw)


def _passes(run, raw) -> bool:
    return run.exit_code == 0 and raw.problem is None and not raw.rejected and \
        _transcripts_ok(raw.transcripts)[0] and _status_ok(raw.status)[0]


def _exit_text(run) -> str:
    """The exit code, and why the runner ended the container where it did."""
    return f"{run.exit_code}" + (" (timed out)" if run.timed_out else "") + \
        (f" (stopped: {run.limit_exceeded})" if run.limit_exceeded else "")


def _which_setting_breaks(client, image: str, job: dict, work: Path, mounts: list, timeout: float,
                          hardening: Hardening) -> str:
    """Run the tiny job again with one setting relaxed at a time; name the first whose relaxing makes it pass."""
    for i, name in enumerate(Hardening.RELAXABLE):
        run, raw = _run_job(client, image, job, work / f"relax-{i}", mounts, timeout, hardening.relaxed(name))
        if _passes(run, raw):
            return (f"the image fails under {Hardening.RELAXABLE[name][0]} and works without it; edgeasr runs "
                    f"every backend container that way (README: Security), so the image must be fixed")
    everything = Hardening(cap_drop_all=False, no_new_privileges=False, read_only_rootfs=False, pids_limit=0,
                           unprivileged_user=False)
    run, raw = _run_job(client, image, job, work / "relax-all", mounts, timeout, everything)
    if _passes(run, raw):
        names = ", ".join(v[0] for v in Hardening.RELAXABLE.values())
        return (f"the image works only with several settings relaxed at once (among: {names}); edgeasr runs "
                f"every backend container confined (README: Security), so the image must be fixed")
    return "the tiny job fails even with every setting relaxed: see the checks above"


def label_checks(labels: dict[str, str]) -> list[tuple[str, bool, str]]:
    """(name, ok, detail) of the image's edgeasr labels; a missing one says which Dockerfile line adds it."""
    out = []
    contract = labels.get("org.edgeasr.contract")
    if contract in (None, ""):  # says nothing: the test jobs below show which contract it speaks
        out.append(("label org.edgeasr.contract", True,
                    f"none: the test jobs show whether it speaks {CONTRACT_VERSION}; when every check passes, runs "
                    f"may use it (by its id); to say it: LABEL org.edgeasr.contract={CONTRACT_VERSION}"))
    else:  # a minimum version per feature: an older contract runs every job that needs nothing newer
        usable = checked_images.label_problem(contract, CONTRACT_VERSION) is None
        note = checked_images.older_contract_note(contract) if usable else None
        out.append(("label org.edgeasr.contract", usable,
                    f"{contract!r} (this runner speaks {MIN_CONTRACT_VERSION} to {CONTRACT_VERSION})"
                    + (f"; {note}" if note else "")))
    backend_name = labels.get("org.edgeasr.backend")
    known = ", ".join(BACKENDS)
    if not backend_name:
        out.append(("label org.edgeasr.backend", False,
                    f"missing: add LABEL org.edgeasr.backend=NAME to the Dockerfile, NAME one of {known}"))
    else:
        out.append(("label org.edgeasr.backend", backend_name in BACKENDS, f"{backend_name!r} (known: {known})"))
    versions = parse_versions_label(labels.get("org.edgeasr.versions"))
    out.append(("label org.edgeasr.versions", bool(versions),
                ", ".join(f"{k}={v}" for k, v in versions.items())
                or "missing: add LABEL org.edgeasr.versions=\"library=version,...\" to the Dockerfile "
                   "(the libraries that make the figures, e.g. ctranslate2=4.6.0)"))
    return out


def is_cuda_image(labels: dict[str, str]) -> bool:
    """Whether the image is a CUDA variant of a backend that runs on CUDA (pocketsphinx's `:cuda` is a CPU image)."""
    backend = BACKENDS.get(labels.get("org.edgeasr.backend") or "")
    return labels.get("org.edgeasr.platform") == "cuda" and backend is not None and "cuda" in backend.devices


def cuda_label_check(labels: dict[str, str]) -> tuple[str, bool, str]:
    """(name, ok, detail) of a CUDA image's CUDA_LIBS_LABEL: it must name the libraries the image holds."""
    libs = cuda_libs.parse_label(labels.get(CUDA_LIBS_LABEL))
    if libs:
        return f"label {CUDA_LIBS_LABEL}", True, ", ".join(f"{k}={v}" for k, v in libs.items())
    return (f"label {CUDA_LIBS_LABEL}", False,
            "missing or empty: the image names no CUDA library; build it with `edgeasr images build --platform cuda` "
            "(which labels what /opt/edgeasr/cuda-libs.txt lists), or set it by hand: "
            f"LABEL {CUDA_LIBS_LABEL}=\"cublas=12.8.4.1,...\"")


def cuda_load_check(labels: dict[str, str], code: int | None, output: str) -> tuple[str, bool, str]:
    """(name, ok, detail) of ``python -m edgeasr_entrypoint.cuda_libs --load`` run in the image without a GPU
    (``code``, ``output``: its exit code and output): the libraries its container finds are the label's, and each
    of their sonames loads (a wrong ldconfig registration or a missing cuDNN fails here, on any host)."""
    name = "CUDA libraries load"
    line = next((ln for ln in output.splitlines() if ln.startswith(cuda_libs.LOAD_PREFIX)), None)
    try:
        said = json.loads(line[len(cuda_libs.LOAD_PREFIX):]) if line else None
    except ValueError:
        said = None
    if not isinstance(said, dict) or not isinstance(said.get("libs"), dict) or not isinstance(said.get("load"), dict):
        last = (output.strip().splitlines() or ["no output"])[-1][:300]
        return name, False, f"the image did not say which CUDA libraries it holds (exit {code}): {last}"
    found = {str(k): str(v) for k, v in said["libs"].items()}
    labelled = cuda_libs.parse_label(labels.get(CUDA_LIBS_LABEL))
    if labelled and found != labelled:
        return name, False, (f"the label says {cuda_libs.label_value(labelled)}, the container finds "
                             f"{cuda_libs.label_value(found) or 'none'}: rebuild it with edgeasr images build")
    failed = {k: v for k, v in said["load"].items() if v is not None}
    if failed:
        return name, False, "; ".join(f"{k}: {v}" for k, v in failed.items())
    if not said["load"]:
        return name, False, "none of libcudart, libcublas or libcudnn is in the image"
    return name, True, f"{', '.join(sorted(said['load']))} load (without a GPU)"


#: One container answers both CUDA probes: the libraries' own word (host/gpu_probe.py) and cuda_libs --load.
CUDA_PROBE = gpu_probe.SCRIPT + "\nfrom edgeasr_entrypoint.cuda_libs import main\nmain(['--load'])\n"


def cuda_build_check(backend: str, code: int | None, output: str) -> tuple[str, bool, str]:
    """(name, ok, detail): the image's libraries are CUDA builds, as far as a container without a GPU tells
    (gpu_probe.cpu_only: a CPU-only torch, onnxruntime's CPU wheel); what they said is the detail."""
    name = "CUDA builds"
    said = gpu_probe.parse(output)
    if said is None:
        last = (output.strip().splitlines() or ["no output"])[-1][:300]
        return name, False, f"the image's libraries did not answer (exit {code}): {last}"
    problems = gpu_probe.cpu_only(said, backend)
    parts = []
    if isinstance(said.get("ctranslate2"), dict):
        parts.append(f"CTranslate2 {said['ctranslate2'].get('version')} (its CUDA devices show only on a GPU)")
    if isinstance(said.get("torch"), dict):
        parts.append(f"torch {said['torch'].get('version')} (CUDA {said['torch'].get('cuda_build')} build)")
    if isinstance(said.get("onnxruntime"), dict):
        parts.append(f"ONNX Runtime {said['onnxruntime'].get('version')}: providers "
                     f"{', '.join(map(str, said['onnxruntime'].get('providers') or []))}")
    if problems:
        return name, False, "; ".join(problems) + (f" ({'; '.join(parts)})" if parts else "")
    return name, True, "; ".join(parts) or "none of CTranslate2, torch or ONNX Runtime imports there"


def gpu_problem() -> str | None:
    """Why this host cannot hand a GPU to a container (the run's own preflight, runner/host/preflight.py), or None."""
    from ..host import preflight

    problem = preflight.device_problem("cuda", preflight.probe())
    return problem.split("; ", 1)[0] if problem else None  # the fact; its fix (a CPU run) is no fix for a check


def run_checks(image_ref: str, model: str | None, quant: str | None, models_dir: Path, timeout: float,
               log: Callable[[Check], None] = lambda c: None) -> list[Check]:
    checks: list[Check] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))
        log(checks[-1])

    client = docker_engine.connect()
    info = docker_engine.image_info(client, image_ref, hint="build or pull it first")
    labels = info.labels
    for check in label_checks(labels):
        add(*check)
    cuda = is_cuda_image(labels)
    if cuda:
        add(*cuda_label_check(labels))
    backend = BACKENDS.get(labels.get("org.edgeasr.backend") or "")
    if backend is None:
        add("tiny job", False, "skipped: without a known backend label the job cannot be made")
        return checks
    default_model = backend.check_model
    quant = quant or backend.default_quant
    try:
        resolved = resolve_backend_model(backend, model or default_model, models_dir, offline=True,
                                         onnx_exporter=lambda hf, out: export_onnx(hf, out, image_ref))
    except UserError as exc:
        hint = "edgeasr models make-tiny" if (model or default_model).startswith("tiny-") else "edgeasr models install"
        raise UserError(f"{exc} (the test job needs it: run `{hint}`, or pass --model)") from None
    work = Path(tempfile.mkdtemp(prefix="edgeasr-check-"))
    work.chmod(0o755)  # the container's unprivileged user must reach the data folder inside
    try:
        data = work / "data"
        write_test_data(data)
        mounts = [docker_engine.BindMount(data, "/data", True)]
        if resolved.host_dir is not None:
            mounts.append(docker_engine.BindMount(resolved.host_dir, resolved.container_path, True))
        version = image_contract(labels)  # what the image says it speaks (unlabelled: this runner's, to check)
        job = tiny_job(backend, resolved.container_path, quant, version=version)
        hardening = Hardening()
        run, raw = _run_job(client, image_ref, job, work / "good", mounts, timeout)
        add("tiny job: exit code", run.exit_code == 0 and run.limit_exceeded is None, _exit_text(run))
        add("tiny job: output files", raw.problem is None, raw.problem or "regular files, within the limits")
        add("tiny job: records", not raw.rejected, contract_sentence(raw.rejected) or
            "every event, result and status field as the contract says")
        add("tiny job: events.jsonl", *_events_ok(raw.events))
        add("tiny job: transcripts.jsonl", *_transcripts_ok(raw.transcripts))
        add("tiny job: status.json", *_status_ok(raw.status))
        desc = hardening.describe()
        settings = (f"no network, user {desc['user']}, cap_drop {','.join(desc['cap_drop'])}, "
                    f"{','.join(desc['security_opt'])}, read-only root + tmpfs /tmp, pids {desc['pids_limit']}, "
                    f"memory {desc['mem_limit_bytes'] / 2**30:.1f} GiB")
        if all(c.ok for c in checks[-6:]):
            add("hardened settings", True, settings)
        else:
            add("hardened settings", False, _which_setting_breaks(client, image_ref, job, work, mounts, timeout,
                                                                  hardening))
        bad_job = dict(job, contract_version=CONTRACT_VERSION + 99)
        run, raw = _run_job(client, image_ref, bad_job, work / "bad", mounts, timeout)
        status = raw.status
        ok = run.exit_code == 2 and status is not None and status.get("status") == "error" and bool(status.get("error"))
        add("malformed job: error record", ok,
            f"exit {_exit_text(run)}, status {status.get('status') if status else None}: "
            f"{(status or {}).get('error') or raw.problem}")
        if cuda:
            from ..launch.tool_container import run_probe

            code, output = run_probe(image_ref, CUDA_PROBE)
            add(*cuda_build_check(backend.name, code, output))
            add(*cuda_load_check(labels, code, output))
            problem = gpu_problem()
            if problem:
                checks.append(Check("tiny job on cuda", True, f"not run: no GPU visible here: {problem}; it runs "
                                    "where the Docker Engine can hand a container an NVIDIA GPU", skipped=True))
                log(checks[-1])
            else:
                cuda_job = tiny_job(backend, resolved.container_path, quant, version=version, device="cuda")
                run, raw = _run_job(client, image_ref, cuda_job, work / "cuda", mounts, timeout, device="cuda")
                ok = _passes(run, raw)
                used = (raw.status or {}).get("device_used")
                add("tiny job on cuda", ok and used in (None, "cuda"),
                    f"exit {_exit_text(run)}, device used {used or '?'}; "
                    + (_transcripts_ok(raw.transcripts)[1] if raw.transcripts else (raw.problem or "no transcripts")))
    finally:
        remove(work)  # what the image left there too, without following it
    if all(c.ok for c in checks):  # what an image without the contract label needs to run (checked_images.py)
        checked_images.remember(info.id, image_ref, version)
    return checks


def main(args: argparse.Namespace) -> int:
    def show(c: Check) -> None:
        if c.ok and not c.skipped and getattr(args, "quiet", False):  # -q: failures, skips and the verdict only
            return
        print(visible(f"{c.verdict}  {c.name}: {c.detail}"), flush=True)

    load_dataset(SPEECH.parent)  # the speech file ships with the project; fail clearly if the tree is broken
    checks = run_checks(args.image, args.model, args.quant, args.models_dir or default_models_dir(), args.timeout,
                        log=show)
    failed = [c for c in checks if not c.ok]
    skipped = [c for c in checks if c.skipped]
    ran = len(checks) - len(skipped)
    print(visible(f"{args.image}: {ran - len(failed)} of {ran} checks passed"
                  + (f", {len(skipped)} not run ({'; '.join(c.name for c in skipped)}: no GPU visible)"
                     if skipped else "")
                  + ("" if failed else f"; recorded by its id in {checked_images.record_path()}")))
    return 1 if failed else 0
