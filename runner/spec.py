"""One run's settings, resolved and validated before any container starts.

Every problem is collected and reported at once (one UserError listing them),
so a person fixes a command line in one go rather than one error per try.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from edgeasr_entrypoint.contract import StreamJob

from .host import places
from .backends import BACKENDS, DEVICES, LONG_FORM_CHOICES, Backend, default_model_quant, unavailable_reason
from .data.dataset import Dataset, is_hf_ref
from .data.load import load_dataset
from .data.nonspeech import limited, with_nonspeech
from .errors import UserError
from .host import preflight
from .host.platforms import has_nvidia_driver, is_jetson
from .launch.engines import ENGINES
from .launch.hardening import Hardening, container_groups, container_ids, host_memory_bytes
from .models.resolve import ResolvedModel, resolve_backend_model, resolve_model, resolved_kind
from .launch.paths import mount_problem, readable_by
from .settings import DecodeSettings, Settings, StreamSettings, TelemetrySettings, cli_label, mem_size_bytes, show
from .settings import get as setting_value
from .settings import problems as setting_problems

__all__ = ["DecodeSettings", "TelemetrySettings", "Settings", "RunSpec", "build_run_spec", "cli_label"]



@dataclass(frozen=True)
class RunSpec:
    backend: Backend
    image: str
    model: ResolvedModel
    quant: str
    backend_quant: str
    device: str
    dataset: Dataset
    out: Path
    decode: DecodeSettings
    warmup: int
    timeout_s: float | None
    allow_download: bool  # --container-network: the backend container has a network and may download
    mem_limit: str | None
    telemetry: TelemetrySettings = TelemetrySettings()
    engine: str = "docker"
    hardening: Hardening = Hardening()
    hub_cache_dir: Path | None = None  # with --container-network: the host folder the backend downloads into
    #: The GPUs the run uses (NVML indices or UUIDs), given to the engine as device ids and to NVML;
    #: None: not a CUDA run, or a Jetson (one integrated GPU, served by its runtime).
    gpus: tuple[str, ...] | None = None
    settings: Settings = Settings()  # the unresolved settings this spec was built from
    repeats: int = 1  # times the dataset is transcribed (one condition each)
    limit: int | None = None  # the dataset was cut to its first N utterances (None: all of it)
    #: Stream mode as the job says it (its policy resolved: the backend's default where none was asked for);
    #: None: offline, utterance by utterance.
    stream: StreamJob | None = None

    @property
    def mem_limit_text(self) -> str | None:
        """The container's memory limit as a person reads it: the value given, or the default, said so."""
        if self.engine != "docker":
            return self.mem_limit
        limit = self.hardening.engine_kwargs().get("mem_limit")
        return self.mem_limit or (f"{limit / 2**30:.1f}g, the default" if limit else None)


MIN_MEM_LIMIT_BYTES = 6 * 1024 * 1024  # the Docker Engine refuses less


def parse_mem_limit(value: str, option: str = "--mem-limit") -> int:
    """'4g', '512m', '1.5G', '2000000' -> bytes; a UserError (naming ``option``) for anything else."""
    n = mem_size_bytes(value)
    if n is None:
        raise UserError(f"{option} {value!r} is not a size; use a number with k, m or g, e.g. 4g or 512m")
    if n < MIN_MEM_LIMIT_BYTES:
        raise UserError(f"{option} {value!r} is below the engine's minimum of 6m")
    total = host_memory_bytes()
    if total and n > total:
        raise UserError(f"{option} {value!r} is more than this host's memory ({total / 2**30:.1f} GiB)")
    return int(n)


def out_problem(out: Path, option: str = "--out") -> str | None:
    """Why the run folder cannot be written, found before any container starts."""
    if out.exists() and not out.is_dir():
        return f"{option} {out} is a file, not a folder"
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"{option} {out}: {probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{option} {out} is not writable ({probe} does not let this user create files)"
    problem = mount_problem(out / "raw", option)
    if problem:
        return f"{problem}; the output folder is mounted into the backend container"
    return None


def model_problem(model: ResolvedModel) -> str | None:
    """A model folder the container could not, or must not, see."""
    if model.host_dir is None:
        return None
    problem = mount_problem(model.host_dir, "--model")
    if problem:
        return f"{problem}; a backend container may not see it"
    uid, gid = container_ids()
    unreadable = [p for p in (model.host_dir, *model.host_dir.iterdir()) if not readable_by(p, uid, (gid, *container_groups()))]
    if unreadable:
        return (f"--model: {unreadable[0]} is not readable by the container's user (uid {uid}); "
                f"make the folder readable: chmod -R a+rX {model.host_dir}")
    return None


def resolve_gpus(gpus: str | None, device: str, env: dict[str, str] | None = None,
                 jetson: bool | None = None) -> tuple[str, ...] | None:
    """``--gpus 0,GPU-...``; else the host's CUDA_VISIBLE_DEVICES; else GPU 0, the one a backend uses by default.

    Never "all": energy and memory are measured on exactly the GPUs the container gets."""
    jetson = is_jetson() if jetson is None else jetson
    if device != "cuda" or jetson:
        return None
    env = os.environ if env is None else env
    value = gpus if gpus else env.get("CUDA_VISIBLE_DEVICES") or "0"
    return tuple(v.strip() for v in value.split(",") if v.strip()) or ("0",)


def detect_device(requested: str) -> str:
    """`auto` means cuda when an NVIDIA driver node exists, else cpu."""
    if requested != "auto":
        return requested
    return "cuda" if has_nvidia_driver() else "cpu"


def _onnx_exporter(image: str | None, engine: str):
    """The ONNX export runs in the backend's image, so it needs the docker engine (the host has no torch)."""
    if engine != "docker":
        return None

    def export(hf_dir: Path, out_dir: Path) -> Path:
        from .models.onnx_export import export_onnx

        return export_onnx(hf_dir, out_dir, image)

    return export


def decode_problems(backend: Backend, model: ResolvedModel, settings: Settings,
                    set_by: Mapping[str, str]) -> list[str]:
    """Each decode value the user set (``set_by``: dotted path -> where: a flag, an experiment file's key) that
    this model cannot honour with this backend (the table's facts for the model's kind), in one sentence each.
    Defaults are not in ``set_by``, so they are never refused."""
    kind = resolved_kind(model)
    refusals = (backend.decode_refusal(path, setting_value(settings, path), kind, model.name, origin)
                for path, origin in set_by.items())
    return [r for r in refusals if r]


def stream_problem(backend: Backend, model: ResolvedModel | None, model_name: str, stream: StreamSettings,
                   where: Callable[[str], str]) -> str | None:
    """Why this backend cannot run this model in stream mode as asked (one sentence naming the setting that asked
    for it, ``--stream`` or ``--stream-policy``, and the backend's reason), or None (also when stream mode is
    off: then the other stream settings mean nothing and are not checked against the backend)."""
    if not stream.enabled:
        return None
    origin = where("stream.policy") if stream.policy is not None else where("stream.enabled")
    kind = resolved_kind(model) if model is not None else None
    return backend.stream_refusal(stream.policy, kind, model.name if model is not None else model_name, origin)


def stream_job(backend: Backend, model: ResolvedModel, stream: StreamSettings) -> StreamJob | None:
    """The job's stream block (contract StreamJob) with the policy resolved, or None when stream mode is off;
    call only where ``stream_problem`` found nothing."""
    if not stream.enabled:
        return None
    policy = backend.stream_facts(resolved_kind(model)).resolve(stream.policy)
    return StreamJob(chunk_ms=stream.chunk_ms, gap_ms=stream.gap_ms, concurrency=stream.concurrency,
                     policy=policy, sustain_s=float(stream.sustain_s), offline=True)
def long_form_problems(backend: Backend, model: ResolvedModel | None, settings: Settings,
                       where: Callable[[str], str]) -> list[str]:
    """Each long-form decode value set (not null: null is the backend's own) that the backend's long-form algorithm
    for this batch size and kind of model cannot honour (runner/backends.LongForm.problem), in one sentence each."""
    decode = settings.decode.to_json()
    lf = backend.long_form_for(settings.decode.batch_size, resolved_kind(model) if model is not None else None)
    out = []
    for path in LONG_FORM_CHOICES:
        value = setting_value(settings, path)
        reason = lf.problem(path, value, decode)
        if reason:
            origin = where(path)
            at = f"{origin} " if origin.startswith("-") else f"{origin}: "
            out.append(f"{at}{show(value)} cannot apply with backend {backend.name}: {reason}")
    return out


def build_run_spec(settings: Settings, *, out: str, models_dir: Path, engine: str = "docker",
                   allow_download: bool = False, where: Callable[[str], str] = cli_label,
                   set_by: Mapping[str, str] | None = None, host: preflight.HostCaps | None = None,
                   host_checks: bool = True, offline: bool = False) -> RunSpec:
    """Resolve and check every setting; raise one UserError naming all problems.

    ``where(path)`` names a setting (a dotted path such as ``decode.beam_size``) in messages: ``--beam-size``
    for the CLI (the default), a group and key for a sweep. model and quant default to the backend's own (its
    table row): tiny.en int8 for the Whisper backends, the bundled en-us model in fp32 for pocketsphinx.
    ``set_by`` names the settings the user set and where (dotted path -> flag or file key; None: none known):
    a decode value among them that the model cannot honour (a beam size for a CTC model) is refused here,
    before any container starts, naming that origin; a default never is.
    ``host``: this host's facts (runner/host/preflight.py), read when a check needs them and none are given;
    ``host_checks`` off: the run goes to another host (a fleet node checks itself), so this one is not asked.
    ``allow_download`` (--container-network) gives the backend container a network; a hub name that is not
    installed is downloaded on the host whatever it says (``with_hub_models``, after every check), unless
    ``offline``: then it is refused here, in one sentence.
    """
    s = settings
    problems: list[str] = setting_problems(s, where)
    backend = s.backend
    be = BACKENDS.get(backend) if isinstance(backend, str) else None
    default_model, default_quant = default_model_quant(backend)
    model = s.model or default_model
    quant = s.quant or default_quant
    dev = detect_device(s.device) if isinstance(s.device, str) else s.device
    if be is not None and dev in DEVICES:
        if dev not in be.devices:
            problems.append(f"backend {be.name} does not run on {dev}; it runs on {', '.join(be.devices)}")
        else:
            problem = be.quant_problem(dev, quant)
            if problem:
                problems.append(f"{where('quant')}: {problem}")
    image = s.image
    resolved_model = None
    try:
        exporter = _onnx_exporter(image or (be.image if be else None), engine)
        resolved_model = (resolve_backend_model(be, model, models_dir, offline, onnx_exporter=exporter) if be else
                          resolve_model(model, models_dir, offline, "ctranslate2", onnx_exporter=exporter))
        problem = model_problem(resolved_model) if engine == "docker" else None
        if problem:
            problems.append(problem)
        if be is not None and set_by:
            problems += decode_problems(be, resolved_model, s, set_by)
    except UserError as exc:
        problems.append(f"{where('model')}: {exc}")
    if be is not None:  # before any container starts: a backend without stream mode, or without that policy
        problem = stream_problem(be, resolved_model, str(model), s.stream, where)
        if problem:
            problems.append(problem)
    dataset = None
    try:
        path = s.dataset if is_hf_ref(s.dataset) else places.data_path(s.dataset)  # the embedded data anywhere
        dataset = load_dataset(path, tuple(s.audio_roots), limit=s.limit,  # limit: what hf: streams
                               text_limit_bytes=s.limits.data_text_bytes)
        # generated silence / noise with an empty reference (issue 24), written once into their cache folder
        dataset = with_nonspeech(dataset, s.nonspeech, s.noise.files, s.noise.babble_talkers)
    except UserError as exc:
        problems.append(f"{where('dataset')}: {exc}")
    mem_limit_bytes = None
    if s.mem_limit is not None:
        try:
            mem_limit_bytes = parse_mem_limit(str(s.mem_limit), where('mem_limit'))
        except UserError as exc:
            problems.append(str(exc))
    if be is not None:
        problems += long_form_problems(be, resolved_model, s, where)
    if s.decode.align and be is not None and not be.align:
        aligners = ", ".join(b.name for b in BACKENDS.values() if b.align)
        problems.append(f"{where('decode.align')} is an option of {aligners}; backend {backend} has no word alignment")
    gpus = s.gpus
    if gpus and dev != "cuda":
        problems.append(f"{where('gpus')} {gpus!r} applies to CUDA runs; this run is on {dev}")
    elif gpus and is_jetson():
        problems.append(f"{where('gpus')} {gpus!r} does not apply on a Jetson: it has one integrated GPU; leave it out")
    # What this host can take (the host preflight): the device (a CUDA run needs an NVIDIA GPU and a GPU runtime in
    # the engine) and the operating point (unsupported values, missing rights) stop the run here, before any
    # image is built, model installed, container started or setting changed.
    if host_checks and dev in DEVICES and (dev != "cpu" or s.power.requested()):
        request = preflight.Request(dev, s.power, tuple(str(gpus).split(",")) if gpus else None)
        problems += preflight.problems([request], host or preflight.probe(engine))
    if engine not in ENGINES:
        problems.append(f"--engine {engine!r} is unknown; choose one of {', '.join(ENGINES)}")
    out_path = Path(out).expanduser().resolve()
    problem = out_problem(out_path)
    if problem:
        problems.append(problem)
    elif (out_path / "summary.json").exists():
        problems.append(f"--out {out} already holds a run (summary.json); choose another folder or remove it")
    if image is None and be is not None and engine == "docker":
        try:  # the backend's image for this platform (jetson-r35 / jetson-r36 on a Jetson)
            image = be.default_image(device=dev)
        except UserError as exc:
            problems.append(f"{exc}; or name an image with {where('image')}")
    if problems:
        if len(problems) == 1:
            raise UserError(problems[0])
        raise UserError(f"{len(problems)} problems with this run:", problems=problems)
    assert be is not None and resolved_model is not None and dataset is not None
    if s.limit:
        dataset = dataclasses.replace(dataset, utterances=limited(dataset.utterances, s.limit))
    threads = s.decode.threads
    # A decode setting left at null takes the backend's own value (its row's decode_defaults: espnet's CTC weight).
    backend_defaults = {path.split(".", 1)[1]: value for path, value in be.decode_defaults.items()
                        if setting_value(s, path) is None}
    return RunSpec(
        backend=be,
        image=image or be.image,
        model=resolved_model,
        quant=quant,
        backend_quant=be.backend_quant(dev, quant),
        device=dev,
        dataset=dataset,
        out=out_path,
        decode=dataclasses.replace(s.decode, threads=(os.cpu_count() or 1) if threads is None else threads,
                                   **backend_defaults),
        warmup=s.warmup,
        timeout_s=s.timeout_s,
        allow_download=allow_download,
        mem_limit=s.mem_limit,
        telemetry=s.telemetry,
        engine=engine,
        hardening=Hardening(network=allow_download, mem_limit_bytes=mem_limit_bytes),
        hub_cache_dir=(models_dir / "hub-cache").resolve() if allow_download else None,
        gpus=resolve_gpus(gpus, dev),
        settings=settings,
        repeats=s.repeats,
        limit=s.limit,
        stream=stream_job(be, resolved_model, s.stream),
    )


def with_hub_models(spec: RunSpec, models_dir: Path, log=print) -> RunSpec:
    """The spec with its hub model on disk: a hub name that was not installed (source "hub", no folder) is
    downloaded on the host at its pinned commit (runner/models/hub.py: the CTranslate2 conversion, or the Hugging
    Face checkpoint for transformers and for the ONNX export, which is then made from it) and resolved again, so
    the container gets a folder read-only, with no network. Any other spec is returned as it is."""
    from .models.hub import download

    model = spec.model
    if model.source != "hub" or model.host_dir is not None:
        return spec
    fmt = "hf" if spec.backend.model_format in ("hf", "onnx") else "ctranslate2"
    download(model.name, models_dir, log=log, model_format=fmt)
    resolved = resolve_backend_model(spec.backend, model.name, models_dir, True, log=log,
                                     onnx_exporter=_onnx_exporter(spec.image, spec.engine))
    problem = model_problem(resolved) if spec.engine == "docker" else None
    if problem:
        raise UserError(problem)
    return dataclasses.replace(spec, model=resolved)
