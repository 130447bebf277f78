"""Crash-safe file writes: temporary file in the same folder, flush, fsync, rename, fsync the folder.

A reader therefore sees either the old file or the new one, never half of one, even if the
process is killed or the machine loses power in the middle (the rename is atomic on POSIX and
on Windows' os.replace within one volume).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a directory for fsync; os.replace is already durable enough there
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would race with other threads)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(path: Path) -> int:
    """The permissions the file would get from a plain open(): those of the file it replaces, or
    0o666 less the umask. mkstemp makes 0o600 files, which would hide a shared run directory's
    checkpoint (or an exported figure) from everybody else."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically. On any error the previous file is untouched and the
    temporary file is removed; the OSError (disk full, read-only) propagates for the caller to word."""
    path = Path(path)
    folder = path.parent
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        if hasattr(os, "fchmod"):
            try:
                os.fchmod(fd, mode)
            except OSError:
                pass  # some filesystems (FAT, some network shares) have no permissions to set
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: str | os.PathLike, names: tuple[str, ...], max_age_s: float = 600.0) -> int:
    """Delete temporary files that atomic_write_bytes left for `names` in `folder` when its process
    was killed mid-write (untouched for `max_age_s`, so a save still in progress elsewhere is
    spared). Returns how many were removed; errors are ignored (this is housekeeping)."""
    pattern = re.compile(r"^\.(%s)\.[A-Za-z0-9_]{6,12}\.tmp$" % "|".join(re.escape(n) for n in names))
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > max_age_s:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed
