"""Files readable by their owner only: the warehouse, the snapshots, Dagster's logs and the campaign exports hold
personal data, so on a shared machine nobody else should read them.

:func:`apply_umask` makes every file and folder the process creates from then on private (umask 077); the ``crm``
command calls it first thing, and so does the Dagster code location when its definitions load. :func:`make_private`
closes what was created before (a warehouse from an earlier version, a landing zone copied in by hand).
Both do nothing when the ``private_files`` setting is false.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pipelines.settings import Settings

PRIVATE_UMASK = 0o077
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def apply_umask(settings: Settings) -> int | None:
    """Make what this process creates from now on readable and writable by its owner only (umask 077), when the
    ``private_files`` setting is on. Returns the umask it replaced (None when it left it alone)."""
    if not settings.private_files:
        return None
    return os.umask(PRIVATE_UMASK)


def make_private(path: Path) -> list[Path]:
    """Take the group's and others' access away from ``path`` and, when it is a folder, from everything inside it
    (folders 0700, files 0600; an executable file keeps its owner's execute bit). Symbolic links are not followed.
    Returns the paths it changed."""
    changed: list[Path] = []
    if not path.exists() or path.is_symlink():
        return changed
    targets = [path, *path.rglob("*")] if path.is_dir() and not path.is_symlink() else [path]
    for target in targets:
        if target.is_symlink():
            continue
        mode = stat.S_IMODE(target.lstat().st_mode)
        wanted = PRIVATE_FOLDER if target.is_dir() else PRIVATE_FILE | (mode & stat.S_IXUSR)
        if mode != wanted:
            target.chmod(wanted)
            changed.append(target)
    return changed


def make_settings_private(settings: Settings) -> list[Path]:
    """:func:`make_private` over every place the settings write to, when ``private_files`` is on: the warehouse's
    folder, the published snapshots and Dagster's home. The landing zone is left as it is: other systems write it."""
    if not settings.private_files:
        return []
    places = (settings.warehouse_path.parent, settings.published_dir, settings.dagster_home)
    return [changed for place in dict.fromkeys(places) for changed in make_private(place)]
