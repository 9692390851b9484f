""".ci/run adds its extra Debian suite from the mirror the host's apt already uses (.ci/debian-mirror), never
from a host name written in the project."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT

SCRIPT = ROOT / ".ci" / "debian-mirror"


def _tree(tmp_path, files: dict[str, str], codename: str = "bookworm"):
    (tmp_path / "etc" / "apt" / "sources.list.d").mkdir(parents=True)
    (tmp_path / "etc" / "os-release").write_text(f'ID=debian\nVERSION_CODENAME={codename}\n')
    for name, text in files.items():
        (tmp_path / "etc" / "apt" / name).write_text(text)
    return tmp_path


def _mirror(root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True)


def test_a_deb822_source_names_the_mirror_of_the_hosts_own_suite(tmp_path):
    """The security stanza (suite bookworm-security) and a disabled one are passed over for the main suite."""
    root = _tree(tmp_path, {"sources.list.d/debian.sources": (
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")})
    proc = _mirror(root)
    assert proc.returncode == 0 and proc.stdout.strip() == "http://mirror.example/debian"


def test_a_one_line_source_with_options_names_the_mirror(tmp_path):
    root = _tree(tmp_path, {"sources.list": (
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main contrib\n")})
    assert _mirror(root).stdout.strip() == "http://one.example/debian"


def test_no_source_for_the_hosts_suite_is_a_clear_failure(tmp_path):
    root = _tree(tmp_path, {"sources.list": "deb http://one.example/debian bookworm main\n"}, codename="trixie")
    proc = _mirror(root)
    assert proc.returncode == 1 and proc.stdout == "" and "no apt source for this host's release (trixie)" in proc.stderr


def test_ci_run_writes_no_archive_host_name():
    text = (ROOT / ".ci" / "run").read_text()
    assert "debian-mirror" in text and "deb.debian.org" not in text
