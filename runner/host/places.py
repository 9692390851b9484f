"""Where edgeasr keeps and finds things, inside a source checkout and outside one (issue 28 item 4).

Inside a checkout (the folder holds this project's ``pyproject.toml`` and ``containers/``) everything stays where
`make` and compose put it: ``models/`` and ``data/default`` under the checkout. From any other folder, after a
``pip install`` of the project, a user has no ``models/`` and no ``data/``: models live in one per-user folder
(``$XDG_DATA_HOME/edgeasr/models``, ``~/.local/share/edgeasr/models`` by default; ``$EDGEASR_MODELS_DIR`` or
``--models-dir`` override both), and the embedded dataset is the copy that ships with the package. Relative paths
in an experiment file are looked up next to the file first (as compose resolves its own), then in the current
folder. A leaf: it imports nothing of the runner.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EMBEDDED_DATASET = "data/default"
"""The dataset a run uses when none is named (settings.dataset's default): embedded in the project."""

MODELS_ENV = "EDGEASR_MODELS_DIR"


def is_checkout(folder: Path) -> bool:
    """Whether ``folder`` is an edgeasr source checkout (where `make` and compose run)."""
    return (folder / "pyproject.toml").is_file() and (folder / "containers" / "common" / "edgeasr_entrypoint").is_dir()


def user_data_dir() -> Path:
    """edgeasr's per-user data folder (the XDG base directory rule)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edgeasr"


def default_models_dir(cwd: Path | None = None) -> Path:
    """Where models are installed and looked up: $EDGEASR_MODELS_DIR; else ``models/`` of the current folder when it
    is a checkout or already holds a ``models/`` folder (compose mounts the checkout); else the per-user folder."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser().resolve()
    cwd = (cwd or Path.cwd()).resolve()
    if is_checkout(cwd) or (cwd / "models").is_dir():
        return cwd / "models"
    return user_data_dir() / "models"


def embedded_dataset() -> Path | None:
    """The embedded dataset's folder: the checkout's own, else the copy a wheel installs under
    ``<prefix>/share/edgeasr`` (pyproject.toml's data-files); None when neither is there."""
    for candidate in (ROOT / EMBEDDED_DATASET, Path(sys.prefix) / "share" / "edgeasr" / EMBEDDED_DATASET):
        if candidate.is_dir():
            return candidate
    return None


def data_path(value: str | Path, *bases: Path) -> Path:
    """A relative dataset (or other input) path resolved: the first of ``bases`` (default: the current folder)
    where it exists; the embedded dataset's name, found nowhere, is the embedded copy; else under the first base,
    so that the error names where it was looked for. Absolute paths are kept."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    bases = bases or (Path.cwd(),)
    for base in bases:
        if (base / p).exists():
            return (base / p).resolve()
    if p == Path(EMBEDDED_DATASET):
        embedded = embedded_dataset()
        if embedded is not None:
            return embedded
    return (bases[0] / p).resolve()
