"""`edgeasr doctor`: what this host can measure and what stands in the way, one line per fact, each with its fix.

The first real board this project meets is a user's, so a bug report must say what that host is: the engine and its
version, the platform and how it was told, whether a GPU is there, whether the engine can hand it to a container and
whether each built image's own libraries see it there (device count, compute capability, compute types: a CPU-only
wheel on a Jetson is the most common failure), each sampler's probe with the permission it lacks, whether power modes
and clocks can be set, the images with their pins and whether they are current, the models and whether their files
are the pinned ones.

Every fact comes from the module that owns it: the host preflight (runner/host/preflight.py: platform, driver, GPU
runtime, the device check run and sweep use), the sampler table's probes, the power controllers, the backend table,
the image labels against the requirements (runner/images/freshness.py), the model pins (runner/models/resolve.py,
runner/models/hub.py). ``diagnose`` gathers them into ``Line`` records; the pure ``*_lines`` functions judge them, so
tests feed them a fake Orin Nano, a fake NVML or a probe's answer. Strings that came from an image or a host file are
kept as they came; the command shows them through the terminal-safe printer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import backends
from ..errors import UserError
from . import gpu_probe, platforms, preflight

OK, PROBLEM, NA, INFO = "ok", "problem", "n/a", "info"
STATUSES = (OK, PROBLEM, NA, INFO)
SECTIONS = ("engine", "platform", "gpu", "images", "samplers", "power", "models")
#: The samplers that only a Jetson has (their probe failing elsewhere is no problem of this host).
JETSON_SAMPLERS = ("ina3221", "tegrastats", "jtop")
#: Words of a sampler's reason that name something the host could grant (the probes name it): a problem to fix,
#: where other reasons say the hardware or its driver is not there (a VM without RAPL counters).
FIXABLE_WORDS = ("root", "permission", "read access", "not installed", "pip install", "is not running")


@dataclass(frozen=True)
class Line:
    """One fact: its section, what it is about, ok / problem / n/a (not this kind of host) / info, what was found,
    and for a problem how to fix it."""

    section: str
    name: str
    status: str
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- engine, platform, GPU ------------------------------------------------------------------------------------------


def engine_lines(caps: preflight.HostCaps) -> list[Line]:
    if caps.engine_problem:
        return [Line("engine", "Docker Engine", PROBLEM, caps.engine_problem,
                     "start the Docker Engine and let this user use it (the docker group, or root); without it, "
                     "--engine local runs the entrypoint on the host")]
    return [Line("engine", "Docker Engine", OK, f"version {caps.engine}")]


def platform_lines(caps: preflight.HostCaps) -> list[Line]:
    if caps.platform == "unknown":
        return [Line("platform", "platform", PROBLEM, caps.platform_how,
                     "pass the platform by name (PLATFORM=, --platform) or use --image")]
    what = {"x86": "x86 (CPU images; cuda when asked for and a GPU is here)",
            "arm64": "arm64 (CPU images, built for linux/arm64)"}.get(caps.platform, caps.platform)
    return [Line("platform", "platform", OK, f"{what}: {caps.platform_how}")]


@dataclass(frozen=True)
class NvmlFacts:
    """What NVML says: the driver version and each GPU (name, compute capability), or why it cannot say."""

    driver: str | None = None
    gpus: tuple[tuple[str, str | None], ...] = ()
    reason: str | None = None


def read_nvml() -> NvmlFacts:
    """NVML's GPUs through the same module the power controllers and the sampler load (a fake in tests)."""
    from ..power.nvidia import load_nvml
    from ..telemetry.samplers.nvml import explain_init_error

    try:
        nvml = load_nvml()
    except ImportError:
        return NvmlFacts(reason="the nvidia-ml-py package (module pynvml) is not installed: pip install nvidia-ml-py")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return NvmlFacts(reason=explain_init_error(nvml, exc))
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            try:
                cap = "%d.%d" % tuple(nvml.nvmlDeviceGetCudaComputeCapability(h))
            except (nvml.NVMLError, AttributeError, TypeError):
                cap = None
            gpus.append((_text(nvml.nvmlDeviceGetName(h)), cap))
        return NvmlFacts(driver=driver, gpus=tuple(gpus), reason=None if gpus else "NVML found no NVIDIA GPU")
    except nvml.NVMLError as exc:
        return NvmlFacts(reason=f"NVML could not list the GPUs: {exc}")
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down must not hide what was read
            pass


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def gpu_lines(caps: preflight.HostCaps, nvml: NvmlFacts) -> list[Line]:
    """The GPU itself (a Jetson's iGPU, or the driver's node and NVML's list), the engine's GPU runtime, and the
    host preflight's verdict on --device cuda (the sentence `run` would print)."""
    out = []
    if caps.jetson:
        out.append(Line("gpu", "GPU", OK, f"the Jetson's integrated GPU ({caps.platform})"))
    elif caps.nvidia_driver:
        gpus = ", ".join(f"{name} (compute capability {cap or '?'})" for name, cap in nvml.gpus)
        out.append(Line("gpu", "GPU", OK if nvml.gpus else PROBLEM,
                        f"NVIDIA driver {nvml.driver}: {gpus}" if nvml.gpus else
                        f"the NVIDIA driver's node {caps.driver_node} exists, but {nvml.reason}",
                        None if nvml.gpus else "check the driver with nvidia-smi; install nvidia-ml-py for NVML"))
    else:
        out.append(Line("gpu", "GPU", NA, f"no NVIDIA GPU: no NVIDIA driver ({caps.driver_node} does not exist); "
                                          f"NVML: {nvml.reason or 'no GPU'}"))
    if caps.runtime is None:
        out.append(Line("gpu", "GPU runtime", NA, "the Docker Engine was not asked (not reachable, or --engine local)"))
    else:
        serves = caps.runtime.serves(caps.jetson)
        has_gpu = caps.jetson or caps.nvidia_driver
        out.append(Line("gpu", "GPU runtime", OK if serves else (PROBLEM if has_gpu else NA),
                        caps.runtime.describe(), None if serves or not has_gpu else preflight.TOOLKIT_FIX))
    problem = preflight.device_problem("cuda", caps)
    out.append(Line("gpu", "--device cuda", OK if problem is None else (PROBLEM if caps.jetson or caps.nvidia_driver
                                                                        else NA),
                    "CUDA runs can start here (each image's own check is under images)" if problem is None
                    else problem))
    return out


# -- images ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    """One backend image of this host's platforms: present or not, its id and labels, and what the GPU probe
    printed in a container of it (``probe``: parsed; ``probe_error``: why there is nothing to show)."""

    backend: str
    ref: str
    platform: str
    present: bool
    id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    gpu_requested: bool = False
    probe: dict[str, Any] | None = None
    probe_error: str | None = None


def image_refs(caps: preflight.HostCaps) -> list[tuple[str, str, str]]:
    """(backend, platform, ref) of every backend image this host would run: its platform's variant, and on x86 the
    cuda variant too (asked for by --device cuda)."""
    names = [caps.platform] if caps.platform in platforms.PLATFORMS else []
    if caps.platform == "x86":
        names.append("cuda")
    return [(be.name, p, platforms.platform_image(be.image, p)) for be in backends.BACKENDS.values()
            for p in names if p in be.platforms]


def read_images(caps: preflight.HostCaps, containers: bool = True,
                status: Callable[[str], Any] | None = None) -> list[ImageFacts]:
    """Each image of ``image_refs``: present (id, labels) or not; with ``containers``, the GPU probe's answer from a
    container of it, with the GPU asked for where the host preflight says CUDA can run (a CPU image on x86 never)."""
    from ..launch.docker_engine import connect, image_info
    from ..launch.tool_container import run_probe

    if caps.engine_problem:
        return []
    client = connect()
    cuda_ok = preflight.device_problem("cuda", caps) is None
    out = []
    for backend, platform, ref in image_refs(caps):
        try:
            info = image_info(client, ref)
        except UserError:
            out.append(ImageFacts(backend, ref, platform, False))
            continue
        gpu = cuda_ok and platform not in ("x86", "arm64")  # the CPU images
        facts = ImageFacts(backend, ref, platform, True, info.id, dict(info.labels), gpu)
        if containers:
            if status is not None:
                status(f"asking the libraries in a container of {ref}{' with the GPU' if gpu else ''}")
            try:
                code, output = run_probe(ref, gpu_probe.SCRIPT, gpu=gpu)
                parsed = gpu_probe.parse(output)
                error = None if parsed is not None else \
                    ("the probe timed out" if code is None else f"the probe printed no answer (exit {code}): "
                     + (output.strip().splitlines() or ["no output"])[-1][:300])
            except UserError as exc:
                parsed, error = None, str(exc)
            facts = ImageFacts(backend, ref, platform, True, info.id, dict(info.labels), gpu, parsed, error)
        out.append(facts)
    return out


def _pins_line(facts: ImageFacts) -> tuple[str, str | None]:
    """(the image's pins and whether they are the requirements' of this checkout, the fix when not)."""
    from ..images.build import parse_versions_label, platform_pins
    from ..images.freshness import compare, label_pins

    label = facts.labels.get("org.edgeasr.versions")
    if not label:
        return "no org.edgeasr.versions label (built before labels, or not by edgeasr)", \
            f"rebuild it: edgeasr images build {facts.backend}"
    built = parse_versions_label(label)
    shown = ", ".join(f"{k}={v}" for k, v in built.items())
    if platforms.PLATFORMS[facts.platform].versions_file:  # a Jetson base's own builds win over our pins
        return f"what it holds (its base's builds first): {shown}", None
    wanted = platform_pins(backends.IMAGES[facts.backend], facts.platform)  # a CUDA variant's GPU builds in
    rows = compare(label_pins(facts.ref, facts.labels), wanted, {})
    stale = [f"{r.library} {r.pinned} (requirements.txt pins {r.newest})" for r in rows if r.status != "current"]
    missing = sorted(set(wanted) - set(built))
    if not stale and not missing:
        return f"current: built from this checkout's pins ({shown})", None
    what = "; ".join(stale + [f"{m} not in the image" for m in missing])
    return f"not current: {what}", f"rebuild it: edgeasr images build {facts.backend}" + \
        (" --device cuda" if facts.platform == "cuda" else "")


def probe_summary(facts: ImageFacts) -> tuple[str, str, str | None]:
    """(status, what the image's libraries said, fix) of the GPU probe of one image. A GPU asked for and not seen
    is the problem this check exists for: a CPU-only build (torch without CUDA, CTranslate2 without CUDA devices)."""
    p = facts.probe or {}
    parts = []
    seen_gpu = []
    ct2, torch, ort = p.get("ctranslate2"), p.get("torch"), p.get("onnxruntime")
    if isinstance(ct2, dict):
        n = ct2.get("cuda_devices")
        parts.append(f"CTranslate2 {ct2.get('version')}: {n if n is not None else '?'} CUDA device(s); compute types "
                     f"cpu: {', '.join(map(str, ct2.get('compute_types_cpu') or [])) or '?'}"
                     + (f"; cuda: {', '.join(map(str, ct2['compute_types_cuda']))}"
                        if ct2.get("compute_types_cuda") else ""))
        seen_gpu.append(bool(n))
    if isinstance(torch, dict):
        devices = torch.get("devices") or []
        caps = ", ".join(f"{d.get('name')} {d.get('capability')}" for d in devices if isinstance(d, dict))
        build = f"CUDA {torch['cuda_build']} build" if torch.get("cuda_build") else "CPU-only build"
        available = "yes" if torch.get("cuda_available") else "no"
        parts.append(f"torch {torch.get('version')} ({build}): cuda available {available}"
                     + (f" ({caps})" if caps else "") + (f", bf16 {'yes' if torch.get('bf16') else 'no'}"
                                                         if torch.get("cuda_available") else ""))
        seen_gpu.append(bool(torch.get("cuda_available")))
    if isinstance(ort, dict):
        providers = [str(x) for x in ort.get("providers") or []]
        parts.append(f"ONNX Runtime {ort.get('version')}: providers {', '.join(providers) or '?'}")
        seen_gpu.append("CUDAExecutionProvider" in providers)
    cpu_only = gpu_probe.cpu_only(p, facts.backend)
    if isinstance(p.get("pocketsphinx"), dict):
        parts.append(f"pocketsphinx {p['pocketsphinx'].get('version') or ''} (CPU only)".replace("  ", " "))
    said = "; ".join(parts) or "none of CTranslate2, torch, ONNX Runtime or pocketsphinx imports there"
    if facts.probe is None:
        return PROBLEM, f"could not ask its libraries: {facts.probe_error}", \
            "run `edgeasr check-image " + facts.ref + "` for the contract checks"
    if not facts.gpu_requested:
        return INFO, f"no GPU asked for ({'a CPU image' if facts.platform == 'x86' else 'CUDA cannot run here'}): " \
                     + said, None
    if any(seen_gpu):
        return OK, "the GPU is visible inside its container: " + said, None
    fix = ("a CPU-only wheel cannot use the GPU: rebuild the image on its platform's base "
           f"(edgeasr images build {facts.backend}" + (" --device cuda" if facts.platform == "cuda" else "") + ")"
           if cpu_only else "check the GPU runtime above and the image's CUDA libraries against the driver")
    return PROBLEM, "no GPU inside its container: " + "; ".join(cpu_only + [said]), fix


def image_lines(images: list[ImageFacts], caps: preflight.HostCaps) -> list[Line]:
    if caps.engine_problem:
        return [Line("images", "images", NA, "the Docker Engine is not reachable (see engine)")]
    cuda_ok = preflight.device_problem("cuda", caps) is None
    out = []
    for f in images:
        name = f.backend
        if not f.present:
            if f.platform == "cuda" and not cuda_ok:
                continue  # no GPU here: its CUDA image is nothing to miss
            out.append(Line("images", name, PROBLEM if f.platform != "cuda" else INFO, f"{f.ref} is not built",
                            f"edgeasr images build {f.backend}" + (" --device cuda" if f.platform == "cuda" else "")))
            continue
        pins, fix = _pins_line(f)
        contract = f.labels.get("org.edgeasr.contract")
        from edgeasr_entrypoint.contract import CONTRACT_VERSION

        from ..launch.checked_images import label_problem, older_contract_note

        rebuild = f"edgeasr images build {f.backend}"
        if contract not in (None, "") and label_problem(contract, CONTRACT_VERSION):  # no job can be written for it
            pins += f"; speaks contract {contract}, this runner {CONTRACT_VERSION}"
            fix = fix or f"rebuild it: {rebuild}"
        elif contract not in (None, "") and older_contract_note(contract):  # runs, but not every job (FEATURES)
            pins += f"; speaks contract {contract}: {older_contract_note(contract)} ({rebuild})"
        out.append(Line("images", name, OK if fix is None else PROBLEM, f"{f.ref} ({(f.id or '')[7:19]}): {pins}",
                        fix))
        if f.probe is not None or f.probe_error is not None:
            status, detail, probe_fix = probe_summary(f)
            out.append(Line("images", "  in a container", status, detail, probe_fix))
    return out


# -- samplers, power ------------------------------------------------------------------------------------------------


def sampler_lines(probes: dict[str, str | None], caps: preflight.HostCaps) -> list[Line]:
    """Each sampler's probe; its reason names the permission or the package it lacks. A Jetson's samplers on
    another host, NVML without an NVIDIA GPU, and `none`, are no problem of this host."""
    out = []
    for name, reason in probes.items():
        if name == "none":
            continue
        if reason is None:
            out.append(Line("samplers", name, OK, "works here"))
            continue
        elsewhere = (name in JETSON_SAMPLERS and not caps.jetson) or \
            (name == "nvml" and not caps.nvidia_driver)
        # what the host could grant (a permission, a package) is a problem; hardware that is not there is not
        fixable = any(word in reason.lower() for word in FIXABLE_WORDS)
        out.append(Line("samplers", name, PROBLEM if fixable and not elsewhere else NA, reason))
    if not any(line.status == OK for line in out):
        out.append(Line("samplers", "energy", INFO, "no power sensor works here: runs report energy as "
                                                    "unavailable, with each sensor's reason"))
    return out


def power_lines(caps: preflight.HostCaps, nvml: NvmlFacts) -> list[Line]:
    """Whether power modes and clocks can be set: a Jetson's nvpmodel, jetson_clocks and GPU devfreq node; an
    NVIDIA GPU's locked clocks and power limit through NVML; and root, which both need."""
    from ..power.base import root_problem
    from ..power.jetson import JetsonController

    out = []
    jetson = JetsonController()
    if jetson.present():
        missing = [what for what, ok in (("nvpmodel on PATH", jetson.tool("nvpmodel")),
                                         (str(jetson.conf), jetson.conf.exists()),
                                         ("jetson_clocks on PATH", jetson.tool("jetson_clocks")),
                                         ("the GPU's devfreq node", jetson.gpu_devfreq())) if not ok]
        modes = ", ".join(f"{m.mode_id} ({m.name})" for m in jetson.modes().values())
        node = jetson.gpu_devfreq()
        detail = (f"power modes {modes or 'none found'}; GPU clocks (MHz) "
                  f"{', '.join(f'{f:g}' for f in jetson.available_gpu_mhz()) or '?'}"
                  + (f" on {node.name}" if node else ""))
        out.append(Line("power", "Jetson modes and clocks", PROBLEM if missing else OK,
                        detail + (f"; missing: {', '.join(missing)}" if missing else ""),
                        "run on the Jetson itself with JetPack's tools (or mount them into the runner)"
                        if missing else None))
    else:
        out.append(Line("power", "Jetson modes and clocks", NA,
                        f"not a Jetson (no {jetson.conf}, no GPU devfreq node under {jetson.root}/class/devfreq)"))
    if nvml.gpus:
        out.append(Line("power", "NVIDIA clocks, power limit", OK,
                        "NVML sees the GPUs; locked clocks and the power limit are set through it (root)"))
    else:
        out.append(Line("power", "NVIDIA clocks, power limit", NA, f"no NVIDIA GPU for NVML ({nvml.reason})"))
    settable = jetson.present() or bool(nvml.gpus)
    problem = root_problem("changing power modes, clocks and limits", "nvpmodel, devfreq writes and NVML's setters")
    out.append(Line("power", "root", OK if problem is None else (PROBLEM if settable else NA),
                    "running as root: operating points can be changed" if problem is None else problem))
    return out


# -- models ---------------------------------------------------------------------------------------------------------


def model_lines(models_dir: Path) -> list[Line]:
    """The packaged models (installed, every file's sha256 checked against its pin), their Hugging Face
    conversions (current for this converter), hub downloads (the commit in hub-pins.json, files as downloaded)
    and any other folder (a model of your own: not pinned)."""
    from ..models import hub
    from ..models.ct2_convert import is_current
    from ..models.resolve import PACKAGED, converted_dir, files_problem, is_model_dir

    out = []
    if not models_dir.is_dir():
        return [Line("models", "models folder", PROBLEM, f"{models_dir} does not exist",
                     "edgeasr models install (make models in a checkout), or set EDGEASR_MODELS_DIR")]
    seen = set()
    for name, spec in PACKAGED.items():
        folder = models_dir / name
        seen.add(folder.name)
        if not is_model_dir(folder):
            out.append(Line("models", name, PROBLEM, f"not installed in {models_dir}",
                            f"edgeasr models install {name}"))
            continue
        problem = files_problem(spec, folder)
        out.append(Line("models", name, OK if problem is None else PROBLEM,
                        "installed; every file's sha256 is its pin" if problem is None else problem,
                        None if problem is None else f"edgeasr models install {name} (installs it again)"))
        hf = converted_dir(name, models_dir)
        seen.add(hf.name)
        if is_model_dir(hf):
            current = is_current(folder, hf)
            out.append(Line("models", hf.name, OK if current else PROBLEM,
                            "the Hugging Face conversion of " + name + (" (current)" if current else
                                                                        " is stale for this converter"),
                            None if current else f"edgeasr models convert {name}"))
    pins = hub.read_pins(models_dir)
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name in seen or not is_model_dir(folder):
            continue
        problem, detail = hub.verify(folder, pins)
        if detail is None:
            out.append(Line("models", folder.name, INFO, "a folder of your own: not pinned"))
            continue
        out.append(Line("models", folder.name, OK if problem is None else PROBLEM, problem or detail,
                        None if problem is None else f"{hub.download_command(folder)} "
                                                     "(downloads it again at the pinned commit)"))
    return out


# -- all of it --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    """Everything the doctor read: the host preflight's facts, NVML's, each image's (with its probe's answer as the
    image gave it) and the judged lines."""

    caps: preflight.HostCaps
    nvml: NvmlFacts
    images: list[ImageFacts]
    lines: list[Line]

    def to_json(self) -> dict[str, Any]:
        return {"host": self.caps.to_json(), "nvml": asdict(self.nvml), "images": [asdict(i) for i in self.images],
                "lines": [line.to_json() for line in self.lines]}


def diagnose(models_dir: Path, *, containers: bool = True, engine: str = "docker",
             status: Callable[[str], Any] | None = None) -> Diagnosis:
    """This host's facts and every line, in SECTIONS order. ``containers`` off: the images' libraries are not asked
    (no container is started). Never raises for what it finds: a fact that cannot be read is a line saying why."""
    caps = preflight.probe(engine)
    nvml = read_nvml()
    images = read_images(caps, containers, status)
    lines = engine_lines(caps) + platform_lines(caps) + gpu_lines(caps, nvml) + image_lines(images, caps)
    lines += sampler_lines(preflight.sampler_probes(), caps)
    lines += power_lines(caps, nvml)
    lines += model_lines(models_dir)
    return Diagnosis(caps, nvml, images, lines)
