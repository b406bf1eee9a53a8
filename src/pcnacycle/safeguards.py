"""Checks every command makes before any work, so it never fails after hours of it.

* :func:`check_output_folder`: the output is a folder this process can write
  in (not a file, not under ``/proc`` or ``/sys``, not on a read-only mount);
* :func:`check_free_space` / :func:`check_memory`: there is room for what is
  about to be written or held, when its size is known;
* :func:`output_lock`: no other process is writing the same output folder;
* :func:`os_error_message`: a full disk (or a folder that turned read-only)
  met mid-way becomes one line naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import PcnacycleError

#: Errors of the machine rather than of the program: shown as one line naming the path, never a traceback.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` itself when it exists, else its closest existing parent folder."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_folder(path: str | os.PathLike, option: str = "--output") -> Path:
    """Refuse an output folder that cannot be created or written in, before any work.

    The test is a real one: a hidden folder is made (and removed at once) in
    ``path`` or, when ``path`` does not exist yet, in its closest existing
    parent. Permission bits alone would not do: ``root`` passes them, while
    ``/proc``, ``/sys`` and read-only mounts still refuse every write.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    PcnacycleError
        When ``path`` (or a parent of it) is a file, or nothing can be created there.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PcnacycleError(f"{option} {path}: exists and is not a folder; choose another {option}")
    existing = nearest_existing(path)
    if not existing.is_dir():
        raise PcnacycleError(f"{option} {path}: {existing} is not a folder, so no folder can be made below it")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".pcnacycle-write-test-"))
    except OSError as exc:
        raise PcnacycleError(f"{option} {path}: cannot write in {existing} ({exc.strerror}); "
                             f"choose another {option}") from exc
    return path


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse to start writing ``needed`` bytes into ``folder`` when its disk has less free.

    Parameters
    ----------
    folder : where the bytes go (need not exist yet: its closest existing parent is measured)
    needed : bytes about to be written
    what : what they are, for the message (e.g. "the detections of 500 frames of 2048×2048")
    """
    import shutil

    existing = nearest_existing(folder)
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise PcnacycleError(f"{folder}: {what}: {_size(needed)} ({needed} bytes) needed on disk, {existing} has "
                             f"{_size(free)} free; free some space or choose another folder")


def available_memory() -> int | None:
    """Bytes of memory the system can give without swapping (``MemAvailable``), or None when unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def check_memory(needed: int, what: str, advice: str = "ask for less") -> None:
    """Refuse to hold ``needed`` bytes in memory when the system has fewer available."""
    available = available_memory()
    if available is not None and needed > available:
        raise PcnacycleError(f"{what}: {_size(needed)} of memory needed, {_size(available)} available; {advice}")


def _size(count: float) -> str:
    """``count`` bytes in words: "512 bytes", "3.2 GB"."""
    if count < 1000:
        return f"{count:.0f} bytes"
    units = ("KB", "MB", "GB", "TB")
    for unit in units:
        count /= 1000
        if count < 1000 or unit == units[-1]:
            return f"{count:.1f} {unit}"


@contextlib.contextmanager
def output_lock(output: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``output`` while the block writes it.

    The lock is ``fcntl.flock`` on a hidden file beside the folder
    (``.NAME.lock``), so it is released by the system even when the process is
    killed, and a second process asking for it is refused at once instead of
    sharing (and deleting) the first one's staging folder.

    On a system without ``fcntl`` (Windows) the block runs unlocked.

    Raises
    ------
    PcnacycleError
        When another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:
        yield Path(output)
        return
    output = Path(output)
    path = output.parent / f".{output.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PcnacycleError(f"{output}: another pcnacycle process is writing there (it holds {path}); "
                                 "wait for it to finish or choose another --output") from None
        # The holder before us may have removed the file between our open and our lock: then the lock is on a
        # file nobody else can see, and a third process could lock a new one. Refuse rather than share.
        if not path.exists() or os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
            raise PcnacycleError(f"{output}: another pcnacycle process has just started writing there; "
                                 "wait for it to finish or choose another --output")
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)  # removed while still locked, so no waiting process can take it


def os_error_message(exc: OSError, output: str | os.PathLike | None = None) -> str | None:
    """One line for an error of the machine (disk full, read-only, no permission), or None for any other.

    ``output`` is named when the error does not say which file it met.
    """
    if exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    where = exc.filename or (f"writing into {output}" if output is not None else None)
    reason = exc.strerror or os.strerror(exc.errno)
    advice = "; free some space or choose another --output" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{where}: {reason}{advice}" if where else f"{reason}{advice}"


def reserve_disk_space(path: str | os.PathLike) -> None:
    """Give the file at ``path`` its disk blocks now (``posix_fallocate``).

    A file made by ``truncate`` is sparse: on a full disk it would fail at
    some later write, after minutes of work (and a memory-mapped one kills
    the process with SIGBUS, no message and no clean-up). Reserved blocks turn
    that into an ``OSError`` (ENOSPC) here, before any work, which the
    command line reports as one line.
    """
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows: nothing to reserve with
        return
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as exc:
            exc.filename = str(path)
            raise
