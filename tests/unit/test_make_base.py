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


def _fakes(folder: Path, scripts: dict[str, str]) -> None:
    """Write each fake tool of ``scripts`` (name -> bash body) into ``folder``, executable."""
    for name, body in scripts.items():
        (folder / name).write_text(f"#!{shutil.which('bash')}\n{body}\n")
        (folder / name).chmod(0o755)


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


def _fake_tools(tmp_path: Path, suites: tuple[str, ...] = ("bookworm", "trixie")) -> dict[str, str]:
    """An environment where the script runs to its end without root, network or Docker: `id` says root, a fake
    debootstrap records its arguments, a fake docker swallows the image; the text tools are the real ones."""
    d = tmp_path / "bin"
    d.mkdir()
    for tool in ("awk", "grep", "mktemp", "rm", "tar", "tail", "cat"):
        (d / tool).symlink_to(shutil.which(tool))
    _fakes(d, {"id": "echo 0", "debootstrap": f'echo "$@" > {tmp_path}/debootstrap-args', "docker": "cat > /dev/null"})
    scripts = tmp_path / "debootstrap" / "scripts"
    scripts.mkdir(parents=True)
    for suite in suites:
        (scripts / suite).write_text("")
    return {"PATH": str(d), "DEBOOTSTRAP_DIR": str(tmp_path / "debootstrap"), "EDGEASR_APT_ETC": str(tmp_path / "apt")}


def test_trixie_is_debootstrapped_from_the_hosts_own_debian_mirror(tmp_path):
    """The mirror comes from the host's apt sources (a deb822 stanza; the security archive is not a mirror), and
    the trixie base holds Python 3.13 without FFmpeg."""
    sources = tmp_path / "apt" / "sources.list.d"
    sources.mkdir(parents=True)
    (sources / "debian.sources").write_text(
        "Types: deb\nURIs: file:///srv/mirror/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: file:///srv/mirror/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    r = subprocess.run([shutil.which("bash"), str(SCRIPT), "edgeasr/base:test-never-built", "trixie"],
                       capture_output=True, text=True, env=_fake_tools(tmp_path), timeout=30)
    assert r.returncode == 0, r.stderr
    args = (tmp_path / "debootstrap-args").read_text().split()
    assert args[-3] == "trixie" and args[-1] == "file:///srv/mirror/debian"  # suite, root folder, mirror
    include = next(a for a in args if a.startswith("--include="))
    assert "python3" in include and "libavcodec" not in include


def test_a_one_line_source_list_gives_the_mirror_too_and_bookworm_keeps_ffmpeg(tmp_path):
    (tmp_path / "apt").mkdir()
    (tmp_path / "apt" / "sources.list").write_text("deb file:///srv/other/debian bookworm main\n")
    r = subprocess.run([shutil.which("bash"), str(SCRIPT), "edgeasr/base:test-never-built"],
                       capture_output=True, text=True, env=_fake_tools(tmp_path), timeout=30)
    assert r.returncode == 0, r.stderr
    args = (tmp_path / "debootstrap-args").read_text().split()
    assert args[-1] == "file:///srv/other/debian" and "bookworm" in args and "libavcodec59" in " ".join(args)


def test_an_unknown_suite_is_one_sentence_and_exit_2(tmp_path):
    r = subprocess.run([shutil.which("bash"), str(SCRIPT), "edgeasr/base:test-never-built", "sid"],
                       capture_output=True, text=True, env=_fake_tools(tmp_path), timeout=30)
    assert r.returncode == 2 and r.stderr.strip() == ("make-base.sh: unknown suite 'sid'; choose bookworm (Python "
                                                      "3.11), trixie (Python 3.13) or bullseye (Python 3.9, the "
                                                      "JetPack 5 stand-in's)")


needs_qemu = pytest.mark.skipif(not Path("/usr/bin/qemu-aarch64-static").exists()
                                or not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
                                reason="the foreign-architecture path checks for qemu-user-static and its binfmt entry")


def _arm64_debootstrap_args(tmp_path: Path, suite: str) -> list[str]:
    """make-base.sh's debootstrap arguments for an arm64 ``suite`` base on this host (its emulated second stage run
    by a fake chroot, which must be asked for it)."""
    env = _fake_tools(tmp_path, suites=(suite,))
    bash = shutil.which("bash")
    _fakes(Path(env["PATH"]), {"chroot": f'echo "$@" > {tmp_path}/chroot-args', "python3": "exit 0"})
    (tmp_path / "apt").mkdir()
    r = subprocess.run([bash, str(SCRIPT), "edgeasr/base:test-never-built", suite, "file:///srv/debian"],
                       capture_output=True, text=True, env={**env, "ARCH": "arm64"}, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "--second-stage" in (tmp_path / "chroot-args").read_text()
    return (tmp_path / "debootstrap-args").read_text().split()


@needs_qemu
def test_an_arm64_base_leaves_ffmpeg_out_and_configures_under_emulation(tmp_path):
    """No arm64 image loads FFmpeg's libraries, and each package of a foreign base is configured under qemu: the
    arm64 bookworm base is python3 without FFmpeg (minutes, not the ~24 min it took with it)."""
    args = _arm64_debootstrap_args(tmp_path, "bookworm")
    assert "--arch=arm64" in args and "--foreign" in args
    include = next(a for a in args if a.startswith("--include="))
    assert "python3" in include and "libgomp1" in include and "libav" not in include


@needs_qemu
def test_a_bullseye_arm64_base_is_a_system_python3_with_pip_and_no_ffmpeg(tmp_path):
    """bullseye (Python 3.9) is the base of the JetPack 5 stand-in (runner/images/standin.py): like Ubuntu 20.04's
    jetson-containers images, packages go into the system python3 with its own pip (no venv, no PEP 668 marker
    on bullseye), so pip comes with the base; nothing loads FFmpeg there either."""
    args = _arm64_debootstrap_args(tmp_path, "bullseye")
    assert "--arch=arm64" in args and args[-3] == "bullseye"
    include = next(a for a in args if a.startswith("--include=")).split("=", 1)[1].split(",")
    assert {"python3", "python3-pip", "libgomp1", "ca-certificates"} <= set(include)
    assert not any(p.startswith("libav") for p in include)


@pytest.mark.parametrize("arch", ["amd64", pytest.param("arm64", marks=needs_qemu)])
def test_a_base_is_made_with_mmdebstrap_where_installed(tmp_path, arch):
    """Where mmdebstrap is installed, a base is made with it: the host's apt fetches side by side and dpkg installs
    in one pass, for a foreign base the only thing emulated (debootstrap's second stage runs its whole script under
    qemu). Measured here (issue 26): bookworm 77 s against 39 s, bookworm arm64 237 s against 142 s. Same variant,
    packages and mirror; neither debootstrap nor a second stage runs, and the folder it made is what docker
    imports."""
    env = _fake_tools(tmp_path, suites=("bookworm",))  # no dpkg on this PATH: the script takes the host as amd64
    bash = shutil.which("bash")
    root = '"${@: -2:1}"'  # the fake's root folder argument: the one before the mirror
    _fakes(Path(env["PATH"]), {
        "mmdebstrap": (f'echo "$@" > {tmp_path}/mmdebstrap-args; {shutil.which("mkdir")} {root}/etc; '
                       f"echo made-by-mmdebstrap > {root}/etc/marker"),
        "chroot": f'echo "$@" > {tmp_path}/chroot-args', "python3": "exit 0",
        "docker": f"tar -xO ./etc/marker > {tmp_path}/imported"})
    (tmp_path / "apt").mkdir()
    r = subprocess.run([bash, str(SCRIPT), "edgeasr/base:test-never-built", "bookworm", "file:///srv/debian"],
                       capture_output=True, text=True, env={**env, "ARCH": arch}, timeout=30)
    assert r.returncode == 0, r.stderr
    args = (tmp_path / "mmdebstrap-args").read_text().split()
    assert {"--mode=root", "--variant=minbase", f"--architectures={arch}"} <= set(args)
    assert args[-3] == "bookworm" and args[-1] == "file:///srv/debian"  # suite, root folder, mirror
    include = next(a for a in args if a.startswith("--include=")).split("=", 1)[1].split(",")
    assert {"python3", "python3-venv", "libgomp1"} <= set(include)
    assert any(p.startswith("libav") for p in include) == (arch == "amd64")  # FFmpeg only where images load it
    assert not (tmp_path / "debootstrap-args").exists() and not (tmp_path / "chroot-args").exists()
    assert (tmp_path / "imported").read_text() == "made-by-mmdebstrap\n"
    assert f"mmdebstrap bookworm ({arch}" in r.stdout


def test_two_bases_made_at_once_on_a_fresh_machine_install_debootstrap_once(tmp_path):
    """`make test` debootstraps bookworm and trixie side by side: on a machine without debootstrap both scripts
    ran apt-get at once and the second failed on apt's lock ("could not install debootstrap"). Here a fake apt-get
    keeps apt's rule (a second one at the same time fails: "Could not get lock") and installs a fake debootstrap;
    both scripts must get past the install, and apt installs once."""
    d = tmp_path / "bin"
    d.mkdir()
    for tool in ("id", "flock", "sleep", "mkdir", "rmdir"):
        (d / tool).symlink_to(shutil.which(tool))
    bash = shutil.which("bash")
    (d / "apt-get").write_text(
        f"#!{bash}\n"
        f"mkdir {tmp_path}/apt-lock 2>/dev/null || {{ echo 'E: Could not get lock /var/lib/apt/lists/lock' >&2; "
        "exit 100; }\n"
        f"echo \"$@\" >> {tmp_path}/apt-calls\nsleep 1\n"
        f"if [[ $1 == install ]]; then printf '#!{bash}\\nexit 0\\n' > {d}/debootstrap; chmod +x {d}/debootstrap; fi\n"
        f"rmdir {tmp_path}/apt-lock\n")
    (d / "apt-get").chmod(0o755)
    env = {"PATH": str(d), "TMPDIR": str(tmp_path), "DEBOOTSTRAP_DIR": str(tmp_path / "no-scripts")}
    runs = [subprocess.Popen([bash, str(SCRIPT), f"edgeasr/base:test-never-built-{suite}", suite], env=env,
                             stderr=subprocess.PIPE, text=True) for suite in ("bookworm", "trixie")]
    errs = [r.communicate(timeout=60)[1] for r in runs]
    for err in errs:
        assert "could not install debootstrap" not in err and "Could not get lock" not in err, err
        # past the install: the next check (this fake debootstrap knows no suite) is what stops it
        assert "this debootstrap does not know" in err, err
    assert [c.split()[0] for c in (tmp_path / "apt-calls").read_text().splitlines()] == ["update", "install"]
