"""Partial (staging) files and folders: a write goes to a hidden, locked `.partial` beside
its destination and is renamed over the destination only when complete.

Why a lock: a writer killed with SIGKILL (or a power cut) cannot clean up after itself.
Its partial, cut at some row boundary, then looks like a smaller but plausible output.
So every partial is created holding an exclusive `fcntl.flock`, kept for the whole write.
The kernel drops the lock when the writer dies, whatever the way. The next run that
writes to the same destination removes the partials whose lock it can take (their writer
is dead) and leaves alone those whose lock is held (their writer is still at work, maybe
in another process).

Names: `.<destination name>.<8 characters>.partial`. The leading dot hides the partial
from `ls` and shell globs. The `.partial` suffix stops a reader or a glob from taking it
for the finished file (`*.csv`, `*.parquet`, a bundle folder's name). The pattern is the
one `tempfile.mkstemp/mkdtemp(prefix=".<name>.", suffix=".partial")` made before this
module existed, so leftovers of older versions are cleaned up too.

Races: a cleaner removes a partial only while it holds the partial's lock, and a writer
checks, once it holds the lock, that its path still names the inode it locked (else a
cleaner removed it in the instant between creation and lock, and the writer starts over
under a new name). So a live writer's partial is never removed.

Where `fcntl` does not exist (Windows), partials are written the same way but never
removed by a later run: with no lock, a live writer cannot be told from a dead one.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

SUFFIX = ".partial"
_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_TOKEN_LEN = 8
_MAX_NAME = 200  # characters of the destination's name kept in the partial's name (file names: 255 bytes)
_ATTEMPTS = 100


def partial_prefix(dest: Path) -> str:
    """The part of a partial's name that names its destination."""
    return f".{Path(dest).name[:_MAX_NAME]}."


def is_partial_of(path: Path, dest: Path) -> bool:
    """Whether `path` is named like a partial of `dest` (same folder, exact pattern)."""
    path, dest = Path(path), Path(dest)
    pattern = re.escape(partial_prefix(dest)) + f"[{_TOKEN_CHARS}]{{{_TOKEN_LEN}}}" + re.escape(SUFFIX)
    return path.parent == dest.parent and re.fullmatch(pattern, path.name) is not None


def partials_of(dest: Path) -> list[Path]:
    """The partials of `dest` present now, stale or alive."""
    dest = Path(dest)
    try:
        names = os.listdir(dest.parent if str(dest.parent) else ".")
    except OSError:
        return []
    prefix = partial_prefix(dest)
    return sorted(dest.parent / n for n in names
                  if n.startswith(prefix) and is_partial_of(dest.parent / n, dest))


def remove_stale(dest: Path) -> list[Path]:
    """Remove the partials of `dest` whose writer is dead (their lock is free); leave the
    others. Returns the removed paths. Never raises for a partial it cannot inspect."""
    if fcntl is None:  # pragma: no cover - Windows: cannot tell dead from alive
        return []
    removed = []
    for path in partials_of(dest):
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # gone meanwhile, a link, or unreadable: not ours to judge
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: its writer is alive
            # holding the lock: the name must still point at the inode we locked
            try:
                now, ours = os.lstat(path), os.fstat(fd)
            except OSError:
                continue
            if (now.st_dev, now.st_ino) != (ours.st_dev, ours.st_ino):
                continue
            try:
                if stat.S_ISDIR(now.st_mode):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            except OSError as err:
                log.warning("could not remove the stale partial %s: %s", path, err.strerror)
                continue
            removed.append(path)
            log.info("removed %s, left by a write that did not finish", path)
        finally:
            os.close(fd)
    return removed


def _create(dest: Path, *, folder: bool) -> tuple[Path, int]:
    """Create a locked partial for `dest`; return its path and the fd holding the lock."""
    parent = dest.parent
    for _ in range(_ATTEMPTS):
        token = "".join(secrets.choice(_TOKEN_CHARS) for _ in range(_TOKEN_LEN))
        path = parent / f"{partial_prefix(dest)}{token}{SUFFIX}"
        try:
            if folder:
                os.mkdir(path, 0o700)
                if fcntl is None:  # pragma: no cover - Windows opens no folder as a file
                    return path, -1
                fd = os.open(path, os.O_RDONLY)
            else:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            continue
        if fcntl is None:  # pragma: no cover - Windows
            return path, fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            now, ours = os.lstat(path), os.fstat(fd)
            if (now.st_dev, now.st_ino) == (ours.st_dev, ours.st_ino):
                return path, fd
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.ENOENT):
                os.close(fd)
                raise
        os.close(fd)  # a cleaner took it in the instant before our lock: start over
    raise FileExistsError(errno.EEXIST, "no free name for a partial", str(dest))


@contextmanager
def locked_partial(dest: Path, *, folder: bool) -> Iterator[Path]:
    """A locked partial (file or folder) beside `dest` that the CALLER renames when its
    output is complete (e.g. a rename that must fail, not replace, when `dest` appeared
    meanwhile). Stale partials of `dest` are removed first; on any error the partial, if
    still there, is removed; the lock is held until the block ends."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(dest)
    path, fd = _create(dest, folder=folder)
    try:
        yield path
    except BaseException:
        _remove(path)
        raise
    finally:
        if fd >= 0:
            os.close(fd)


@contextmanager
def staged_file(dest: Path) -> Iterator[Path]:
    """Yield a locked partial path beside `dest`; on success its data is flushed to disk
    and it replaces `dest` in one rename; on any error it is removed. Stale partials of
    `dest` are removed first. The caller checks overwrite rules before entering."""
    with locked_partial(dest, folder=False) as path:
        yield path
        with open(path, "rb") as f:  # the data is on disk before the name points at it
            os.fsync(f.fileno())
        os.replace(path, dest)


@contextmanager
def staged_folder(dest: Path) -> Iterator[Path]:
    """Yield a locked partial folder beside `dest`; on success it replaces `dest` (an
    existing `dest` is removed first); on any error it is removed. Stale partials of
    `dest` are removed first. The caller checks overwrite rules before entering."""
    dest = Path(dest)
    with locked_partial(dest, folder=True) as path:
        yield path
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.rename(path, dest)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass
