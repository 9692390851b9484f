"""`make run` on a fresh machine without debootstrap (containers/base/make-base.sh): as root with apt it
installs debootstrap and says so; without apt it says, in one sentence, the command to run."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT

SCRIPT = ROOT / "containers/base/make-base.sh"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the script's debootstrap path runs as root only")


def _bin(tmp_path: Path, apt: bool) -> Path:
    """A PATH with `id` and, when ``apt``, a fake apt-get that records its calls and fails (nothing installed)."""
    d = tmp_path / "bin"
    d.mkdir()
    (d / "id").symlink_to(shutil.which("id"))
    if apt:
        fake = d / "apt-get"
        fake.write_text(f"#!{shutil.which('bash')}\necho \"$@\" >> {tmp_path}/apt-calls\nexit 1\n")
        fake.chmod(0o755)
    return d


def _run(tmp_path: Path, apt: bool) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("bash"), str(SCRIPT), "edgeasr/base:test-never-built"], capture_output=True,
                          text=True, env={"PATH": str(_bin(tmp_path, apt))}, timeout=30)


def test_missing_debootstrap_is_installed_with_apt_and_said(tmp_path):
    r = _run(tmp_path, apt=True)
    assert "debootstrap is missing; installing it with apt-get" in r.stderr
    assert "update" in (tmp_path / "apt-calls").read_text()  # it really asked apt
    # the fake apt installs nothing: one sentence with the command, exit 2
    assert r.returncode == 2 and "run: apt-get install debootstrap" in r.stderr


def test_without_apt_one_sentence_names_the_command(tmp_path):
    r = _run(tmp_path, apt=False)
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "apt-get install debootstrap" in lines[0]
