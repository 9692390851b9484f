"""Read and write files in folders a stranger controls, never following what was planted there.

A backend image writes its outputs into a folder the runner reads back (often as root), and a dataset's text
files come from whoever made the dataset. Either can leave a symbolic link to a host file, a FIFO that blocks a
reader forever, a device such as ``/dev/zero`` that never ends, a file too big to hold, or a hard link to a
file its author cannot read. Every such read goes through here, and follows one rule set:

- The folder is opened with ``O_DIRECTORY | O_NOFOLLOW``; each path component beneath it is opened relative to
  the one before (``dir_fd``, openat) with ``O_NOFOLLOW``: no link is followed anywhere beneath the folder.
- The entry is looked at first (``lstat``) and only a regular file is opened, so a FIFO or a device is never
  opened at all; the open has ``O_NONBLOCK`` besides, and the opened descriptor is checked again (``fstat``: a
  regular file, the very inode looked at), so a swap between the look and the open is caught.
- Its size is capped on the descriptor before reading and again while reading (it may still grow).
- A file with more than one hard link is read only where its owner owns the folder (``links_problem``).

Anything else raises ``Unsafe``, whose message says what was found and where it came from:
``raw/transcripts.jsonl is a symbolic link (left by the image); not read``.

Writes for a container go into a folder made new for each attempt (``fresh_folder``), with ``O_EXCL |
O_NOFOLLOW``, before the container starts; nothing is ever written through a name a container could have made.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

MIB = 1024 * 1024
#: The least an entry costs in a folder's size (``folder_usage``): an empty file still takes an inode and a
#: block, so a million empty files count as the 4 GiB of disk they make a host's file system spend.
ENTRY_BYTES = 4096
IMAGE = "left by the image"
DATASET = "in the dataset"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class Unsafe(Exception):
    """A file the runner would not read (or a folder it would not use); the message is one sentence."""


def size_text(n: int) -> str:
    """Bytes as a person reads a limit: ``1 MiB``, ``1.5 MiB``, ``512 KiB``, ``17 bytes``."""
    if n >= MIB:
        return f"{n / MIB:.4g} MiB"
    if n >= 1024:
        return f"{n / 1024:.4g} KiB"
    return f"{n} bytes"


def kind_of(mode: int) -> str:
    """What a non-regular entry is, as a message names it."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def links_problem(st: os.stat_result, owner_uid: int | None, label: str, origin: str) -> str | None:
    """Why a file with several hard links is not read, or None.

    A hard link cannot be told from its original, and nothing says where its other names are: a dataset can
    hold a link to ``/etc/shadow`` (made where ``fs.protected_hardlinks`` is off, or by whoever could write
    the file), which a runner running as root would read. What is sound: a file whose owner owns the folder
    (``owner_uid``: the dataset's root) is that person's own; they could read it anyway, so reading it gains
    nobody anything. Any other owner is refused. ``owner_uid`` None: every file with more than one link is
    refused (a container's outputs: the entrypoint never makes hard links)."""
    if st.st_nlink <= 1 or (owner_uid is not None and st.st_uid == owner_uid):
        return None
    whose = "" if owner_uid is None else f" and belongs to uid {st.st_uid}, not to the folder's owner (uid {owner_uid})"
    return (f"{label} has {st.st_nlink} hard links{whose} ({origin}): it may be a file from elsewhere on the "
            f"host; not read")


def open_folder(path: Path) -> int:
    """A descriptor of the folder ``path``, which must not itself be a symbolic link."""
    try:
        return os.open(path, _DIR_FLAGS)
    except OSError as exc:
        raise Unsafe(f"{path}: cannot open the folder ({exc.strerror})") from None


def _walk(dir_fd: int, parts: Sequence[str], label_of, origin: str) -> int:
    """A descriptor of the folder ``parts`` beneath ``dir_fd``, one component at a time, never through a link."""
    fd = os.dup(dir_fd)
    for i, part in enumerate(parts):
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                what = kind_of(st.st_mode)
            except OSError:
                what = None
            os.close(fd)
            if what and what != "a folder":
                raise Unsafe(f"{label_of(i + 1)} is {what} ({origin}); not read") from None
            if exc.errno == 2:
                raise FileNotFoundError(label_of(i + 1)) from None
            raise Unsafe(f"{label_of(i + 1)}: cannot open the folder ({exc.strerror}); not read") from None
        os.close(fd)
        fd = nxt
    return fd


@contextlib.contextmanager
def opened(folder: Path | int, rel: str, *, label: str, origin: str, limit: int, limit_name: str,
           owner_uid: int | None = None) -> Iterator[tuple[BinaryIO, int] | None]:
    """``(file, size)`` of the regular file ``rel`` beneath ``folder`` (a path or a folder descriptor), opened
    by the rules of this module; None when there is no such entry. ``label`` names it in messages
    (``raw/status.json``), ``origin`` says who put it there, ``limit`` (bytes) caps its size and
    ``limit_name`` is the setting that raises it."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise Unsafe(f"{label}: not a path beneath its folder; not read")
    # A folder on the way is named like the file: "raw/sub" for "raw/sub/x.json" (else by the file's label).
    prefix = label[: len(label) - len(rel)] if label.endswith(rel) else None

    def label_of(n: int) -> str:
        return label if prefix is None else prefix + "/".join(parts[:n])

    top = open_folder(folder) if not isinstance(folder, int) else os.dup(folder)
    try:
        try:
            dfd = _walk(top, parts[:-1], label_of, origin)
        except FileNotFoundError:
            yield None
            return
    finally:
        os.close(top)
    fh = None
    try:
        name = parts[-1]
        try:
            before = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            yield None
            return
        if not stat.S_ISREG(before.st_mode):
            raise Unsafe(f"{label} is {kind_of(before.st_mode)} ({origin}); not read")
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
        except OSError as exc:
            raise Unsafe(f"{label}: cannot open it ({exc.strerror}; {origin}); not read") from None
        fh = os.fdopen(fd, "rb")
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise Unsafe(f"{label} was replaced while it was being opened ({origin}); not read")
        problem = links_problem(st, owner_uid, label, origin)
        if problem:
            raise Unsafe(problem)
        if st.st_size > limit:
            raise Unsafe(f"{label} is {size_text(st.st_size)}, over the limit of {size_text(limit)} "
                         f"({limit_name}; {origin}); not read")
        yield fh, st.st_size
    finally:
        if fh is not None:
            fh.close()
        os.close(dfd)


def read_bytes(folder: Path | int, rel: str, *, label: str, origin: str, limit: int, limit_name: str,
               owner_uid: int | None = None) -> bytes | None:
    """The whole regular file ``rel`` beneath ``folder`` (see ``opened``), or None when it does not exist."""
    with opened(folder, rel, label=label, origin=origin, limit=limit, limit_name=limit_name,
                owner_uid=owner_uid) as got:
        if got is None:
            return None
        data = got[0].read(limit + 1)
        if len(data) > limit:  # it grew after the size was checked
            raise Unsafe(f"{label} is over the limit of {size_text(limit)} ({limit_name}; {origin}); not read")
        return data


def lines(fh: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, line)`` for each line of ``fh``; a line of more than ``limit`` bytes (its newline not
    counted) is None, and is skipped without being held. Linear in the input; holds at most one line."""
    lineno = 0
    while True:
        line = fh.readline(limit + 2)
        if not line:
            return
        lineno += 1
        body = line[:-1] if line.endswith(b"\n") else line
        if len(body) <= limit:
            yield lineno, body
            continue
        while not line.endswith(b"\n"):  # the rest of the long line, a piece at a time
            line = fh.readline(64 * 1024)
            if not line:
                break
        yield lineno, None


@dataclass
class Jsonl:
    """The objects of a JSONL file, and what was wrong with the lines that gave none."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    over_limit: list[str] = field(default_factory=list)  # 'LABEL:LINE: ...': a line over its limit, not read
    malformed: list[str] = field(default_factory=list)  # 'LABEL:LINE: ...': not JSON, or not an object


def read_jsonl(folder: Path | int, rel: str, *, label: str, origin: str, line_limit: int, limit_name: str,
               file_limit: int, file_limit_name: str) -> Jsonl | None:
    """A JSONL file beneath ``folder`` read by the rules of this module, each line capped at ``line_limit``
    bytes and the file at ``file_limit``; None when it does not exist. A cut-off last line (a container
    killed mid-write) is malformed, as any other line that is not a JSON object."""
    with opened(folder, rel, label=label, origin=origin, limit=file_limit, limit_name=file_limit_name) as got:
        if got is None:
            return None
        out = Jsonl()
        bounded = io.BufferedReader(_Capped(got[0], file_limit), 1 << 16)
        for lineno, line in lines(bounded, line_limit):
            if line is None:
                out.over_limit.append(f"{label}:{lineno}: a line of more than {size_text(line_limit)} "
                                      f"({limit_name}); not read")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                out.malformed.append(f"{label}:{lineno}: not valid JSON ({getattr(exc, 'msg', exc.__class__.__name__)})")
                continue
            if not isinstance(row, dict):
                out.malformed.append(f"{label}:{lineno}: not a JSON object")
                continue
            out.rows.append(row)
        return out


class _Capped(io.RawIOBase):
    """A reader that ends after ``limit`` bytes of ``fh`` (a file that grows while it is read stops there); with
    ``over``, a file that has more than that raises Unsafe with that sentence instead of ending quietly."""

    def __init__(self, fh: BinaryIO, limit: int, over: str | None = None):
        self._fh, self._left, self._over = fh, limit, over

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._left <= 0:
            if self._over is not None and self._fh.read(1):
                raise Unsafe(self._over)
            return 0
        n = self._fh.readinto(memoryview(buf)[: self._left])  # type: ignore[attr-defined]
        self._left -= n or 0
        return n or 0


def _dataset_entry(path: Path, roots: Sequence[Path]) -> tuple[Path, str]:
    """The root ``path`` resolves beneath, and its place there; Unsafe when it resolves outside them all."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise Unsafe(f"{path} cannot be resolved ({getattr(exc, 'strerror', None) or exc}); not read") from None
    root = next((r for r in roots if resolved == r or r in resolved.parents), None)
    if root is None:
        where = ", ".join(str(r) for r in roots)
        link = f"a link to {resolved}, " if resolved != Path(os.path.abspath(path)) else ""
        raise Unsafe(f"{path} is {link}outside the dataset's root ({where}); not read")
    return root, resolved.relative_to(root).as_posix()


def read_dataset_text(path: Path, roots: Sequence[Path], *, limit: int, limit_name: str,
                      encoding: str = "utf-8") -> str:
    """A dataset's text file (manifest, ``*.trans.txt``, a reference ``.txt``) by the rules its audio obeys:
    resolved, under one of the dataset's ``roots``, then opened beneath that root without following a link
    (so it cannot be swapped for one after it was resolved), regular, at most ``limit`` bytes, and not a
    hard link to another owner's file (``links_problem``, against the root's owner). Unsafe says why not."""
    root, rel = _dataset_entry(path, roots)
    data = read_bytes(root, rel, label=str(path), origin=DATASET, limit=limit, limit_name=limit_name,
                      owner_uid=os.stat(root).st_uid)
    if data is None:
        raise Unsafe(f"{path} disappeared while it was being read")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise Unsafe(f"{path} is not {encoding.upper().replace('-SIG', '')} text (byte {exc.start}); "
                     f"not read") from None


@contextlib.contextmanager
def open_dataset_text(path: Path, roots: Sequence[Path], *, limit: int, limit_name: str,
                      encoding: str = "utf-8") -> Iterator[io.TextIOWrapper]:
    """A dataset's text file opened by ``read_dataset_text``'s rules, for reading a line at a time (a manifest
    cut by ``--limit`` is not read past the cut). A file that grows past ``limit`` while it is read raises
    Unsafe; a byte that is not ``encoding`` raises UnicodeDecodeError where it is met. Lines end at ``\\n``
    only."""
    root, rel = _dataset_entry(path, roots)
    with opened(root, rel, label=str(path), origin=DATASET, limit=limit, limit_name=limit_name,
                owner_uid=os.stat(root).st_uid) as got:
        if got is None:
            raise Unsafe(f"{path} disappeared while it was being read")
        over = f"{path} is over the limit of {size_text(limit)} ({limit_name}; {DATASET}); not read"
        yield io.TextIOWrapper(io.BufferedReader(_Capped(got[0], limit, over), 1 << 16), encoding=encoding,
                               newline="\n")


def write_new(folder: Path, name: str, data: bytes) -> None:
    """Create ``folder/name`` (it must not exist: ``O_EXCL``) and write ``data``; never through a link."""
    dfd = open_folder(folder)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
    finally:
        os.close(dfd)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def create_log(path: Path) -> BinaryIO:
    """``path`` opened for writing from its start (truncated), never through a link; for a log the runner keeps
    in a folder of its own (a container never writes there)."""
    dfd = open_folder(path.parent)
    try:
        fd = os.open(path.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=dfd)
    except OSError as exc:
        raise Unsafe(f"{path}: cannot create the log ({exc.strerror})") from None
    finally:
        os.close(dfd)
    return os.fdopen(fd, "wb")


#: How deep a walk of an image's folder goes (``walk``): a container can nest folders thousands deep in a
#: second, deeper than Python's recursion (shutil.rmtree, Path.rglob, os.walk fail) or a process's descriptors.
MAX_DEPTH = 64


class TooDeep(Unsafe):
    """A folder nests deeper than MAX_DEPTH."""


def walk(folder: Path | int, *, strict: bool = True) -> Iterator[tuple[int, os.DirEntry, os.stat_result]]:
    """``(folder descriptor, entry, lstat)`` for every entry beneath ``folder``, depth first, never following a
    link, iterative (at most two descriptors per level open). Past MAX_DEPTH: TooDeep when ``strict``, else
    the deeper folders are left out. A folder that cannot be opened raises Unsafe."""
    top = open_folder(folder) if not isinstance(folder, int) else os.dup(folder)
    stack = [(top, os.scandir(top))]
    try:
        while stack:
            fd, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                entries.close()
                os.close(fd)
                stack.pop()
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield fd, entry, st
            if not stat.S_ISDIR(st.st_mode):
                continue
            if len(stack) > MAX_DEPTH:
                if strict:
                    raise TooDeep(f"{entry.name} nests folders more than {MAX_DEPTH} deep")
                continue
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise Unsafe(f"{entry.name} is a folder the runner cannot open ({exc.strerror})") from None
            stack.append((child, os.scandir(child)))
    finally:
        for fd, entries in stack:
            entries.close()
            os.close(fd)


def fresh_folder(parent: Path, name: str) -> Path:
    """``parent/name`` made new and empty for one attempt. What an earlier attempt's container left there
    (links, FIFOs, trees, folders it made unreadable) is first moved aside in one rename and removed without
    following a link (``_remove_tree``, by descriptors); then the folder is made with ``mkdir``, which never
    follows a link. ``parent`` is the runner's own folder (a container never writes there)."""
    parent.mkdir(parents=True, exist_ok=True)
    pfd = open_folder(parent)
    try:
        try:
            os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            trash = f".{name}.old-{os.getpid()}-{time.monotonic_ns()}"
            os.rename(name, trash, src_dir_fd=pfd, dst_dir_fd=pfd)
            _remove(pfd, trash)
        os.mkdir(name, 0o755, dir_fd=pfd)
    finally:
        os.close(pfd)
    return parent / name


def _remove(pfd: int, name: str) -> None:
    """Remove ``name`` beneath the folder ``pfd`` without following links; what cannot be removed stays (under
    its hidden name, never read again)."""
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=pfd)
            return
        _remove_tree(pfd, name)
    except OSError:
        pass


def _remove_tree(pfd: int, name: str) -> None:
    """Remove the folder ``name`` beneath ``pfd`` and all it holds, by descriptors (never through a link) and
    iteratively: a folder deeper than MAX_DEPTH is first moved up to the top (renameat), so that neither
    Python's recursion (shutil.rmtree recurses once per level) nor the descriptors run out. A runner that is
    not root first opens up folders the container (its own uid) made unreadable."""
    moved = 0

    def level(parent_fd: int, entry: str) -> list:
        if os.getuid() != 0:
            with contextlib.suppress(OSError):
                os.chmod(entry, 0o700, dir_fd=parent_fd)  # a real folder: seen by lstat, no container runs now
        fd = os.open(entry, _DIR_FLAGS, dir_fd=parent_fd)
        folders = []
        with os.scandir(fd) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    folders.append(e.name)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(e.name, dir_fd=fd)
        return [fd, entry, folders, 0]

    stack = [level(pfd, name)]
    try:
        while stack:
            fd, entry, folders, i = here = stack[-1]
            if i == len(folders):
                stack.pop()
                os.close(fd)
                os.rmdir(entry, dir_fd=stack[-1][0] if stack else pfd)
                continue
            here[3] += 1
            if len(stack) >= MAX_DEPTH:  # move it up to the top, where it is removed in its turn
                moved += 1
                up = f".edgeasr-deep-{os.getpid()}-{time.monotonic_ns()}-{moved}"
                os.rename(folders[i], up, src_dir_fd=fd, dst_dir_fd=stack[0][0])
                stack[0][2].append(up)
                continue
            try:
                stack.append(level(fd, folders[i]))
            except FileNotFoundError:
                continue
    finally:
        for here in stack:
            os.close(here[0])


def remove(path: Path) -> None:
    """Remove ``path`` (a folder an image wrote into, or held) without following links and without raising."""
    try:
        pfd = open_folder(path.parent)
    except Unsafe:
        return
    try:
        _remove(pfd, path.name)
    finally:
        os.close(pfd)


def folder_usage(folder: Path, stop_above: int | None = None) -> int:
    """The bytes ``folder`` takes on disk, each entry at least ENTRY_BYTES, never following a link; counting
    stops as soon as the total passes ``stop_above``. A folder beneath it that cannot be opened, or that
    nests deeper than MAX_DEPTH, raises Unsafe: what cannot be measured cannot be bounded."""
    total = 0
    for _fd, _entry, st in walk(folder):
        total += max(st.st_blocks * 512, ENTRY_BYTES)
        if stop_above is not None and total > stop_above:
            return total
    return total


def give_back(folder: Path, uid: int, gid: int) -> None:
    """chown everything beneath ``folder`` (and it) to uid:gid without following a link (lchown), down to
    MAX_DEPTH; deeper entries keep their owner. For a root runner taking its output folder back."""
    try:
        os.chown(folder, uid, gid, follow_symlinks=False)
        for fd, entry, _st in walk(folder, strict=False):
            try:
                os.chown(entry.name, uid, gid, dir_fd=fd, follow_symlinks=False)
            except OSError:
                pass
    except (OSError, Unsafe):
        pass
