"""Write-then-swap, so an existing file or directory is replaced only by a complete result."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import UserInputError

_TMP_MARK = ".napari-unet-tmp-"
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def interrupted_swap_leftover(target: str | os.PathLike) -> Path | None:
    """The previous ``target`` set aside by a directory swap that a crash cut short, if any."""
    target = Path(target)
    if target.exists() or not target.parent.is_dir():
        return None
    pattern = re.compile(rf"{re.escape(_TMP_MARK)}old-[0-9a-f]{{8}}-{re.escape(target.name)}")
    leftovers = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]
    return max(leftovers, key=lambda p: p.stat().st_mtime) if leftovers else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete half-written temporaries of ``target`` left by processes that died (e.g. SIGKILL)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(_TMP_MARK)}(\d+)-[0-9a-f]{{8}}-{re.escape(target.name)}")
    stale = []
    for path in target.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            _remove(path)
            stale.append(path)
    return stale


def recover_interrupted_swap(target: str | os.PathLike) -> None:
    """Put back the previous ``target`` if a crash hit between the two renames of a directory swap."""
    leftover = interrupted_swap_leftover(target)
    if leftover is not None:
        os.replace(leftover, target)


@contextlib.contextmanager
def atomic_target(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path to write into; on success it replaces ``target``.

    On any exception the temporary is removed and ``target`` is untouched. Directories are
    swapped with two renames (POSIX cannot replace a non-empty directory in one); should a crash
    fall between them, :func:`recover_interrupted_swap` restores the previous one on the next use.
    The temporary's name holds the writer's process id, so the next use deletes temporaries of
    writers that were killed.
    """
    target = Path(target)
    recover_interrupted_swap(target)
    remove_stale_temporaries(target)
    tmp = target.with_name(f"{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}-{target.name}")
    try:
        yield tmp
    except OSError as error:
        _remove(tmp)
        if error.errno in _STORAGE_ERRORS:
            reason = os.strerror(error.errno).lower()
            raise UserInputError(f"cannot write {target}: {reason}; free some space or choose another path") from None
        raise
    except BaseException:
        _remove(tmp)
        raise
    if tmp.is_dir() and target.exists():
        old = target.with_name(f"{_TMP_MARK}old-{uuid.uuid4().hex[:8]}-{target.name}")
        os.replace(target, old)
        os.replace(tmp, target)
        _remove(old)
    else:
        os.replace(tmp, target)


@contextlib.contextmanager
def scratch_beside(target: str | os.PathLike) -> Iterator[Path]:
    """A scratch path next to ``target`` (same disk, seen by the same workers), removed afterwards;
    named like ``target``'s temporaries, so a killed writer's scratch is removed by the next
    :func:`atomic_target` of ``target``."""
    target = Path(target)
    path = target.with_name(f"{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}-{target.name}")
    try:
        yield path
    finally:
        _remove(path)
