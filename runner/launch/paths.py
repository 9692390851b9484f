"""What a backend container may see of the host: path containment rules and the bind-mount plan.

Datasets and images come from strangers. A manifest can name any path (an absolute
system file, a ``../`` escape, a symlink to ``/etc/shadow``), and a swapped image runs
whatever code its author wrote. So the runner mounts only the job's own audio files, each
one read-only on its own (up to ``limits.audio_mounts`` of them; beyond that the folders that
hold them, each separately, never a common ancestor, and the run says how many other files
that shows the container), the model folder and the run's output folder, and refuses any
mount source that is, contains or sits inside a system location, or that is a home folder
as a whole. A file mounted alone hides its neighbours: another person's recordings, and the
references a benchmark's image must never read.
"""

from __future__ import annotations

import functools
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import UserError
from ..settings import LimitsSettings, limit_name

# Folders whose contents no backend container ever sees, whatever the options say. /root is root's home
# folder: like every home folder (home_folders) it is never mounted as a whole, but a dataset inside it is allowed.
SYSTEM_LOCATIONS: tuple[str, ...] = ("/etc", "/run", "/var/run", "/proc", "/sys", "/dev", "/boot", "/usr",
                                     "/bin", "/sbin", "/lib", "/lib64", "/var/lib/docker")
DATA_TARGET = "/data"


def docker_socket_dir() -> Path | None:
    """The folder of the Docker Engine's unix socket (DOCKER_HOST, else the default /var/run/docker.sock), while
    a socket is there. A DOCKER_HOST that names nothing guards nothing: the engine is unreachable, and connecting
    says so (launch/docker_engine.connect), rather than the folders beside it being refused as a system location."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return None
    sock = Path(urlparse(host).path or "/var/run/docker.sock")
    try:
        if not stat.S_ISSOCK(sock.stat().st_mode):
            return None
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # cannot tell (a folder we may not search): guard it
        pass
    return sock.parent


@functools.lru_cache(maxsize=None)
def system_locations() -> tuple[Path, ...]:
    """Every system location, resolved (``/var/run`` is a link to ``/run`` on most systems)."""
    found = {Path(p) for p in SYSTEM_LOCATIONS}
    sock = docker_socket_dir()
    if sock is not None:
        found.add(sock)
    resolved = set(found)
    for p in found:
        try:
            resolved.add(p.resolve())
        except OSError:
            pass
    return tuple(sorted(resolved))


@functools.lru_cache(maxsize=None)
def home_folders() -> tuple[Path, ...]:
    """/home, every user's home folder, and $HOME: never mounted as a whole."""
    homes = {Path("/home"), Path("/root")}
    for entry in pwd.getpwall():
        if entry.pw_dir and entry.pw_dir not in ("/", "/nonexistent"):
            homes.add(Path(entry.pw_dir))
    if os.environ.get("HOME"):
        homes.add(Path(os.environ["HOME"]))
    if Path("/home").is_dir():
        try:
            homes.update(p for p in Path("/home").iterdir() if p.is_dir())
        except OSError:
            pass
    out = set()
    for h in homes:
        out.add(h)
        try:
            out.add(h.resolve())
        except OSError:
            pass
    return tuple(sorted(out))


def _within(path: Path | str, folder: Path | str) -> bool:
    """``path`` is ``folder`` or inside it, by their text (both absolute and normalised): Path.parents would build
    an object per level, and a 100,000-line manifest checks every path."""
    p, f = str(path), str(folder)
    return p == f or p.startswith(f if f.endswith("/") else f + "/")


@functools.lru_cache(maxsize=None)
def _system_texts() -> tuple[str, ...]:
    """system_locations() as text, for the checks by text (clear both caches together)."""
    return tuple(map(str, system_locations()))


@functools.lru_cache(maxsize=65536)
def _in_system_location(path: str, locations: tuple[str, ...]) -> bool:
    """Whether ``path`` (a folder's) is or sits inside one of ``locations``: once per folder, not per file."""
    return any(_within(path, loc) for loc in locations)


def system_location_of(path: Path) -> Path | None:
    """The system location that ``path`` is, contains or sits inside; None when it touches none."""
    path = Path(os.path.abspath(path))
    for loc in system_locations():
        if _within(path, loc) or _within(loc, path):
            return loc
    return None


def is_system_file(path: Path) -> bool:
    """A file inside a system location (resolved): never readable by a backend container."""
    text = os.path.abspath(path)
    locations = _system_texts()
    return text in locations or _in_system_location(os.path.dirname(text), locations)


def mount_problem(path: Path, what: str) -> str | None:
    """Why ``path`` must not be bind-mounted into a backend container, or None when it may be."""
    path = Path(os.path.abspath(path))
    if path == Path("/"):
        return f"{what} {path} is the host's root folder"
    loc = system_location_of(path)
    if loc is not None:
        relation = "is" if path == loc else ("contains" if _within(loc, path) else "is inside")
        return f"{what} {path} {relation} the system location {loc}"
    home = home_problem(path)
    return f"{what} {path} is {home} as a whole" if home else None


def home_problem(path: Path) -> str | None:
    """"a home folder" (``/root`` too) or "a folder holding home folders" (``/home``) when ``path`` (absolute) is
    one, else None."""
    for home in home_folders():
        if path == home or _within(home, path):
            return "a home folder" if path == home else "a folder holding home folders"
    return None


def check_mountable(path: Path, what: str) -> None:
    """Raise a UserError naming the rule when ``path`` may not be mounted into a container."""
    problem = mount_problem(path, what)
    if problem:
        raise UserError(f"{problem}; a backend container may not see it: point {what} at a folder of its own")


def check_audio_root(path: Path, option: str) -> Path:
    """A trusted audio folder (the dataset's root, or --audio-root): resolved, a folder, not a system location."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise UserError(f"{option} {path} is not a folder")
    p = p.resolve()
    problem = mount_problem(p, option)
    if problem and (p == Path("/") or system_location_of(p) is not None):
        raise UserError(f"{problem}; audio may only come from the dataset's own folders")
    return p


def audio_problem(audio: Path, roots: tuple[Path, ...]) -> str | None:
    """Why the (resolved) audio path must not be read, or None. A missing file is an error found here, on
    the host, so that nothing is mounted for it and the message names the host path. A file with several hard
    links must belong to the owner of its root (safe_io.links_problem: why that is the sound rule)."""
    from ..trust.safe_io import DATASET, kind_of, links_problem

    if is_system_file(audio):
        return f"refused: {audio} is a system file, which a backend container never reads"
    root = next((r for r in roots if _within(audio, r)), None)
    if root is None:
        where = ", ".join(str(r) for r in roots)
        return (f"refused: {audio} is outside the dataset's root ({where}); "
                f"pass --audio-root DIR (audio_roots in an experiment) to allow a trusted folder")
    try:
        st = audio.lstat()  # resolved: a link here was made after the dataset was read
    except FileNotFoundError:
        return f"audio file not found: {audio}"
    except OSError as exc:
        return f"refused: {audio} cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"refused: {audio} is {kind_of(st.st_mode)}, not a regular file"
    try:
        owner = root.stat().st_uid
    except OSError:
        owner = None
    problem = links_problem(st, owner, str(audio), DATASET)
    return f"refused: {problem}" if problem else None


def readable_by(path: Path, uid: int, gids: tuple[int, ...]) -> bool:
    """Whether a process with this uid and these groups may read ``path`` (and traverse it, for folders)."""
    if uid == 0:
        return True
    try:
        st = path.stat()
    except OSError:
        return False
    want = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
    if st.st_uid == uid:
        want <<= 6
    elif st.st_gid in gids:
        want <<= 3
    return st.st_mode & want == want


@dataclass(frozen=True)
class AudioMount:
    source: Path  # host folder (or file) mounted read-only
    target: str  # where the container sees it


@dataclass(frozen=True)
class AudioPlan:
    """The audio bind mounts of one job and each utterance's path inside the container."""

    mounts: tuple[AudioMount, ...]
    container_paths: dict[str, str]  # utterance id -> container path
    host_paths: dict[str, str]  # container path -> host path (for messages that must name host paths)
    #: One line for the person running it when whole folders are mounted: how many files besides the listed
    #: audio the container can see there. None: every audio file is mounted alone (nothing else is visible).
    notice: str | None = None


def plan_audio_mounts(files: list[tuple[str, Path]], max_file_mounts: int | None = None) -> AudioPlan:
    """Mount each audio file alone, read-only, at /data/<n>/<name> (n: its folder's number), when there are
    at most ``max_file_mounts`` (default: limits.audio_mounts); else each distinct folder that holds audio at
    /data/<n> (a file whose folder may not be mounted whole, a home folder say, alone at
    /data/files/<n>/<name>), with a notice saying how many other files those folders show the container."""
    limit = LimitsSettings().audio_mounts if max_file_mounts is None else max_file_mounts
    per_file = len(files) <= limit
    folders: dict[Path, str] = {}
    mounts: list[AudioMount] = []
    paths: dict[str, str] = {}
    for uid_, audio in files:
        parent = audio.parent
        if per_file:
            folders.setdefault(parent, f"{DATA_TARGET}/{len(folders)}")
            paths[uid_] = f"{folders[parent]}/{audio.name}"
            mounts.append(AudioMount(audio, paths[uid_]))
        elif mount_problem(parent, "folder") is None:
            if parent not in folders:
                folders[parent] = f"{DATA_TARGET}/{len(folders)}"
                mounts.append(AudioMount(parent, folders[parent]))
            paths[uid_] = f"{folders[parent]}/{audio.name}"
        else:
            target = f"{DATA_TARGET}/files/{len(mounts)}/{audio.name}"
            mounts.append(AudioMount(audio, target))
            paths[uid_] = target
    host = {c: str(a) for (i, a) in files for c in [paths[i]]}
    notice = None
    if not per_file:
        whole = [m.source for m in mounts if m.source in folders]
        listed = sum(1 for _, a in files if a.parent in folders)
        others = max(0, visible_files(whole) - listed)
        notice = (f"{len(files)} audio files are more than {limit} ({limit_name('audio_mounts')}), so their "
                  f"{len(whole)} folder(s) are mounted whole: the container can also see {others} other "
                  f"file(s) there")
    return AudioPlan(tuple(mounts), paths, host, notice)


def visible_files(folders: list[Path]) -> int:
    """Entries other than folders beneath ``folders`` (what their mounts show a container), links not followed;
    a folder that is mounted on its own is counted once, as itself."""
    mounted = set(folders)
    n = 0
    for top in folders:
        for here, dirs, names in os.walk(top):
            n += len(names) + sum(1 for d in dirs if os.path.islink(os.path.join(here, d)))
            dirs[:] = [d for d in dirs if Path(here, d) not in mounted]
    return n


def make_readable(folder: Path) -> None:
    """a+rX on a model folder: backend containers run as an unprivileged uid (launch/hardening.py) and must
    read it; a temp folder (mode 0700) renamed into place would otherwise stay private to its creator."""
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        extra = 0o444 | (0o111 if path.is_dir() else 0)
        if mode & extra != extra:
            path.chmod(mode | extra)
