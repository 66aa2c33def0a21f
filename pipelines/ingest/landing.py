"""The landing zone as the pipeline sees it: literal file names, local files only, and only complete ones.

Listing walks the landing zone without following symbolic links and matches each file's path (relative, with
``/``) against a contract's ``files`` pattern component by component, as ``Path.glob`` does (``*``, ``?`` and
``[...]`` within one folder or file name, ``**`` for any number of folders), plus the same name with ``.gz``.
Names that are a copy in progress or a hidden file by convention are never listed (:func:`is_ignored`).

Before a file is read, :func:`inspect` looks at it without opening it: a symbolic link (or a file under a linked
folder), anything whose real path leaves the landing zone and anything that is not a regular file (a named pipe
would hang the night) is refused, and an empty file is said to be empty. :func:`changed_since` tells a file still
being written (its size or modification time moved while it was hashed). :func:`safe_path` gives DuckDB a path it
takes literally: a file name with glob characters (``orders*.csv``) would otherwise be expanded into every
matching file.

A file's :func:`stat_key` (size, modification and change times in nanoseconds, device and inode) lets a
night skip hashing a file the ledger holds under the same key: its bytes cannot have changed without the change
time moving, which no program can set back. The key is kept only for a file that has been still for
:data:`SETTLED_SECONDS` (:meth:`Inspection.settled`): a write in the same clock tick as the hash would otherwise
leave every time as it was.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

IGNORED_PREFIXES = (".", "~$")
IGNORED_SUFFIXES = (".partial", ".part", ".tmp", ".crdownload", "~")
COMPRESSED_SUFFIX = ".gz"
# What DuckDB's readers would expand or interpret in a path: glob characters, the escape character.
_INTERPRETED = re.compile(r"[*?\[\]{}\\]|://|^~")
_PLAIN_CHARACTER = re.compile(r"[^A-Za-z0-9._-]")
# How long a file must have been still (no change to its bytes or its inode) before its stat key is trusted to
# stand for its content: longer than any file system's timestamp tick.
SETTLED_SECONDS = 2.0

_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def is_ignored(name: str) -> bool:
    """A hidden name, an Office lock file or a copy in progress (``.partial``, ``.part``, ``.tmp``,
    ``.crdownload``, ``~``): never listed, so never loaded half-written."""
    return name.startswith(IGNORED_PREFIXES) or name.endswith(IGNORED_SUFFIXES)


def _matches_name(name: str, part: str, last: bool) -> bool:
    if fnmatch.fnmatchcase(name, part):
        return True
    return last and name.endswith(COMPRESSED_SUFFIX) and fnmatch.fnmatchcase(name[: -len(COMPRESSED_SUFFIX)], part)


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return [entry for entry in entries if not is_ignored(entry.name)]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _is_real_folder(entry: os.DirEntry) -> bool:
    return entry.is_dir(follow_symlinks=False)


def _walk(folder: Path, parts: tuple[str, ...], found: set[Path]) -> None:
    """Add to ``found`` what matches ``parts`` below ``folder``; linked folders are listed, never entered, so a
    file the pattern would find through them is refused (:func:`inspect`) rather than silently missed."""
    part, rest = parts[0], parts[1:]
    if part == "**":
        if rest:
            _walk(folder, rest, found)
        for entry in _entries(folder):
            if _is_real_folder(entry):
                _walk(Path(entry.path), parts, found)
            elif entry.is_symlink() and rest:
                found.add(Path(entry.path))
        return
    for entry in _entries(folder):
        if rest:
            if not fnmatch.fnmatchcase(entry.name, part):
                continue
            if _is_real_folder(entry):
                _walk(Path(entry.path), rest, found)
            elif entry.is_symlink():
                found.add(Path(entry.path))
        elif _matches_name(entry.name, part, last=True) and not _is_real_folder(entry):
            found.add(Path(entry.path))


def matching_files(landing_dir: Path, pattern: str) -> list[Path]:
    """The paths under ``landing_dir`` that ``pattern`` (a contract's ``files``) names, in a stable order.

    Regular files, and also symbolic links, named pipes and other special files whose names match, so that
    loading them is refused with a message instead of silently skipped; nothing is opened or followed here.
    """
    parts = tuple(part for part in pattern.replace("\\", "/").split("/") if part not in ("", "."))
    if not parts:
        return []
    found: set[Path] = set()
    _walk(Path(landing_dir), parts, found)
    return sorted(found)


@dataclasses.dataclass(frozen=True)
class Inspection:
    """What :func:`inspect` saw: ``readable``, ``empty``, ``refused`` (with ``reason_code``) or ``deferred``
    (gone before it could be read), the message a person reads, and the file's identity for :func:`changed_since`."""

    file: str
    status: str
    message: str = ""
    reason_code: str = ""
    stat_key: str = ""  # size, modification and change times, device and inode (:func:`stat_key`)
    last_change_ns: int = 0  # the later of the modification and change times
    seen_at_ns: int = 0

    @property
    def readable(self) -> bool:
        return self.status == "readable"

    def settled(self) -> bool:
        """Whether the file had been still for :data:`SETTLED_SECONDS` when it was inspected, so that its stat key
        may stand for its content on a later night."""
        return self.seen_at_ns - self.last_change_ns >= SETTLED_SECONDS * 1e9


def stat_key(seen: os.stat_result) -> str:
    """Size, modification and change times in nanoseconds, device and inode: the same key means the same bytes."""
    return f"{seen.st_size}:{seen.st_mtime_ns}:{seen.st_ctime_ns}:{seen.st_dev}:{seen.st_ino}"


def _refused(relative: str, message: str) -> Inspection:
    return Inspection(relative, "refused", message, "link")


def inspect(file: Path, landing_dir: Path) -> Inspection:
    """Look at a landing file without opening it or following any link.

    Refused (reason code ``link``): a symbolic link, a file under a linked folder, a path whose real location is
    outside the landing zone, anything not a regular file. Messages name the file by its path in the landing zone
    and never the link's target or an absolute path.
    """
    landing_dir = Path(landing_dir)
    relative_path = Path(os.path.relpath(os.path.abspath(file), os.path.abspath(landing_dir)))
    relative = relative_path.as_posix()
    if relative_path.parts[:1] == ("..",) or relative in ("", "."):
        return _refused(relative, f"{relative} is outside the landing zone: copy the file into the landing zone")
    current = landing_dir
    parts = relative_path.parts
    for index, part in enumerate(parts):
        current = current / part
        try:
            seen = os.lstat(current)
        except FileNotFoundError:
            return Inspection(
                relative, "deferred", f"{relative} disappeared before it could be read; it was not loaded"
            )
        if stat.S_ISLNK(seen.st_mode):
            if index == len(parts) - 1:
                what = "folder" if os.path.isdir(current) else "file"
                return _refused(
                    relative,
                    f"{relative} is a symbolic link; links are not followed: copy the {what} itself into the landing "
                    "zone",
                )
            folder = "/".join(parts[: index + 1])
            return _refused(
                relative,
                f"{relative} is in the folder {folder}, which is a symbolic link; links are not followed: copy the "
                "folder itself into the landing zone (or point the landing_dir setting at it)",
            )
    real_landing = os.path.realpath(landing_dir)
    if os.path.commonpath([real_landing, os.path.realpath(file)]) != real_landing:
        return _refused(relative, f"{relative} is outside the landing zone: copy the file into the landing zone")
    if not stat.S_ISREG(seen.st_mode):
        kind = _KINDS.get(stat.S_IFMT(seen.st_mode), "a special file")
        return _refused(
            relative, f"{relative} is {kind}, not a regular file; only regular files are read: copy the data into one"
        )
    identity = {
        "stat_key": stat_key(seen),
        "last_change_ns": max(seen.st_mtime_ns, seen.st_ctime_ns),
        "seen_at_ns": time.time_ns(),
    }
    if seen.st_size == 0:
        return Inspection(relative, "empty", f"{relative} is empty (0 bytes)", **identity)
    return Inspection(relative, "readable", **identity)


def changed_since(file: Path, before: Inspection) -> str | None:
    """The "still being written" message when the file's size, modification or change time or identity moved since
    ``before`` (take it before hashing, call this after), else None."""
    try:
        same = stat_key(os.lstat(file)) == before.stat_key
    except FileNotFoundError:
        same = False
    if same:
        return None
    return (
        f"{before.file} is still being written (it changed while it was read); it is not loaded now and loads on "
        "the next run once it has stopped changing"
    )


def open_regular(file: Path) -> BinaryIO:
    """Open a landing file for reading without following a link or blocking on a named pipe: the last guard
    between :func:`inspect` and the read, should the path be swapped in between."""
    descriptor = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{Path(file).name} is not a regular file")
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def is_literal(path: Path) -> bool:
    """True when DuckDB would read ``path`` as it is: no glob or escape character, no ``~`` or ``://``."""
    return not _INTERPRETED.search(str(path))


def plain_name(name: str) -> str:
    """A file name of letters, digits, ``.``, ``_`` and ``-`` only, keeping its extensions (``.csv.gz``)."""
    return _PLAIN_CHARACTER.sub("_", name) or "file"


@contextmanager
def safe_path(file: Path) -> Iterator[Path]:
    """A path to the same bytes that every reader takes literally.

    A path without interpreted characters is given as it is. Otherwise the file is hard-linked under a plain name
    into a private temporary folder (same file system), or copied there when a link cannot be made (another file
    system, or not allowed); the folder is removed afterwards.
    """
    file = Path(file)
    if is_literal(file):
        yield file
        return
    folder = Path(tempfile.mkdtemp(prefix="crm-landing-"))
    try:
        target = folder / plain_name(file.name)
        if not is_literal(target):
            raise OSError("the temporary folder's path has characters DuckDB would interpret; set TMPDIR")
        try:
            os.link(file, target, follow_symlinks=False)
        except OSError:
            with open_regular(file) as source, target.open("wb") as copy:
                shutil.copyfileobj(source, copy, 1 << 20)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)
