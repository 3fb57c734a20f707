"""Write-then-swap, so an existing file or directory is replaced only by a complete result, and only
where :mod:`.ownership` allows it."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import UserInputError
from .ownership import check_replaceable

log = logging.getLogger(__name__)

_TMP_MARK = ".napari-unet-tmp-"
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]  # this machine, in temporaries' names
STALE_AGE = 7 * 24 * 3600  # seconds unchanged after which another machine's temporary counts as abandoned
_SPACE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_LOW_SPACE = 1 << 20  # bytes free below which a failed write is put down to a full disk


def _remove(path: Path) -> None:
    """Delete a temporary of napari-unet's own, if there is one (a name too long to exist is not)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def interrupted_swap_leftover(target: str | os.PathLike) -> Path | None:
    """The previous ``target`` set aside by a directory swap that a crash cut short, if any."""
    target = Path(target)
    if target.exists() or not target.parent.is_dir():
        return None
    pattern = re.compile(rf"{re.escape(_TMP_MARK)}old-[0-9a-f]{{8}}-{re.escape(target.name)}")
    leftovers = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]
    return max(leftovers, key=lambda p: p.stat().st_mtime) if leftovers else None


def temporary_path(target: str | os.PathLike, *, host: str = _HOST, pid: int | None = None) -> Path:
    """A fresh temporary sibling of ``target``, named after the writing machine and process, so
    :func:`remove_stale_temporaries` can tell a dead writer's leftovers from a live one's."""
    target = Path(target)
    pid = os.getpid() if pid is None else pid
    return target.with_name(f"{_TMP_MARK}{host}-{pid}-{uuid.uuid4().hex[:8]}-{target.name}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _unchanged_for(path: Path, seconds: float) -> bool:
    """Whether nothing in ``path`` (a file, or a folder and everything in it) changed for ``seconds``."""
    since = time.time() - seconds
    try:
        if path.lstat().st_mtime > since:
            return False
        for folder, folders, files in os.walk(path):
            for name in [*folders, *files]:
                if os.lstat(os.path.join(folder, name)).st_mtime > since:
                    return False
    except OSError:  # removed meanwhile: its writer is at work
        return False
    return True


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete half-written temporaries of ``target`` left by writers that died (e.g. SIGKILL).

    A temporary of this machine is stale once its process is gone. A process on another machine
    (a cluster node on a shared file system) cannot be asked, so its temporary is left alone until
    nothing in it changed for :data:`STALE_AGE`.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(_TMP_MARK)}([0-9a-f]{{8}})-(\d+)-[0-9a-f]{{8}}-{re.escape(target.name)}")
    stale = []
    for path in target.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match is None:
            continue
        host, pid = match.group(1), int(match.group(2))
        if (not _alive(pid)) if host == _HOST else _unchanged_for(path, STALE_AGE):
            _remove(path)
            log.info("removed %s, left by a writer that died", path)
            stale.append(path)
    return stale


def recover_interrupted_swap(target: str | os.PathLike) -> None:
    """Put back the previous ``target`` if a crash hit between the two renames of a directory swap."""
    leftover = interrupted_swap_leftover(target)
    if leftover is not None:
        os.replace(leftover, target)
        log.warning("put back %s, set aside by a replacement that a crash cut short", target)


def _storage_reason(error: BaseException, folder: Path) -> str | None:
    """Why a write failed where the file system is to blame: an OSError's own reason, or a full
    disk where a writer reports it its own way (torch: RuntimeError, numpy: OSError without errno)."""
    if isinstance(error, OSError) and error.errno is not None:
        return os.strerror(error.errno).lower()
    try:
        if shutil.disk_usage(folder).free < _LOW_SPACE:
            return os.strerror(errno.ENOSPC).lower()
    except OSError:
        pass
    if isinstance(error, OSError):
        return " ".join(str(error).split()) or type(error).__name__
    return None


def _write_failed(target: Path, error: BaseException, reason: str) -> UserInputError:
    space = (isinstance(error, OSError) and error.errno in _SPACE_ERRORS) or reason == os.strerror(errno.ENOSPC).lower()
    advice = "free some space or choose another path" if space else "choose another path"
    return UserInputError(f"cannot write {target}: {reason}; {advice}")


def _fsync(path: str | os.PathLike, directory: bool = False) -> None:
    """Flush ``path``'s data (or a directory's entries) to the disk; file systems that cannot
    flush a directory (EINVAL, ENOTSUP) are left as they are."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
        log.debug("%s cannot be flushed (%s)", path, os.strerror(error.errno))
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush a written file, or every file and folder in a written directory, before it is renamed
    into place: a rename may reach the disk before the data it names (ext4, XFS after a power cut)."""
    if not path.is_dir() or path.is_symlink():
        _fsync(path)
        return
    for folder, _, files in os.walk(path):
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                _fsync(os.path.join(folder, name))
        _fsync(folder, directory=True)


def _swap(tmp: Path, target: Path) -> None:
    """Put the complete, flushed ``tmp`` in ``target``'s place (a directory, or anything replaced
    by one, in two renames: POSIX cannot replace a non-empty directory in one), then flush the
    folder so the rename itself is on the disk."""
    _fsync_tree(tmp)
    if os.path.lexists(target) and (tmp.is_dir() or os.path.isdir(target)):
        old = target.with_name(f"{_TMP_MARK}old-{uuid.uuid4().hex[:8]}-{target.name}")
        os.replace(target, old)
        try:
            os.replace(tmp, target)
        except OSError:
            os.replace(old, target)
            raise
        _remove(old)
    else:
        os.replace(tmp, target)
    _fsync(target.parent, directory=True)


@contextlib.contextmanager
def atomic_target(
    target: str | os.PathLike, kind: str, *, overwrite: bool = False, inputs: Iterable = ()
) -> Iterator[Path]:
    """Yield a temporary sibling path to write a ``kind`` of output into (see :mod:`.ownership`);
    on success it replaces ``target``.

    ``target`` must be replaceable (:func:`.ownership.check_replaceable` with ``overwrite`` and
    ``inputs``) when the write starts and again when it is swapped in, else nothing is touched.
    On any exception the temporary is removed and ``target`` is untouched; a failing write (full
    disk, read-only or forbidden folder) is a one-line :class:`UserInputError`. Directories are
    swapped with two renames; should a crash fall between them, :func:`recover_interrupted_swap`
    restores the previous one on the next use. The temporary's name holds the writer's machine and
    process id, so the next use deletes temporaries of writers that were killed (see
    :func:`remove_stale_temporaries`). Data and rename are flushed to the disk before it returns.
    """
    target = Path(target)
    recover_interrupted_swap(target)
    check_replaceable(target, kind, overwrite=overwrite, inputs=inputs)
    remove_stale_temporaries(target)
    tmp = temporary_path(target)
    try:
        yield tmp
        check_replaceable(target, kind, overwrite=overwrite, inputs=inputs)  # again: a long write may end late
        _swap(tmp, target)
    except UserInputError:
        _remove(tmp)
        raise
    except Exception as error:
        reason = _storage_reason(error, target.parent)  # before removing tmp frees the space
        _remove(tmp)
        if reason is None:
            raise
        raise _write_failed(target, error, reason) from None
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def scratch_beside(target: str | os.PathLike) -> Iterator[Path]:
    """A scratch path next to ``target`` (same disk, seen by the same workers), removed afterwards;
    named like ``target``'s temporaries, so a killed writer's scratch is removed by the next
    :func:`atomic_target` of ``target``."""
    target = Path(target)
    path = temporary_path(target)
    try:
        yield path
    finally:
        _remove(path)
